//! The `ringmq` binary: flags and config file → [`ringmq::config::Config`] →
//! the cores, until SIGINT or SIGTERM.

use clap::Parser;
use ringmq::config::{Cli, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
