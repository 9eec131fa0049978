//! The `ringmq-bench` load generator; see `ringmq::bench`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(ringmq::bench::main());
}
