//! Topic names and topic filters: validation, `$share/{group}/{filter}`
//! parsing, a reference matcher, the subscription trie (filters → values,
//! matched by topic) and the topic tree (topics → values, matched by filter,
//! for retained messages). Pure data structures: no I/O, no cross-core state.
//!
//! Rules (MQTT 3.1.1 section 4.7), with examples the unit tests use:
//! - `#` is valid only as the whole last level: `#`, `a/#` valid; `a#`, `a/#/b` invalid.
//! - `+` is valid only as a whole level: `+`, `a/+/b`, `+/+` valid; `a+`, `a/b+` invalid.
//! - topic names carry no wildcard and are at least one character long.
//! - a filter whose first level is a wildcard does not match a topic whose
//!   first level starts with `$`: `#` and `+/x` do not match `$SYS/x`.
//! - `a/#` matches `a` itself; `+` matches an empty level (`a/+` matches `a/`).

mod tree;
mod trie;

pub use tree::TopicTree;
pub use trie::Trie;

/// Longest topic or filter in bytes (a UTF-8 string field's limit).
pub const TOPIC_LEN_MAX_BYTES: usize = 65_535;

/// Prefix of a shared subscription filter.
pub const SHARE_PREFIX: &str = "$share/";

/// True if `topic` is a valid topic name for PUBLISH.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= TOPIC_LEN_MAX_BYTES
        && !topic.bytes().any(|b| b == b'+' || b == b'#' || b == 0)
}

/// True if `filter` is a valid (non-shared) topic filter.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > TOPIC_LEN_MAX_BYTES || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if !is_last => return false,
            "#" | "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// A subscription filter as the broker stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter<'a> {
    /// An ordinary filter: every matching subscriber gets each message.
    Plain(&'a str),
    /// `$share/{group}/{filter}`: each message goes to one member of the group.
    Shared { group: &'a str, filter: &'a str },
}

impl<'a> Filter<'a> {
    /// The topic filter part (without `$share/{group}/`).
    pub fn topic_filter(&self) -> &'a str {
        match self {
            Filter::Plain(f) => f,
            Filter::Shared { filter, .. } => filter,
        }
    }
}

/// Parses and validates a filter from SUBSCRIBE/UNSUBSCRIBE. `None`: invalid.
///
/// `$share/{group}/{filter}`: the group is non-empty and has no `/`, `+`, `#`;
/// the filter is valid. `$share/g` (no filter) and `$share//a` are invalid.
pub fn parse_filter(raw: &str) -> Option<Filter<'_>> {
    if let Some(rest) = raw.strip_prefix(SHARE_PREFIX) {
        let (group, filter) = rest.split_once('/')?;
        if group.is_empty() || group.contains(['+', '#']) || !valid_filter(filter) {
            return None;
        }
        return Some(Filter::Shared { group, filter });
    }
    if raw == "$share" {
        return None;
    }
    valid_filter(raw).then_some(Filter::Plain(raw))
}

/// Reference matcher: does the (valid) `filter` match the (valid) `topic`?
/// The trie must agree with it; tests check that it does.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Stable hash of a string (FNV-1a, 64-bit). Used to give client ids and
/// retained topics a home core; must be the same on every core and every run.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
