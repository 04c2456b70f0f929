//! The `mss` executable: see the library crate `mss` and the README for the commands.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    mss::cli::run(mss::cli::Cli::parse())
}
