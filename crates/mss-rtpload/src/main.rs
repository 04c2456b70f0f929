//! `mss-rtpload run`: G.711-sized RTP through the mss relay and rtpengine (and the direct
//! path) in one invocation; a line per run on standard output, everything in `--json`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mss_media::io::ReceiveMode;
use mss_media::PortRange;
use mss_rtpload::{procfs, run, LoadConfig, RtpengineOptions, RunReport, TargetKind};
use serde::Serialize;

const USAGE: &str = "\
usage: mss-rtpload run [--calls N] [--seconds S]
                       [--targets direct,mss,mss-plain,rtpengine,rtpengine-1t]
                       [--repeat R] [--json FILE] [--pidfile FILE]
                       [--relay-address IP] [--mss-ports FIRST-LAST]
                       [--rtpengine PATH] [--rtpengine-ng IP:PORT]
                       [--rtpengine-ports FIRST-LAST] [--rtpengine-threads N]
                       [--rtpengine-log FILE]

Targets: direct (no relay: the baseline), mss (the mss relay thread, recvmmsg), mss-plain
(the same with recv_from), rtpengine (userspace forwarding, --rtpengine-threads or its
default), rtpengine-1t (one worker thread).
Each target in turn (the order reversed every other repetition): N calls on loopback,
both endpoints of each sending a 172-byte RTP packet every 20 ms for S seconds; the far
side checks sequence numbers and timestamps, counts loss and reordering, jitter and
transit time; the relay's CPU time and memory are read from /proc.
Defaults: 100 calls, 5 s, direct,mss,rtpengine, 1 repetition, mss ports 30000-39999 and
rtpengine ports 40000-49999 on 127.0.0.1, rtpengine ng on 127.0.0.1:22230.
Limits: 1-5000 calls, 0.1-120 s, 1-10 repetitions.";

struct Args {
    calls: usize,
    seconds: f64,
    targets: Vec<String>,
    repeat: usize,
    json: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    relay_address: IpAddr,
    mss_ports: PortRange,
    rtpengine: String,
    rtpengine_ng: SocketAddr,
    rtpengine_ports: (u16, u16),
    rtpengine_threads: Option<u32>,
    rtpengine_log: Option<PathBuf>,
}

fn ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("ports {s:?}: expected FIRST-LAST"))?;
    let p = |x: &str| x.parse::<u16>().map_err(|e| format!("ports {s:?}: {e}"));
    Ok((p(a)?, p(b)?))
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    if argv.first().map(String::as_str) != Some("run") {
        return Err(USAGE.into());
    }
    let mut a = Args {
        calls: 100,
        seconds: 5.0,
        targets: vec!["direct".into(), "mss".into(), "rtpengine".into()],
        repeat: 1,
        json: None,
        pidfile: None,
        relay_address: IpAddr::from([127, 0, 0, 1]),
        mss_ports: PortRange::new(30000, 39999).map_err(|e| e.to_string())?,
        rtpengine: "rtpengine".into(),
        rtpengine_ng: SocketAddr::from(([127, 0, 0, 1], 22230)),
        rtpengine_ports: (40000, 49999),
        rtpengine_threads: None,
        rtpengine_log: None,
    };
    let mut it = argv[1..].iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--calls" => a.calls = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--targets" => a.targets = value.split(',').map(str::to_owned).collect(),
            "--repeat" => a.repeat = value.parse().map_err(|e| bad(&e))?,
            "--json" => a.json = Some(value.into()),
            "--pidfile" => a.pidfile = Some(value.into()),
            "--relay-address" => a.relay_address = value.parse().map_err(|e| bad(&e))?,
            "--mss-ports" => {
                let (f, l) = ports(value)?;
                a.mss_ports = PortRange::new(f, l).map_err(|e| bad(&e))?;
            }
            "--rtpengine" => a.rtpengine = value.clone(),
            "--rtpengine-ng" => a.rtpengine_ng = value.parse().map_err(|e| bad(&e))?,
            "--rtpengine-ports" => a.rtpengine_ports = ports(value)?,
            "--rtpengine-threads" => {
                a.rtpengine_threads = Some(value.parse().map_err(|e| bad(&e))?)
            }
            "--rtpengine-log" => a.rtpengine_log = Some(value.into()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if !(1..=5000).contains(&a.calls) {
        return Err(format!("--calls {}: 1 to 5000", a.calls));
    }
    if !(0.1..=120.0).contains(&a.seconds) {
        return Err(format!("--seconds {}: 0.1 to 120", a.seconds));
    }
    if !(1..=10).contains(&a.repeat) {
        return Err(format!("--repeat {}: 1 to 10", a.repeat));
    }
    for t in &a.targets {
        if !TARGETS.contains(&t.as_str()) {
            return Err(format!(
                "--targets: unknown target {t:?} ({})",
                TARGETS.join(", ")
            ));
        }
    }
    Ok(a)
}

/// The target names `--targets` accepts.
const TARGETS: [&str; 5] = ["direct", "mss", "mss-plain", "rtpengine", "rtpengine-1t"];

fn kind(a: &Args, name: &str) -> TargetKind {
    let mss = |receive| TargetKind::Mss {
        address: a.relay_address,
        ports: a.mss_ports,
        receive,
    };
    let rtpengine = |threads| {
        TargetKind::Rtpengine(RtpengineOptions {
            binary: a.rtpengine.clone(),
            ng: a.rtpengine_ng,
            ports: a.rtpengine_ports,
            threads,
            log: a.rtpengine_log.clone(),
            pidfile: a.pidfile.clone(),
        })
    };
    match name {
        "mss" => mss(ReceiveMode::Batched),
        "mss-plain" => mss(ReceiveMode::Plain),
        "rtpengine" => rtpengine(a.rtpengine_threads),
        "rtpengine-1t" => rtpengine(Some(1)),
        _ => TargetKind::Direct,
    }
}

/// One run's outcome in the JSON report.
#[derive(Serialize)]
struct Entry {
    repetition: usize,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<RunReport>,
}

#[derive(Serialize)]
struct Report {
    command: String,
    calls: usize,
    seconds: f64,
    cpus: usize,
    loadavg_start: f64,
    loadavg_end: f64,
    runs: Vec<Entry>,
}

fn line(r: &RunReport) -> String {
    let t = &r.totals;
    let mut s = format!(
        "{:<9} calls {:>4} sent {:>7} ({:>6.0}/s) lost {} reordered {} dup {} seq/ts/ssrc changed {}/{}/{} misdelivered {} | transit p50 {:.0} p99 {:.0} max {:.0} µs, jitter mean {:.3} max {:.3} ms | send late p99 {:.0} µs",
        r.target,
        r.calls,
        t.sent,
        r.sent_pps,
        t.lost,
        t.reordered,
        t.duplicates,
        t.seq_mismatch,
        t.timestamp_mismatch,
        t.ssrc_mismatch,
        r.misdelivered,
        r.transit.p50_us,
        r.transit.p99_us,
        r.transit.max_us,
        r.jitter_mean_ms,
        t.jitter_max_ms,
        r.send_lateness.p99_us,
    );
    if let Some(u) = &r.relay {
        s += &format!(
            " | relay CPU {:.0} ms (waited {:.0} ms) = {:.2} µs/packet ({:.0}% of a core), RSS {} -> {} kB ({:.1} kB/call)",
            u.cpu_ms,
            u.wait_ms,
            u.cpu_us_per_packet,
            100.0 * u.core_share,
            u.rss_idle_kb,
            u.rss_calls_kb.max(u.rss_end_kb),
            u.kb_per_call
        );
    }
    s
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (load_start, cpus) = procfs::machine_load();
    let mut cfg = LoadConfig::new(a.calls, Duration::from_secs_f64(a.seconds));
    cfg.drain = Duration::from_secs(1);
    let mut runs = Vec::new();
    let mut failed = false;
    for rep in 0..a.repeat {
        let mut order: Vec<&String> = a.targets.iter().collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for name in order {
            let entry = match run(&kind(&a, name), &cfg) {
                Ok(r) => {
                    println!("{}", line(&r));
                    Entry {
                        repetition: rep,
                        target: name.clone(),
                        error: None,
                        report: Some(r),
                    }
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed = true;
                    Entry {
                        repetition: rep,
                        target: name.clone(),
                        error: Some(e.to_string()),
                        report: None,
                    }
                }
            };
            runs.push(entry);
        }
    }
    let report = Report {
        command: std::iter::once("mss-rtpload".to_string())
            .chain(argv.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        calls: a.calls,
        seconds: a.seconds,
        cpus,
        loadavg_start: load_start,
        loadavg_end: procfs::machine_load().0,
        runs,
    };
    if let Some(path) = &a.json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("report: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
