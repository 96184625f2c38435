//! `cargo bench --bench parse`: the fast KDL parser (src/syntax/fast.rs) against the kdl crate on
//! a generated topology of 10,000 jobs (benches/common), the median of several runs each. The
//! fast path must be at least ten times faster. That both build the same document is
//! tests/kdl_differential.rs's part (`topology_agrees`, on the same generator).

use std::time::{Duration, Instant};

use bkc::syntax::parse_fast;
use kdl::KdlDocument;

mod common;

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let text = common::topology(10_000, 1_000, None);
    assert!(
        parse_fast(&text).is_some(),
        "the fast path takes the benchmark topology"
    );
    let t_fast = median(
        || {
            std::hint::black_box(parse_fast(std::hint::black_box(&text)));
        },
        9,
    );
    let t_kdl = median(
        || {
            std::hint::black_box(std::hint::black_box(&text).parse::<KdlDocument>().ok());
        },
        3,
    );
    let mb = text.len() as f64 / 1e6;
    println!(
        "10,000 jobs, {:.2} MB: fast {:.1} ms ({:.0} MB/s), kdl {:.1} ms ({:.1} MB/s), {:.1}x",
        mb,
        t_fast.as_secs_f64() * 1e3,
        mb / t_fast.as_secs_f64(),
        t_kdl.as_secs_f64() * 1e3,
        mb / t_kdl.as_secs_f64(),
        t_kdl.as_secs_f64() / t_fast.as_secs_f64()
    );
    assert!(t_kdl >= t_fast * 10, "less than 10x faster");
}
