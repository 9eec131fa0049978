//! Unit tests for topic validation, `$share` parsing, the reference matcher,
//! the subscription trie and the topic tree, plus property tests that the
//! trie and the tree agree with `matches` on random filter/topic sets.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A structural fingerprint of a value's `Debug` output that does not depend
/// on hash-map iteration order: its characters, sorted. Two tries (or trees)
/// holding the same filters with the same values have the same fingerprint;
/// a leftover empty node changes it.
fn shape<T: std::fmt::Debug>(x: &T) -> Vec<char> {
    let mut chars: Vec<char> = format!("{x:?}").chars().collect();
    chars.sort_unstable();
    chars
}

fn trie_of(filters: &[&str]) -> Trie<String> {
    let mut t = Trie::default();
    for f in filters {
        *t.entry(f) = f.to_string();
    }
    t
}

/// The filters of `t` matching `topic`, sorted, with duplicates kept.
fn trie_matches(t: &Trie<String>, topic: &str) -> Vec<String> {
    let mut got = Vec::new();
    t.for_each_match(topic, |v| got.push(v.clone()));
    got.sort();
    got
}

fn tree_of(topics: &[&str]) -> TopicTree<String> {
    let mut t = TopicTree::default();
    for topic in topics {
        t.insert(topic, topic.to_string());
    }
    t
}

/// The topics of `t` matched by `filter`, sorted; checks that the reported
/// topic string is the topic the value was stored under.
fn tree_matches(t: &TopicTree<String>, filter: &str) -> Vec<String> {
    let mut got = Vec::new();
    t.for_each_match(filter, |topic, v| {
        assert_eq!(topic, v, "reported topic differs from the stored one");
        got.push(topic.to_string());
    });
    got.sort();
    got
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// An independent matcher written from the spec's wording (section 4.7), to
/// cross-check `matches` itself.
fn spec_matches(filter: &str, topic: &str) -> bool {
    fn rec(f: &[&str], t: &[&str]) -> bool {
        match (f, t) {
            (["#"], _) => true,
            (["+", fr @ ..], [_, tr @ ..]) => rec(fr, tr),
            ([fl, fr @ ..], [tl, tr @ ..]) => fl == tl && rec(fr, tr),
            ([], []) => true,
            _ => false,
        }
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if t[0].starts_with('$') && (f[0] == "#" || f[0] == "+") {
        return false;
    }
    rec(&f, &t)
}

// ---------------------------------------------------------------------------
// valid_topic_name
// ---------------------------------------------------------------------------

#[test]
fn valid_topic_names() {
    for t in [
        "a",
        "a/b",
        "a/b/c",
        "/",
        "//",
        "/a",
        "a/",
        "a//b",
        "$SYS/x",
        "$",
        "a b",
        " ",
        "\u{e9}/\u{20ac}/\u{1d11e}",
        "sport/tennis/player1",
    ] {
        assert!(valid_topic_name(t), "{t:?} should be valid");
    }
}

#[test]
fn invalid_topic_names() {
    for t in [
        "", "+", "#", "a/+", "a/#", "a+", "a#", "+/a", "a/b#c", "\0", "a\0b",
    ] {
        assert!(!valid_topic_name(t), "{t:?} should be invalid");
    }
}

#[test]
fn topic_name_length_limit() {
    assert!(valid_topic_name(&"a".repeat(TOPIC_LEN_MAX_BYTES)));
    assert!(!valid_topic_name(&"a".repeat(TOPIC_LEN_MAX_BYTES + 1)));
    // The limit is in bytes, not characters.
    let e = "\u{e9}".repeat(TOPIC_LEN_MAX_BYTES / 2); // 65,534 bytes
    assert!(valid_topic_name(&e));
    assert!(!valid_topic_name(&format!("{e}\u{e9}")));
}

// ---------------------------------------------------------------------------
// valid_filter
// ---------------------------------------------------------------------------

#[test]
fn valid_filters() {
    for f in [
        "#",
        "a/#",
        "+",
        "+/+",
        "a/+/b",
        "/",
        "//",
        "a",
        "a/b",
        "+/#",
        "/#",
        "/+",
        "+/",
        "a//b",
        "a/+/+/#",
        "$SYS/#",
        "$SYS/+",
        "sport/tennis/#",
        "sport/+/player1",
        "\u{e9}/+",
        "$share", // a plain filter as far as valid_filter knows
        "$share/g/a",
    ] {
        assert!(valid_filter(f), "{f:?} should be valid");
    }
}

#[test]
fn invalid_filters() {
    for f in [
        "",
        "a#",
        "a/#/b",
        "a+",
        "a/b+",
        "#/a",
        "#/",
        "##",
        "++",
        "+a",
        "a/+b/c",
        "a/#b",
        "sport/tennis#",
        "sport+",
        "#/#",
        "a/#/",
        "\0",
        "a/\0",
        "+\0",
    ] {
        assert!(!valid_filter(f), "{f:?} should be invalid");
    }
}

#[test]
fn filter_length_limit() {
    assert!(valid_filter(&"a".repeat(TOPIC_LEN_MAX_BYTES)));
    assert!(!valid_filter(&"a".repeat(TOPIC_LEN_MAX_BYTES + 1)));
    let long = format!("{}/#", "a".repeat(TOPIC_LEN_MAX_BYTES - 2));
    assert_eq!(long.len(), TOPIC_LEN_MAX_BYTES);
    assert!(valid_filter(&long));
}

#[test]
fn every_valid_topic_name_is_a_valid_filter() {
    for t in ["a", "/", "//", "$SYS/x", "a b/c"] {
        assert!(valid_topic_name(t) && valid_filter(t));
    }
}

// ---------------------------------------------------------------------------
// parse_filter
// ---------------------------------------------------------------------------

#[test]
fn parse_shared_filters() {
    for (raw, group, filter) in [
        ("$share/g/a/b", "g", "a/b"),
        ("$share/g/#", "g", "#"),
        ("$share/g/+", "g", "+"),
        ("$share/g/+/x/#", "g", "+/x/#"),
        ("$share/group-1/a", "group-1", "a"),
        ("$share/g/$SYS/#", "g", "$SYS/#"),
        ("$share/g//", "g", "/"),
        ("$share/g/$share/h/x", "g", "$share/h/x"),
        ("$share/$g/a", "$g", "a"),
    ] {
        let f = parse_filter(raw);
        assert_eq!(f, Some(Filter::Shared { group, filter }), "{raw:?}");
        assert_eq!(f.unwrap().topic_filter(), filter);
    }
}

#[test]
fn parse_invalid_shared_filters() {
    for raw in [
        "$share",
        "$share/",
        "$share/g",
        "$share/g/",
        "$share//a",
        "$share//",
        "$share/g+/a",
        "$share/+/a",
        "$share/g#/a",
        "$share/#/a",
        "$share/#",
        "$share/+",
        "$share/g/a#/",
        "$share/g/a#",
        "$share/g/a/#/b",
        "$share/g/a+",
    ] {
        assert_eq!(parse_filter(raw), None, "{raw:?} should be invalid");
    }
}

#[test]
fn parse_plain_filters() {
    for raw in [
        "a/b",
        "#",
        "+",
        "/",
        "$SYS/#",
        "$sharex/a",
        "$SHARE/g/a",
        "$sharex/+/#",
    ] {
        let f = parse_filter(raw);
        assert_eq!(f, Some(Filter::Plain(raw)), "{raw:?}");
        assert_eq!(f.unwrap().topic_filter(), raw);
    }
    for raw in ["", "a#", "a/#/b", "a+", "#/a", "$share+", "$sharex/a#"] {
        assert_eq!(parse_filter(raw), None, "{raw:?} should be invalid");
    }
}

// ---------------------------------------------------------------------------
// matches
// ---------------------------------------------------------------------------

const MATCH_TABLE: &[(&str, &str, bool)] = &[
    // literal
    ("a/b", "a/b", true),
    ("a/b", "a/c", false),
    ("a/b", "a", false),
    ("a", "a/b", false),
    ("A", "a", false),
    ("a/b", "a/b/", false),
    // `#`
    ("#", "a", true),
    ("#", "a/b/c", true),
    ("#", "/", true),
    ("#", "/a", true),
    ("#", "a/", true),
    ("a/#", "a", true),
    ("a/#", "a/", true),
    ("a/#", "a/b", true),
    ("a/#", "a/b/c", true),
    ("a/#", "b", false),
    ("a/#", "ab", false),
    ("a/#", "b/a", false),
    ("a/b/#", "a/b", true),
    ("a/b/#", "a", false),
    ("/#", "/", true),
    ("/#", "/a", true),
    ("/#", "a", false),
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/#", "sport", true),
    // `+`
    ("+", "a", true),
    ("+", "a/b", false),
    ("+", "/", false),
    ("a/+", "a/b", true),
    ("a/+", "a/", true), // empty level
    ("a/+", "a", false),
    ("a/+", "a/b/c", false),
    ("+/+", "/", true),
    ("+/+", "a/b", true),
    ("+/+", "a", false),
    ("+/a", "/a", true),
    ("/a", "/a", true),
    ("/a", "a", false),
    ("+/a", "a", false),
    ("/+", "/a", true),
    ("/+", "/", true),
    ("/+", "a", false),
    ("a/+/b", "a/x/b", true),
    ("a/+/b", "a//b", true),
    ("a/+/b", "a/x/y/b", false),
    ("a/+/b", "a/b", false),
    ("+/#", "a", true),
    ("+/#", "a/b/c", true),
    ("+/#", "/", true),
    ("+/+/#", "a", false),
    ("+/+/#", "a/b", true),
    ("a/+/#", "a/b", true),
    ("a/+/#", "a", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+/tennis/#", "sport/tennis", true),
    ("+/tennis/#", "sport/tennis/x", true),
    ("+/tennis/#", "sport/golf", false),
    ("//", "//", true),
    ("+/+/+", "//", true),
    // `$` topics
    ("#", "$SYS/x", false),
    ("#", "$SYS", false),
    ("#", "$", false),
    ("+", "$SYS", false),
    ("+/x", "$SYS/x", false),
    ("+/#", "$SYS/x", false),
    ("+/+", "$SYS/x", false),
    ("$SYS/#", "$SYS/x", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/#", "$SYS/x/y", true),
    ("$SYS/+", "$SYS/x", true),
    ("$SYS/x", "$SYS/x", true),
    ("$SYS/#", "SYS/x", false),
    ("a/#", "a/$x", true), // `$` only matters in the first level
    ("a/+", "a/$x", true),
    ("+/$x", "a/$x", true),
    ("#", "a$/x", true),
    ("/#", "/$x", true),
    ("+/+", "/$x", true),
];

#[test]
fn matches_table() {
    for &(filter, topic, want) in MATCH_TABLE {
        assert!(valid_filter(filter), "{filter:?} is not valid");
        assert!(valid_topic_name(topic), "{topic:?} is not valid");
        assert_eq!(
            matches(filter, topic),
            want,
            "matches({filter:?}, {topic:?})"
        );
        assert_eq!(
            spec_matches(filter, topic),
            want,
            "spec_matches({filter:?}, {topic:?})"
        );
    }
}

#[test]
fn trie_agrees_with_match_table() {
    let filters: BTreeSet<&str> = MATCH_TABLE.iter().map(|(f, _, _)| *f).collect();
    let filters: Vec<&str> = filters.into_iter().collect();
    let t = trie_of(&filters);
    assert_eq!(t.len(), filters.len());
    for &(_, topic, _) in MATCH_TABLE {
        let want: Vec<&str> = filters
            .iter()
            .copied()
            .filter(|f| matches(f, topic))
            .collect();
        assert_eq!(trie_matches(&t, topic), sorted(&want), "topic {topic:?}");
    }
}

#[test]
fn tree_agrees_with_match_table() {
    let topics: BTreeSet<&str> = MATCH_TABLE.iter().map(|(_, t, _)| *t).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let t = tree_of(&topics);
    assert_eq!(t.len(), topics.len());
    for &(filter, _, _) in MATCH_TABLE {
        let want: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| matches(filter, t))
            .collect();
        assert_eq!(tree_matches(&t, filter), sorted(&want), "filter {filter:?}");
    }
}

// ---------------------------------------------------------------------------
// stable_hash
// ---------------------------------------------------------------------------

#[test]
fn stable_hash_is_fnv1a_64() {
    // Reference vectors of FNV-1a 64.
    assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    assert_ne!(stable_hash("client-1"), stable_hash("client-2"));
}

// ---------------------------------------------------------------------------
// Trie
// ---------------------------------------------------------------------------

#[test]
fn trie_empty() {
    let t: Trie<u32> = Trie::default();
    assert_eq!(t.len(), 0);
    assert!(t.is_empty());
    assert_eq!(t.get("a"), None);
    assert_eq!(t.get("#"), None);
    assert_eq!(t.get("+"), None);
    let mut n = 0;
    t.for_each_match("a", |_| n += 1);
    t.for_each_match("$SYS/x", |_| n += 1);
    assert_eq!(n, 0);
}

#[test]
fn trie_entry_creates_once() {
    let mut t: Trie<u32> = Trie::default();
    *t.entry("a/b") += 1;
    assert_eq!(t.len(), 1);
    *t.entry("a/b") += 1;
    assert_eq!(t.len(), 1);
    assert_eq!(t.get("a/b"), Some(&2));
    assert!(!t.is_empty());
}

#[test]
fn trie_entry_get_for_every_shape() {
    let filters = [
        "#", "+", "a", "a/#", "a/+", "a/b", "a/+/b", "+/#", "+/+", "/", "//", "/#", "/+", "+/",
        "$SYS/#", "$SYS/+", "a/b/c/d",
    ];
    let mut t: Trie<usize> = Trie::default();
    for (i, f) in filters.iter().enumerate() {
        *t.entry(f) = i;
        assert_eq!(t.len(), i + 1);
    }
    for (i, f) in filters.iter().enumerate() {
        assert_eq!(t.get(f), Some(&i), "{f:?}");
    }
    // Prefixes and extensions of stored filters are distinct filters.
    for f in [
        "a/b/c", "a/b/#", "b", "+/b", "+/+/+", "a/+/#", "$SYS", "///", "#/",
    ] {
        assert_eq!(t.get(f), None, "{f:?}");
    }
}

#[test]
fn trie_wildcards_are_distinct_from_literals() {
    // `+` and `#` as filter levels are not the same as each other, and `#`
    // as last level is not the same as `+`.
    let mut t: Trie<&str> = Trie::default();
    *t.entry("a/+") = "plus";
    *t.entry("a/#") = "hash";
    *t.entry("a") = "a";
    assert_eq!(t.get("a/+"), Some(&"plus"));
    assert_eq!(t.get("a/#"), Some(&"hash"));
    assert_eq!(t.get("a"), Some(&"a"));
    assert_eq!(t.len(), 3);
}

#[test]
fn trie_get_mut() {
    let mut t: Trie<Vec<u32>> = Trie::default();
    t.entry("a/+").push(1);
    t.entry("#").push(2);
    t.get_mut("a/+").unwrap().push(3);
    t.get_mut("#").unwrap().push(4);
    assert_eq!(t.get("a/+"), Some(&vec![1, 3]));
    assert_eq!(t.get("#"), Some(&vec![2, 4]));
    assert!(t.get_mut("a").is_none());
    assert!(t.get_mut("a/#").is_none());
    assert!(t.get_mut("a/+/b").is_none());
    assert!(t.get_mut("+").is_none());
    assert_eq!(t.len(), 2);
}

#[test]
fn trie_remove_if() {
    let mut t = trie_of(&["a/b", "a/#", "+", "#"]);
    // Absent filters.
    assert!(!t.remove_if("a", |_| true));
    assert!(!t.remove_if("a/b/c", |_| true));
    assert!(!t.remove_if("a/+", |_| true));
    assert!(!t.remove_if("b/#", |_| true));
    assert_eq!(t.len(), 4);
    // The predicate says no.
    assert!(!t.remove_if("a/b", |v| v == "other"));
    assert_eq!(t.len(), 4);
    assert_eq!(t.get("a/b").map(String::as_str), Some("a/b"));
    // The predicate sees the value and says yes.
    assert!(t.remove_if("a/b", |v| v == "a/b"));
    assert_eq!(t.len(), 3);
    assert_eq!(t.get("a/b"), None);
    assert_eq!(t.get("a/#").map(String::as_str), Some("a/#"));
    assert!(!t.remove_if("a/b", |_| true), "already removed");
    assert!(t.remove_if("#", |_| true));
    assert!(t.remove_if("+", |_| true));
    assert!(t.remove_if("a/#", |_| true));
    assert_eq!(t.len(), 0);
    assert!(t.is_empty());
}

#[test]
fn trie_remove_if_prunes_to_empty() {
    let filters = [
        "a/b/c/d", "a/b", "a/#", "+/+/#", "+", "#", "/", "//", "$SYS/+/x", "a/+/c", "x/y/z/#",
    ];
    let empty = format!("{:?}", Trie::<String>::default());
    let mut t = trie_of(&filters);
    for (i, f) in filters.iter().enumerate() {
        assert!(t.remove_if(f, |_| true), "{f:?}");
        assert_eq!(t.len(), filters.len() - i - 1);
        // What is left is exactly a trie built from the remaining filters.
        assert_eq!(
            shape(&t),
            shape(&trie_of(&filters[i + 1..])),
            "after removing {f:?}"
        );
    }
    assert!(t.is_empty());
    assert_eq!(format!("{t:?}"), empty, "nodes left behind");
}

#[test]
fn trie_remove_deep_leaf_keeps_branch() {
    let mut t = trie_of(&["a", "a/b/c"]);
    assert!(t.remove_if("a/b/c", |_| true));
    assert_eq!(shape(&t), shape(&trie_of(&["a"])));
    let mut t = trie_of(&["a/b/c", "a"]);
    assert!(t.remove_if("a", |_| true));
    assert_eq!(t.get("a/b/c").map(String::as_str), Some("a/b/c"));
    assert_eq!(shape(&t), shape(&trie_of(&["a/b/c"])));
    // Refused removal prunes nothing.
    let mut t = trie_of(&["a/+/c"]);
    assert!(!t.remove_if("a/+/c", |_| false));
    assert_eq!(shape(&t), shape(&trie_of(&["a/+/c"])));
    // A failed removal below an existing node leaves it intact.
    assert!(!t.remove_if("a/+/c/d", |_| true));
    assert!(!t.remove_if("a/+", |_| true));
    assert_eq!(shape(&t), shape(&trie_of(&["a/+/c"])));
}

#[test]
fn trie_reinsert_after_remove() {
    let mut t: Trie<u32> = Trie::default();
    *t.entry("a/+") = 5;
    assert!(t.remove_if("a/+", |_| true));
    assert_eq!(*t.entry("a/+"), 0, "a fresh default value");
    assert_eq!(t.len(), 1);
}

#[test]
fn trie_for_each_match_basic() {
    let t = trie_of(&["a/b", "a/+", "a/#", "#", "+/b", "+", "b", "a/b/c"]);
    assert_eq!(
        trie_matches(&t, "a/b"),
        sorted(&["a/b", "a/+", "a/#", "#", "+/b"])
    );
    assert_eq!(trie_matches(&t, "a"), sorted(&["a/#", "#", "+"]));
    assert_eq!(trie_matches(&t, "b"), sorted(&["#", "+", "b"]));
    assert_eq!(trie_matches(&t, "a/"), sorted(&["a/+", "a/#", "#"]));
    assert_eq!(trie_matches(&t, "a/b/c"), sorted(&["a/#", "#", "a/b/c"]));
    assert_eq!(trie_matches(&t, "c/b"), sorted(&["#", "+/b"]));
    assert_eq!(trie_matches(&t, "/b"), sorted(&["#", "+/b"]));
}

#[test]
fn trie_dollar_topics() {
    let t = trie_of(&[
        "#", "+", "+/x", "+/#", "$SYS/#", "$SYS/+", "$SYS/x", "$SYS", "a/#",
    ]);
    assert_eq!(
        trie_matches(&t, "$SYS/x"),
        sorted(&["$SYS/#", "$SYS/+", "$SYS/x"])
    );
    assert_eq!(trie_matches(&t, "$SYS"), sorted(&["$SYS/#", "$SYS"]));
    assert_eq!(trie_matches(&t, "$other/x"), Vec::<String>::new());
    assert_eq!(trie_matches(&t, "a/$x"), sorted(&["#", "+/#", "a/#"]));
    assert_eq!(trie_matches(&t, "b/x"), sorted(&["#", "+/x", "+/#"]));
}

#[test]
fn trie_empty_levels() {
    let t = trie_of(&["/", "+/+", "/+", "+/", "//", "#", "/#", "+"]);
    assert_eq!(
        trie_matches(&t, "/"),
        sorted(&["/", "+/+", "/+", "+/", "#", "/#"])
    );
    assert_eq!(trie_matches(&t, "//"), sorted(&["//", "#", "/#"]));
    assert_eq!(trie_matches(&t, "/a"), sorted(&["+/+", "/+", "#", "/#"]));
    assert_eq!(trie_matches(&t, "a/"), sorted(&["+/+", "+/", "#"]));
}

// ---------------------------------------------------------------------------
// TopicTree
// ---------------------------------------------------------------------------

#[test]
fn tree_empty() {
    let t: TopicTree<u32> = TopicTree::default();
    assert_eq!(t.len(), 0);
    assert!(t.is_empty());
    assert_eq!(t.get("a"), None);
    let mut n = 0;
    t.for_each_match("#", |_, _| n += 1);
    t.for_each_match("+", |_, _| n += 1);
    t.for_each_match("a", |_, _| n += 1);
    assert_eq!(n, 0);
}

#[test]
fn tree_insert_get_replace() {
    let mut t: TopicTree<u32> = TopicTree::default();
    assert_eq!(t.insert("a/b", 1), None);
    assert_eq!(t.len(), 1);
    assert_eq!(t.insert("a/b", 2), Some(1));
    assert_eq!(t.len(), 1);
    assert_eq!(t.insert("a", 3), None);
    assert_eq!(t.insert("/", 4), None);
    assert_eq!(t.insert("a/", 5), None);
    assert_eq!(t.len(), 4);
    assert_eq!(t.get("a/b"), Some(&2));
    assert_eq!(t.get("a"), Some(&3));
    assert_eq!(t.get("/"), Some(&4));
    assert_eq!(t.get("a/"), Some(&5));
    assert_eq!(t.get("a/b/c"), None);
    assert_eq!(t.get("b"), None);
    assert_eq!(t.get("//"), None);
    assert!(!t.is_empty());
}

#[test]
fn tree_remove() {
    let mut t = tree_of(&["a/b", "a", "a/b/c"]);
    assert_eq!(t.remove("x"), None);
    assert_eq!(t.remove("a/b/c/d"), None);
    assert_eq!(t.remove("a/"), None);
    assert_eq!(t.len(), 3);
    assert_eq!(t.remove("a/b").as_deref(), Some("a/b"));
    assert_eq!(t.len(), 2);
    assert_eq!(t.get("a/b"), None);
    assert_eq!(t.get("a/b/c").map(String::as_str), Some("a/b/c"));
    assert_eq!(t.remove("a/b"), None, "already removed");
    assert_eq!(shape(&t), shape(&tree_of(&["a", "a/b/c"])));
    assert_eq!(t.remove("a/b/c").as_deref(), Some("a/b/c"));
    assert_eq!(shape(&t), shape(&tree_of(&["a"])));
    assert_eq!(t.remove("a").as_deref(), Some("a"));
    assert!(t.is_empty());
    assert_eq!(
        format!("{t:?}"),
        format!("{:?}", TopicTree::<String>::default())
    );
}

#[test]
fn tree_remove_prunes_to_empty() {
    let topics = [
        "a/b/c/d", "a/b", "a", "/", "//", "$SYS/x/y", "x/y/z", "a/", "b",
    ];
    let mut t = tree_of(&topics);
    for (i, topic) in topics.iter().enumerate() {
        assert_eq!(t.remove(topic).as_deref(), Some(*topic));
        assert_eq!(t.len(), topics.len() - i - 1);
        assert_eq!(
            shape(&t),
            shape(&tree_of(&topics[i + 1..])),
            "after removing {topic:?}"
        );
    }
    assert_eq!(
        format!("{t:?}"),
        format!("{:?}", TopicTree::<String>::default())
    );
}

#[test]
fn tree_for_each_match_basic() {
    let t = tree_of(&["a", "a/b", "a/b/c", "a/c", "b", "b/b", "a/", "/", "/a"]);
    assert_eq!(
        tree_matches(&t, "a/#"),
        sorted(&["a", "a/b", "a/b/c", "a/c", "a/"])
    );
    assert_eq!(tree_matches(&t, "a/+"), sorted(&["a/b", "a/c", "a/"]));
    assert_eq!(tree_matches(&t, "+"), sorted(&["a", "b"]));
    assert_eq!(tree_matches(&t, "+/b"), sorted(&["a/b", "b/b"]));
    assert_eq!(
        tree_matches(&t, "+/+"),
        sorted(&["a/b", "a/c", "b/b", "a/", "/", "/a"])
    );
    assert_eq!(tree_matches(&t, "a/b"), sorted(&["a/b"]));
    assert_eq!(tree_matches(&t, "a/b/c/d"), Vec::<String>::new());
    assert_eq!(tree_matches(&t, "/#"), sorted(&["/", "/a"]));
    assert_eq!(tree_matches(&t, "/+"), sorted(&["/", "/a"]));
    assert_eq!(
        tree_matches(&t, "#"),
        sorted(&["a", "a/b", "a/b/c", "a/c", "b", "b/b", "a/", "/", "/a"])
    );
}

#[test]
fn tree_dollar_topics() {
    let t = tree_of(&["$SYS", "$SYS/x", "$SYS/x/y", "a", "a/$x", "$other"]);
    assert_eq!(tree_matches(&t, "#"), sorted(&["a", "a/$x"]));
    assert_eq!(tree_matches(&t, "+"), sorted(&["a"]));
    assert_eq!(tree_matches(&t, "+/x"), Vec::<String>::new());
    assert_eq!(tree_matches(&t, "+/#"), sorted(&["a", "a/$x"]));
    assert_eq!(
        tree_matches(&t, "$SYS/#"),
        sorted(&["$SYS", "$SYS/x", "$SYS/x/y"])
    );
    assert_eq!(tree_matches(&t, "$SYS/+"), sorted(&["$SYS/x"]));
    assert_eq!(tree_matches(&t, "$SYS"), sorted(&["$SYS"]));
    assert_eq!(tree_matches(&t, "a/+"), sorted(&["a/$x"]));
}

#[test]
fn tree_reports_topic_strings_with_empty_levels() {
    let t = tree_of(&["/", "//", "a//b", "/a/", "a/"]);
    // tree_matches checks that every reported topic equals its stored value.
    assert_eq!(
        tree_matches(&t, "#"),
        sorted(&["/", "//", "a//b", "/a/", "a/"])
    );
    assert_eq!(tree_matches(&t, "+/+/+"), sorted(&["//", "a//b", "/a/"]));
    assert_eq!(tree_matches(&t, "a/+/b"), sorted(&["a//b"]));
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

/// Topic levels from a small alphabet, so that random filters and topics
/// often share levels: empty, literals, `$` levels.
const TOPIC_LEVELS: &[&str] = &["a", "b", "$x", "", "$SYS", "ab"];

fn arb_topic() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOPIC_LEVELS), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is not empty", |t| !t.is_empty())
}

fn arb_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        3 => prop::sample::select(TOPIC_LEVELS),
        2 => Just("+"),
    ];
    (prop::collection::vec(level, 0..5), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |f| !f.is_empty())
}

/// An operation on a trie or a tree, by index into a universe of keys.
#[derive(Clone, Debug)]
enum Op {
    Insert(prop::sample::Index),
    Remove(prop::sample::Index, bool),
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (any::<prop::sample::Index>()).prop_map(Op::Insert),
            (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(i, b)| Op::Remove(i, b)),
        ],
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn prop_generated_names_are_valid(t in arb_topic(), f in arb_filter()) {
        prop_assert!(valid_topic_name(&t), "{:?}", t);
        prop_assert!(valid_filter(&f), "{:?}", f);
        prop_assert!(parse_filter(&f).is_some());
    }

    #[test]
    fn prop_matches_agrees_with_spec_matcher(f in arb_filter(), t in arb_topic()) {
        prop_assert_eq!(matches(&f, &t), spec_matches(&f, &t), "{:?} vs {:?}", f, t);
    }

    #[test]
    fn prop_topic_matches_itself(t in arb_topic()) {
        prop_assert!(matches(&t, &t));
        if !t.starts_with('$') {
            prop_assert!(matches("#", &t));
        }
    }

    #[test]
    fn prop_trie_visits_exactly_matching_filters(
        filters in prop::collection::btree_set(arb_filter(), 0..16),
        topics in prop::collection::vec(arb_topic(), 1..8),
    ) {
        let mut trie: Trie<String> = Trie::default();
        for f in &filters {
            *trie.entry(f) = f.clone();
        }
        prop_assert_eq!(trie.len(), filters.len());
        for f in &filters {
            prop_assert_eq!(trie.get(f), Some(f));
        }
        for topic in &topics {
            // Sorted with duplicates kept: each match is visited exactly once.
            let got = trie_matches(&trie, topic);
            let want: Vec<String> =
                filters.iter().filter(|f| matches(f, topic)).cloned().collect();
            prop_assert_eq!(got, want, "topic {:?}", topic);
        }
    }

    #[test]
    fn prop_trie_ops_follow_a_model(
        universe in prop::collection::vec(arb_filter(), 1..10),
        ops in arb_ops(),
        topics in prop::collection::vec(arb_topic(), 1..4),
    ) {
        let mut trie: Trie<u32> = Trie::default();
        let mut model: BTreeMap<String, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(i) => {
                    let f = &universe[i.index(universe.len())];
                    *trie.entry(f) += 1;
                    *model.entry(f.clone()).or_default() += 1;
                }
                Op::Remove(i, allow) => {
                    let f = &universe[i.index(universe.len())];
                    let mut seen = None;
                    let removed = trie.remove_if(f, |v| {
                        seen = Some(*v);
                        allow
                    });
                    prop_assert_eq!(seen, model.get(f).copied(), "predicate saw the wrong value");
                    let model_removed = allow && model.remove(f).is_some();
                    prop_assert_eq!(removed, model_removed);
                }
            }
            prop_assert_eq!(trie.len(), model.len());
            prop_assert_eq!(trie.is_empty(), model.is_empty());
            for f in &universe {
                prop_assert_eq!(trie.get(f), model.get(f));
            }
        }
        // No leftover nodes: same shape as a trie built from the model.
        let mut fresh: Trie<u32> = Trie::default();
        for (f, v) in &model {
            *fresh.entry(f) = *v;
        }
        prop_assert_eq!(shape(&trie), shape(&fresh));
        for topic in &topics {
            let mut got = Vec::new();
            trie.for_each_match(topic, |v| got.push(*v));
            got.sort_unstable();
            let mut want: Vec<u32> =
                model.iter().filter(|(f, _)| matches(f, topic)).map(|(_, v)| *v).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }
        // Remove everything: the trie is empty again.
        for f in model.keys() {
            prop_assert!(trie.remove_if(f, |_| true));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(format!("{:?}", trie), format!("{:?}", Trie::<u32>::default()));
    }

    #[test]
    fn prop_tree_visits_exactly_matching_topics(
        topics in prop::collection::btree_set(arb_topic(), 0..16),
        filters in prop::collection::vec(arb_filter(), 1..8),
    ) {
        let mut tree: TopicTree<String> = TopicTree::default();
        for t in &topics {
            prop_assert_eq!(tree.insert(t, t.clone()), None);
        }
        prop_assert_eq!(tree.len(), topics.len());
        for t in &topics {
            prop_assert_eq!(tree.get(t), Some(t));
        }
        for f in &filters {
            // tree_matches also checks each reported topic string.
            let got = tree_matches(&tree, f);
            let want: Vec<String> = topics.iter().filter(|t| matches(f, t)).cloned().collect();
            prop_assert_eq!(got, want, "filter {:?}", f);
        }
    }

    #[test]
    fn prop_tree_ops_follow_a_model(
        universe in prop::collection::vec(arb_topic(), 1..10),
        ops in arb_ops(),
        filters in prop::collection::vec(arb_filter(), 1..4),
    ) {
        let mut tree: TopicTree<u32> = TopicTree::default();
        let mut model: BTreeMap<String, u32> = BTreeMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            let n = n as u32;
            match op {
                Op::Insert(i) => {
                    let t = &universe[i.index(universe.len())];
                    prop_assert_eq!(tree.insert(t, n), model.insert(t.clone(), n));
                }
                Op::Remove(i, _) => {
                    let t = &universe[i.index(universe.len())];
                    prop_assert_eq!(tree.remove(t), model.remove(t));
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            prop_assert_eq!(tree.is_empty(), model.is_empty());
            for t in &universe {
                prop_assert_eq!(tree.get(t), model.get(t));
            }
        }
        let mut fresh: TopicTree<u32> = TopicTree::default();
        for (t, v) in &model {
            fresh.insert(t, *v);
        }
        prop_assert_eq!(shape(&tree), shape(&fresh));
        for f in &filters {
            let mut got = Vec::new();
            tree.for_each_match(f, |t, v| got.push((t.to_string(), *v)));
            got.sort();
            let want: Vec<(String, u32)> = model
                .iter()
                .filter(|(t, _)| matches(f, t))
                .map(|(t, v)| (t.clone(), *v))
                .collect();
            prop_assert_eq!(got, want, "filter {:?}", f);
        }
        for t in model.keys() {
            prop_assert!(tree.remove(t).is_some());
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(format!("{:?}", tree), format!("{:?}", TopicTree::<u32>::default()));
    }
}
