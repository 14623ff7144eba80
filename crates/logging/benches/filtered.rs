//! The cost of a log call that its scope's level filters out, beside a loop that makes no
//! log call at all and an enabled call into a sink that does nothing.
//!
//!   cargo bench -p confab-logging --bench filtered
//!
//! Prints medians of 7 runs of 20 million calls each; target for the filtered call: < 20 ns.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use confab_logging::{configure_loggers, Level, ScopeConfig};
use tracing_subscriber::layer::SubscriberExt;

const CALLS: u64 = 20_000_000;

fn median_ns(mut f: impl FnMut() -> u64) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            black_box(f());
            started.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .collect();
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    runs[3]
}

fn main() {
    let subscriber = tracing_subscriber::registry().with(confab_logging::layer());
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
    let quiet: confab_logging::Sink = Arc::new(|_, _, _, _| {});
    configure_loggers([
        (
            "default",
            ScopeConfig::level(Level::Warn).with_sink(quiet.clone()),
        ),
        ("connection", ScopeConfig::level(Level::Error)),
        ("client", ScopeConfig::level(Level::Debug)),
    ]);

    let baseline = median_ns(|| {
        let mut acc = 0u64;
        for i in 0..CALLS {
            acc = acc.wrapping_add(black_box(i));
        }
        acc
    });
    let filtered = median_ns(|| {
        let mut acc = 0u64;
        for i in 0..CALLS {
            acc = acc.wrapping_add(black_box(i));
            tracing::warn!(target: "connection", attempt = i, "filtered out by the scope's level");
        }
        acc
    });
    let filtered_trace = median_ns(|| {
        let mut acc = 0u64;
        for i in 0..CALLS {
            acc = acc.wrapping_add(black_box(i));
            tracing::trace!(target: "token", attempt = i, "below every level");
        }
        acc
    });
    println!("loop with no log call:                       {baseline:.2} ns per iteration");
    println!("warn! in scope 'connection' (level error):   {filtered:.2} ns per iteration ({:.2} ns over the loop)", filtered - baseline);
    println!("trace! in scope 'token' (default warn):      {filtered_trace:.2} ns per iteration ({:.2} ns over the loop)", filtered_trace - baseline);

    // For scale: a call that passes and reaches a sink that does nothing.
    let started = Instant::now();
    let enabled_calls = 1_000_000u64;
    for i in 0..enabled_calls {
        tracing::debug!(target: "client", attempt = i, "reaches the sink");
    }
    println!(
        "debug! in scope 'client' (level debug), to a no-op sink: {:.1} ns per call",
        started.elapsed().as_nanos() as f64 / enabled_calls as f64
    );
}
