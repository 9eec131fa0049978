//! The `ringmq` binary: flags and config file → [`ringmq::config::Config`] →
//! the cores, until SIGINT or SIGTERM.

use clap::Parser;
use ringmq::config::{Cli, Config};

/// mimalloc 2.x (libmimalloc-sys feature `v2`). The crate's default, 3.x,
/// held more memory per idle connection: 19,000 idle clients of
/// `ringmq-bench conn`, KiB of broker RSS each, `--cores 2` / `--cores 1`:
/// 3.x 2.1-2.5 / 1.7-1.9, 2.x 1.3-1.5 / 1.4-1.5; the throughput scenarios
/// measured the same within noise (interleaved `bench.py --repeat 3`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    return_freed_pages_at_once();
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringmq: {e}");
            std::process::exit(2);
        }
    };
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .format_timestamp_millis()
        .init();
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringmq: cannot install signal handlers: {e}");
            std::process::exit(1);
        }
    };
    let server = match ringmq::server::start(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            eprintln!("ringmq: {e}");
            std::process::exit(1);
        }
    };
    if let Some(sig) = signals.forever().next() {
        log::info!("signal {sig}: shutting down");
    }
    server.stop();
    server.join();
    log::info!("stopped");
}

/// mimalloc keeps freed pages resident for a while (`purge_delay`, 10 ms)
/// and only purges them when the thread allocates again: a core that goes
/// quiet after a connect burst would hold the burst's transient memory
/// forever (0.3-0.6 KiB per connection held with mimalloc 3.x, ~0.1 with
/// 2.x, measured with `bench-scripts/bench.py --only idle_conns`). Purging at once costs
/// nothing measurable in the throughput scenarios (a 10 ms delay measured
/// the same in QoS 0 fan-out). Blocks freed by another core are a separate
/// matter: a quiet core collects them once a second (`server::ticker`).
/// `MIMALLOC_PURGE_DELAY` in the environment still overrides this.
fn return_freed_pages_at_once() {
    // mimalloc.h's `mi_option_purge_delay` (between `eager_commit_delay`,
    // 14, and `use_numa_nodes`, 16), which libmimalloc-sys does not name.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option has no preconditions.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}
