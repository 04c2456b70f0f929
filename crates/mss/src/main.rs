//! The `mss` executable: see the library crate `mss` and the README for the commands.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of the C library's allocator. A call allocates and frees a few
/// hundred small buffers (messages, headers, dialog and transaction state), many of them
/// freed on another thread than the one that allocated them (the store's and the CSV
/// writer's). The C library's allocator served that with chunk coalescing
/// (`malloc_consolidate`, `unlink_chunk`) at about 14 % of the worker's CPU; with jemalloc
/// the calls benchmark's CPU per call at 800–3,200 calls/s is 20–25 % lower
/// (docs/perf-log.md, calls round 4). mimalloc was tried and was slower.
/// `serve/memory.rs` purges its arenas where the C library's heap was trimmed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    mss::cli::run(mss::cli::Cli::parse())
}
