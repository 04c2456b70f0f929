//! `mss-regload`: one registration load against a SIP server over UDP or TLS; the
//! report as one line of JSON on standard output.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mss_regload::{run, LoadConfig, Mode, ResumeWith, TlsVersions};

const USAGE: &str = "\
usage: mss-regload --server IP:PORT [--transport udp|tls] [--connections N] [--users U]
                   [--first-user I] [--seconds S] [--source IPv4] [--domain D]
                   [--contact HOST:PORT] [--tag T] [--server-pid PID] [--timeout S]
                   [--tls-version 1.2|1.3|any] [--resume tickets|session-ids|none]
                   [--reconnect-every K] [--json FILE]

N client threads (default 4), each with its own UDP socket or TLS connection from its own
loopback address (--source + thread number, default 127.0.0.1) and every N-th of the U
users t<I>…t<I+U-1> (default 400 from t0000), register in closed loops for S seconds
(default 10): REGISTER, 401, REGISTER with an MD5 digest (password: the bench rule), 200.
TLS: connections kept (--reconnect-every 0, the default) or a new one every K
registrations, resuming the thread's last session (--resume, default tickets: TLS 1.3
tickets, TLS 1.2 tickets or session ids) or not (none). --server-pid: the server's CPU
time per registration is read from /proc. Loopback servers only.";

struct Args {
    cfg: LoadConfig,
    json: Option<PathBuf>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut server: Option<SocketAddr> = None;
    let mut transport = "udp".to_owned();
    let mut versions = TlsVersions::Any;
    let mut resume = ResumeWith::Tickets;
    let mut reconnect_every = 0u32;
    let mut cfg = LoadConfig {
        server: SocketAddr::from(([127, 0, 0, 1], 5060)),
        mode: Mode::Udp,
        connections: 4,
        first_user: 0,
        users: 400,
        duration: Duration::from_secs(10),
        source: Ipv4Addr::LOCALHOST,
        domain: "bench.test".into(),
        contact: "127.0.0.1:5061".into(),
        tag: format!("rl{}", std::process::id()),
        server_pid: None,
        timeout: Duration::from_secs(5),
    };
    let mut json = None;
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        let seconds = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| (0.1..=600.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{flag} {v}: 0.1 to 600 seconds"))
        };
        match flag.as_str() {
            "--server" => server = Some(value.parse().map_err(|e| bad(&e))?),
            "--transport" => transport = value.clone(),
            "--connections" => cfg.connections = value.parse().map_err(|e| bad(&e))?,
            "--users" => cfg.users = value.parse().map_err(|e| bad(&e))?,
            "--first-user" => cfg.first_user = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => cfg.duration = seconds(value)?,
            "--timeout" => cfg.timeout = seconds(value)?,
            "--source" => cfg.source = value.parse().map_err(|e| bad(&e))?,
            "--domain" => cfg.domain = value.clone(),
            "--contact" => cfg.contact = value.clone(),
            "--tag" => cfg.tag = value.clone(),
            "--server-pid" => cfg.server_pid = Some(value.parse().map_err(|e| bad(&e))?),
            "--tls-version" => versions = TlsVersions::parse(value).map_err(|e| bad(&e))?,
            "--resume" => resume = ResumeWith::parse(value).map_err(|e| bad(&e))?,
            "--reconnect-every" => reconnect_every = value.parse().map_err(|e| bad(&e))?,
            "--json" => json = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    cfg.server = server.ok_or_else(|| format!("--server is required\n{USAGE}"))?;
    // The tool floods what it is pointed at: loopback only.
    if !cfg.server.ip().is_loopback() || !cfg.source.is_loopback() {
        return Err("--server and --source must be loopback addresses".into());
    }
    if !(1..=1000).contains(&cfg.connections) {
        return Err(format!("--connections {}: 1 to 1000", cfg.connections));
    }
    cfg.mode = match transport.as_str() {
        "udp" => Mode::Udp,
        "tls" => Mode::Tls {
            versions,
            resume,
            reconnect_every,
        },
        other => return Err(format!("--transport {other}: udp or tls")),
    };
    Ok(Args { cfg, json })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = match run(&args.cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mss-regload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string(&report) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("mss-regload: report: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{json}");
    if let Some(path) = args.json {
        if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
            eprintln!("mss-regload: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
