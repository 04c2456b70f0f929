//! The `mss` executable: see the library crate `mss` and the README for the commands.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: per-thread heaps, so the worker and the store threads never contend on an
/// allocator lock when one frees what the other allocated (every REGISTER's binding
/// record crosses to the store writer and is freed there).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mss::cli::run(mss::cli::Cli::parse())
}
