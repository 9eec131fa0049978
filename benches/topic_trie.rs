//! Subscription trie with 1M subscriptions: insert, and match for exact,
//! `+`, `#` and `$share` filters. Run: `cargo bench --bench topic_trie`.

use criterion::{Criterion, criterion_group, criterion_main};
use ringmq::topic::Trie;
use std::hint::black_box;

const SUBSCRIPTIONS: usize = 1_000_000;

/// 1M filters: mostly exact per-device topics, plus wildcard and shared ones.
fn filters() -> Vec<String> {
    (0..SUBSCRIPTIONS)
        .map(|i| match i % 10 {
            0 => format!("fleet/{}/+/status", i % 5000),
            1 => format!("fleet/{}/#", i % 7000),
            2 => format!("$share/g{}/fleet/{}/status", i % 16, i % 3000),
            _ => format!("user/{i}"),
        })
        .collect()
}

fn build(filters: &[String]) -> Trie<u32> {
    let mut t = Trie::default();
    for f in filters {
        // The broker parses `$share/g/` off before inserting; so does this.
        let key = f
            .strip_prefix("$share/")
            .and_then(|r| r.split_once('/'))
            .map_or(f.as_str(), |(_, f)| f);
        *t.entry(key) += 1;
    }
    t
}

fn bench_trie(c: &mut Criterion) {
    let filters = filters();
    let mut g = c.benchmark_group("trie_1M");
    g.sample_size(10);
    g.bench_function("insert_1M", |b| b.iter(|| black_box(build(&filters).len())));
    let trie = build(&filters);
    for (name, topic) in [
        ("match_exact", "user/777777"),
        ("match_plus", "fleet/42/door/status"),
        ("match_hash", "fleet/43/engine/temp/1"),
        ("match_share", "fleet/2042/status"),
        ("match_none", "nobody/here"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0u32;
                trie.for_each_match(black_box(topic), |v| n += *v);
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_trie);
criterion_main!(benches);
