//! The topic tree: topic names → values, matched by a filter. The broker keeps
//! retained messages in one, so a wildcard SUBSCRIBE walks only the branches
//! its filter can match instead of every retained message.
//!
//! Invariant: no empty leaf is left after `remove`.

use ahash::AHashMap;

#[derive(Debug)]
struct Node<T> {
    children: AHashMap<Box<str>, Node<T>>,
    value: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: AHashMap::default(),
            value: None,
        }
    }
}

/// Topic names → values. Topics must be valid names (see [`super::valid_topic_name`]).
#[derive(Debug)]
pub struct TopicTree<T> {
    root: Node<T>,
    len: usize,
}

impl<T> Default for TopicTree<T> {
    fn default() -> Self {
        TopicTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> TopicTree<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the value of `topic`, returning the previous one.
    pub fn insert(&mut self, topic: &str, value: T) -> Option<T> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn get(&self, topic: &str) -> Option<&T> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Removes the value of `topic`, pruning empty nodes.
    pub fn remove(&mut self, topic: &str) -> Option<T> {
        let levels: Vec<&str> = topic.split('/').collect();
        let old = remove_rec(&mut self.root, &levels);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Calls `visit(topic, value)` for every topic that the valid `filter` matches.
    pub fn for_each_match(&self, filter: &str, mut visit: impl FnMut(&str, &T)) {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut path = String::new();
        match_rec(&self.root, &levels, true, &mut path, &mut visit);
    }
}

fn remove_rec<T>(node: &mut Node<T>, levels: &[&str]) -> Option<T> {
    let Some((level, rest)) = levels.split_first() else {
        return node.value.take();
    };
    let child = node.children.get_mut(*level)?;
    let old = remove_rec(child, rest);
    if child.value.is_none() && child.children.is_empty() {
        node.children.remove(*level);
    }
    old
}

/// `path` is the topic of `node` (empty at the root); `at_root` says whether
/// `node` is the root, where wildcards skip `$` topics.
fn match_rec<T>(
    node: &Node<T>,
    levels: &[&str],
    at_root: bool,
    path: &mut String,
    visit: &mut impl FnMut(&str, &T),
) {
    let Some((level, rest)) = levels.split_first() else {
        if let Some(v) = &node.value {
            visit(path, v);
        }
        return;
    };
    match *level {
        "#" => {
            // `a/#` matches `a` itself, then everything below.
            if !at_root && let Some(v) = &node.value {
                visit(path, v);
            }
            for (name, child) in &node.children {
                if at_root && name.starts_with('$') {
                    continue;
                }
                let len = push_level(path, name, at_root);
                visit_all(child, path, visit);
                path.truncate(len);
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if at_root && name.starts_with('$') {
                    continue;
                }
                let len = push_level(path, name, at_root);
                match_rec(child, rest, false, path, visit);
                path.truncate(len);
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                let len = push_level(path, literal, at_root);
                match_rec(child, rest, false, path, visit);
                path.truncate(len);
            }
        }
    }
}

/// Appends `/name` (or `name` at the root) to `path`; returns the old length.
fn push_level(path: &mut String, name: &str, at_root: bool) -> usize {
    let len = path.len();
    if !at_root {
        path.push('/');
    }
    path.push_str(name);
    len
}

fn visit_all<T>(node: &Node<T>, path: &mut String, visit: &mut impl FnMut(&str, &T)) {
    if let Some(v) = &node.value {
        visit(path, v);
    }
    for (name, child) in &node.children {
        let len = push_level(path, name, false);
        visit_all(child, path, visit);
        path.truncate(len);
    }
}
