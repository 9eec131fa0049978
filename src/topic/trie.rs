//! The subscription trie: one node per filter level, a value of type `T` per
//! filter, matched against topic names. `T` is whatever the owner keeps per
//! filter (the broker keeps local subscribers and remote core masks).
//!
//! Invariant: after `remove_if`, no node without a value and without children
//! is left behind, so the trie's size follows the live filters.

use ahash::AHashMap;

#[derive(Debug)]
struct Node<T> {
    children: AHashMap<Box<str>, Node<T>>,
    /// The `+` child.
    plus: Option<Box<Node<T>>>,
    /// The value of the filter ending in `#` at this level.
    hash: Option<T>,
    /// The value of the filter ending exactly here.
    value: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: AHashMap::default(),
            plus: None,
            hash: None,
            value: None,
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.value.is_none()
    }
}

/// Filters → values. Filters must be valid (see [`super::valid_filter`]).
#[derive(Debug)]
pub struct Trie<T> {
    root: Node<T>,
    len: usize,
}

impl<T> Default for Trie<T> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> Trie<T> {
    /// Number of filters holding a value.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value for `filter`, created with `T::default()` if absent.
    pub fn entry(&mut self, filter: &str) -> &mut T
    where
        T: Default,
    {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                if node.hash.is_none() {
                    self.len += 1;
                }
                return node.hash.get_or_insert_with(T::default);
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        if node.value.is_none() {
            self.len += 1;
        }
        node.value.get_or_insert_with(T::default)
    }

    /// The value for `filter`, if present.
    pub fn get(&self, filter: &str) -> Option<&T> {
        let mut node = &self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.as_ref();
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        node.value.as_ref()
    }

    /// Mutable value for `filter`, if present.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.as_mut();
            }
            node = if level == "+" {
                node.plus.as_deref_mut()?
            } else {
                node.children.get_mut(level)?
            };
        }
        node.value.as_mut()
    }

    /// Removes the value for `filter` if `should_remove` says so, pruning the
    /// nodes left empty. Returns true if a value was removed.
    pub fn remove_if(&mut self, filter: &str, should_remove: impl FnOnce(&T) -> bool) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_rec(&mut self.root, &levels, should_remove);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `visit` with the value of every filter matching `topic`.
    /// Allocates nothing: the level iterator is cloned at each branch.
    pub fn for_each_match(&self, topic: &str, mut visit: impl FnMut(&T)) {
        let mut levels = topic.split('/');
        let Some(first) = levels.next() else { return };
        // Filters starting with a wildcard do not match `$` topics: only the
        // literal children of the root are walked for those.
        if first.starts_with('$') {
            if let Some(child) = self.root.children.get(first) {
                match_rec(child, levels, &mut visit);
            }
            return;
        }
        if let Some(v) = &self.root.hash {
            visit(v);
        }
        if let Some(child) = self.root.children.get(first) {
            match_rec(child, levels.clone(), &mut visit);
        }
        if let Some(plus) = &self.root.plus {
            match_rec(plus, levels, &mut visit);
        }
    }
}

/// `node` has consumed one topic level; `levels` yields the ones still to match.
fn match_rec<T>(node: &Node<T>, mut levels: std::str::Split<'_, char>, visit: &mut impl FnMut(&T)) {
    // `x/#` matches `x` and everything below it.
    if let Some(v) = &node.hash {
        visit(v);
    }
    let Some(level) = levels.next() else {
        if let Some(v) = &node.value {
            visit(v);
        }
        return;
    };
    if let Some(child) = node.children.get(level) {
        match_rec(child, levels.clone(), visit);
    }
    if let Some(plus) = &node.plus {
        match_rec(plus, levels, visit);
    }
}

fn remove_rec<T>(
    node: &mut Node<T>,
    levels: &[&str],
    should_remove: impl FnOnce(&T) -> bool,
) -> bool {
    let Some((level, rest)) = levels.split_first() else {
        return match &node.value {
            Some(v) if should_remove(v) => {
                node.value = None;
                true
            }
            _ => false,
        };
    };
    if *level == "#" && rest.is_empty() {
        return match &node.hash {
            Some(v) if should_remove(v) => {
                node.hash = None;
                true
            }
            _ => false,
        };
    }
    if *level == "+" {
        let Some(plus) = node.plus.as_deref_mut() else {
            return false;
        };
        let removed = remove_rec(plus, rest, should_remove);
        if plus.is_empty() {
            node.plus = None;
        }
        return removed;
    }
    let Some(child) = node.children.get_mut(*level) else {
        return false;
    };
    let removed = remove_rec(child, rest, should_remove);
    if child.is_empty() {
        node.children.remove(*level);
    }
    removed
}
