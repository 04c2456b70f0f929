//! The command line (DESIGN.md §1): `mss serve`, `mss check-config`, `mss status`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{self, ConfigError};
use crate::{serve, status};

/// Default address of the admin API, as `mss status` looks for it.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:5080";

/// mss: a SIP communications server (registrar, external lines, instant messages).
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(name = "mss", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The sub-commands.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the server (on embedded defaults without --config and ./mss.ini).
    Serve(ServeArgs),
    /// Validate the configuration; every error names file:line, section and key.
    CheckConfig(CheckConfigArgs),
    /// Show lines, registrations and stored messages of a running server.
    Status(StatusArgs),
}

/// Options of `mss serve`.
#[derive(Debug, Args, PartialEq, Eq, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (default: ./mss.ini if it exists, else embedded defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Variable-parameter file (default: mss_var_param.ini beside the configuration).
    #[arg(long, value_name = "FILE")]
    pub var: Option<PathBuf>,
    /// Data folder; overrides data_dir of the configuration.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// SIP listen addresses (`udp:IP:PORT, tcp:IP:PORT`, also `tls:`, `ws:`, `wss:`);
    /// override listen of the configuration.
    #[arg(long, value_name = "LIST")]
    pub listen: Option<String>,
    /// Address of the admin API (IP:PORT); overrides admin of the configuration.
    #[arg(long, value_name = "IP:PORT")]
    pub admin: Option<std::net::SocketAddr>,
}

/// Options of `mss check-config`.
#[derive(Debug, Args, PartialEq, Eq, Clone, Default)]
pub struct CheckConfigArgs {
    /// Configuration file (default: ./mss.ini if it exists, else embedded defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Variable-parameter file (default: mss_var_param.ini beside the configuration).
    #[arg(long, value_name = "FILE")]
    pub var: Option<PathBuf>,
}

/// Options of `mss status`.
#[derive(Debug, Args, PartialEq, Eq, Clone)]
pub struct StatusArgs {
    /// Address of the admin API (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
    pub admin: String,
}

/// Sets up `tracing` on stderr with a `RUST_LOG`-style filter (default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            match serve::main(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mss: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig(args) => check_config(&args),
        Command::Status(args) => match status::run(&args.admin) {
            Ok(text) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mss status: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `mss check-config`: prints `OK` and a summary, or every error and exits with 1.
fn check_config(args: &CheckConfigArgs) -> ExitCode {
    match config::load(args.config.as_deref(), args.var.as_deref()) {
        Ok(loaded) => {
            println!("OK");
            print!("{}", loaded.summary());
            for w in loaded.warnings() {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(diags)) => {
            eprintln!("{diags}");
            eprintln!(
                "mss check-config: {} error{} found",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mss check-config: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mss").chain(args.iter().copied()))
    }

    #[test]
    fn serve_with_and_without_options() {
        assert_eq!(
            parse(&["serve"]).unwrap().command,
            Command::Serve(ServeArgs::default())
        );
        let c = parse(&[
            "serve",
            "--config",
            "a.ini",
            "--var",
            "v.ini",
            "--data-dir",
            "/tmp/d",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::Serve(ServeArgs {
                config: Some("a.ini".into()),
                var: Some("v.ini".into()),
                data_dir: Some("/tmp/d".into()),
                listen: None,
                admin: None,
            })
        );
    }

    #[test]
    fn check_config_and_status() {
        let c = parse(&["check-config", "--config", "x.ini"]).unwrap();
        assert_eq!(
            c.command,
            Command::CheckConfig(CheckConfigArgs {
                config: Some("x.ini".into()),
                var: None,
            })
        );
        let c = parse(&["status"]).unwrap();
        assert_eq!(
            c.command,
            Command::Status(StatusArgs {
                admin: DEFAULT_ADMIN.into()
            })
        );
        let c = parse(&["status", "--admin", "127.0.0.1:9999"]).unwrap();
        assert_eq!(
            c.command,
            Command::Status(StatusArgs {
                admin: "127.0.0.1:9999".into()
            })
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["serve", "--bogus"]).is_err());
        assert!(parse(&["status", "--data-dir", "x"]).is_err());
        assert!(parse(&["serve", "--admin", "nowhere"]).is_err());
        assert!(parse(&["launch"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
