//! `mss-rtpload run`: G.711-sized RTP through the mss relay and rtpengine (and the direct
//! path) in one invocation; a line per run on standard output, everything in `--json`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mss_media::io::{ReceiveMode, Scheduling};
use mss_media::PortRange;
use mss_rtpload::{procfs, run, LoadConfig, RtpengineOptions, RunReport, TargetKind};
use serde::Serialize;

const USAGE: &str = "\
usage: mss-rtpload run [--calls N] [--seconds S]
                       [--targets direct,mss,mss-slice,mss-kernel-slice,mss-recvmmsg,
                                  mss-plain,rtpengine,rtpengine-1t]
                       [--repeat R] [--json FILE] [--pidfile FILE]
                       [--relay-address IP] [--mss-ports FIRST-LAST]
                       [--rtpengine PATH] [--rtpengine-ng IP:PORT]
                       [--rtpengine-ports FIRST-LAST] [--rtpengine-threads N]
                       [--rtpengine-log FILE]

Targets: direct (no relay: the baseline), mss (the mss relay thread as mss serve runs it:
io_uring, SCHED_FIFO priority 10 where permitted and the machine has 2 CPUs or more, else
a 0.1-ms EEVDF slice), mss-slice (io_uring, SCHED_OTHER with the 0.1-ms slice: mss
without the privilege), mss-kernel-slice (io_uring, the kernel's default slice),
mss-recvmmsg (epoll and recvmmsg, 0.1-ms slice), mss-plain (epoll and recv_from, 0.1-ms
slice), rtpengine (userspace forwarding, --rtpengine-threads or its default), rtpengine-1t
(one worker thread).
Each target in turn (the order reversed every other repetition), each in a fresh process
of this program (`mss-rtpload one --targets NAME ...`, which prints that run's report as
JSON): N calls on loopback,
both endpoints of each sending a 172-byte RTP packet every 20 ms for S seconds; the far
side checks sequence numbers and timestamps, counts loss and reordering, jitter and
transit time; the relay's CPU time and memory are read from /proc.
Defaults: 100 calls, 5 s, direct,mss,rtpengine, 1 repetition, mss ports 30000-39999 and
rtpengine ports 40000-49999 on 127.0.0.1, rtpengine ng on 127.0.0.1:22230.
Limits: 1-5000 calls, 0.1-120 s, 1-10 repetitions.";

struct Args {
    /// `one`: a single target in this process, its report as JSON on standard output
    /// (what `run` starts for each target, so that every measurement has a fresh process).
    one: bool,
    calls: usize,
    seconds: f64,
    targets: Vec<String>,
    repeat: usize,
    json: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    relay_address: IpAddr,
    mss_ports: (u16, u16),
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
    let one = match argv.first().map(String::as_str) {
        Some("run") => false,
        Some("one") => true,
        _ => return Err(USAGE.into()),
    };
    let mut a = Args {
        one,
        calls: 100,
        seconds: 5.0,
        targets: vec!["direct".into(), "mss".into(), "rtpengine".into()],
        repeat: 1,
        json: None,
        pidfile: None,
        relay_address: IpAddr::from([127, 0, 0, 1]),
        mss_ports: (30000, 39999),
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
                PortRange::new(f, l).map_err(|e| bad(&e))?;
                a.mss_ports = (f, l);
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
    // The tool floods what it is pointed at: loopback only.
    if !a.relay_address.is_loopback() || !a.rtpengine_ng.ip().is_loopback() {
        return Err("--relay-address and --rtpengine-ng must be loopback addresses".into());
    }
    if a.one && a.targets.len() != 1 {
        return Err("one: --targets names exactly one target".into());
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
const TARGETS: [&str; 8] = [
    "direct",
    "mss",
    "mss-slice",
    "mss-kernel-slice",
    "mss-recvmmsg",
    "mss-plain",
    "rtpengine",
    "rtpengine-1t",
];

fn kind(a: &Args, name: &str) -> Result<TargetKind, String> {
    let ports = PortRange::new(a.mss_ports.0, a.mss_ports.1).map_err(|e| e.to_string())?;
    let mss = |name, receive, scheduling| TargetKind::Mss {
        name,
        address: a.relay_address,
        ports,
        receive,
        scheduling,
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
    Ok(match name {
        "mss" => mss("mss", ReceiveMode::Uring, Scheduling::auto()),
        "mss-slice" => mss("mss-slice", ReceiveMode::Uring, Scheduling::default()),
        "mss-kernel-slice" => mss(
            "mss-kernel-slice",
            ReceiveMode::Uring,
            Scheduling::KERNEL_DEFAULT,
        ),
        "mss-recvmmsg" => mss("mss-recvmmsg", ReceiveMode::Batched, Scheduling::default()),
        "mss-plain" => mss("mss-plain", ReceiveMode::Plain, Scheduling::default()),
        "rtpengine" => rtpengine(a.rtpengine_threads),
        "rtpengine-1t" => rtpengine(Some(1)),
        _ => TargetKind::Direct,
    })
}

/// `one`: runs the single target here and prints its report as JSON.
fn run_one(a: &Args) -> ExitCode {
    let cfg = LoadConfig::new(a.calls, Duration::from_secs_f64(a.seconds));
    let result = kind(a, &a.targets[0]).and_then(|k| run(&k, &cfg).map_err(|e| e.to_string()));
    match result.and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs target `name` in a fresh process of this program (`one`), so that its memory
/// reading starts from a clean process and one target's failure stops nothing else.
fn run_child(a: &Args, name: &str) -> Result<RunReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let mut args: Vec<String> = vec![
        "one".into(),
        "--targets".into(),
        name.into(),
        "--calls".into(),
        a.calls.to_string(),
        "--seconds".into(),
        a.seconds.to_string(),
        "--relay-address".into(),
        a.relay_address.to_string(),
        "--mss-ports".into(),
        format!("{}-{}", a.mss_ports.0, a.mss_ports.1),
        "--rtpengine".into(),
        a.rtpengine.clone(),
        "--rtpengine-ng".into(),
        a.rtpengine_ng.to_string(),
        "--rtpengine-ports".into(),
        format!("{}-{}", a.rtpengine_ports.0, a.rtpengine_ports.1),
    ];
    if let Some(t) = a.rtpengine_threads {
        args.extend(["--rtpengine-threads".into(), t.to_string()]);
    }
    if let Some(p) = &a.rtpengine_log {
        args.extend(["--rtpengine-log".into(), p.display().to_string()]);
    }
    if let Some(p) = &a.pidfile {
        args.extend(["--pidfile".into(), p.display().to_string()]);
    }
    let child = std::process::Command::new(exe)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting a run: {e}"))?;
    if let Some(p) = &a.pidfile {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .and_then(|mut f| writeln!(f, "{}", child.id()));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for a run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} ({})", err.trim(), out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the run's report: {e}"))
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
        "{:<9} calls {:>4} sent {:>7} ({:>6.0}/s, the tool using {:.0}% of a core) lost {} reordered {} dup {} seq/ts/ssrc changed {}/{}/{} misdelivered {} | transit p50 {:.0} p99 {:.0} max {:.0} µs (read p99 {:.0}, unstamped {}), jitter mean {:.3} max {:.3} ms | send late p99 {:.0} µs",
        r.target,
        r.calls,
        t.sent,
        r.sent_pps,
        100.0 * r.tool_cpu_share.unwrap_or(f64::NAN),
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
        r.transit_read.p99_us,
        r.unstamped,
        r.jitter_mean_ms,
        t.jitter_max_ms,
        r.send_lateness.p99_us,
    );
    if let Some(u) = &r.relay {
        s += &format!(
            " | relay CPU {:.0} ms (waited {:.0} ms, {:.2} sleeps and {:.2} preemptions/packet) = {:.2} µs/packet ({:.0}% of a core), RSS {} -> {} kB ({:.1} kB/call)",
            u.cpu_ms,
            u.wait_ms,
            u.sleeps_per_packet,
            u.preemptions_per_packet,
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
    if a.one {
        return run_one(&a);
    }
    let (load_start, cpus) = procfs::machine_load();
    let mut runs = Vec::new();
    let mut failed = false;
    for rep in 0..a.repeat {
        let mut order: Vec<&String> = a.targets.iter().collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for name in order {
            let entry = match run_child(&a, name) {
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
                    eprintln!("the {name} run failed: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        parse_args(&s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn the_defaults_and_the_limits() {
        let a = parse("run").unwrap();
        assert_eq!((a.calls, a.repeat, a.one), (100, 1, false));
        assert_eq!(a.targets, ["direct", "mss", "rtpengine"]);
        let a = parse("one --targets mss-plain --calls 5000 --seconds 0.5").unwrap();
        assert!(a.one);
        assert!(matches!(
            kind(&a, "mss-plain"),
            Ok(TargetKind::Mss {
                receive: ReceiveMode::Plain,
                ..
            })
        ));
        assert_eq!(kind(&a, "mss-slice").unwrap().name(), "mss-slice");
        assert_eq!(
            kind(&a, "mss-kernel-slice").unwrap().name(),
            "mss-kernel-slice"
        );
        assert_eq!(kind(&a, "mss").unwrap().name(), "mss");
        assert_eq!(kind(&a, "mss-recvmmsg").unwrap().name(), "mss-recvmmsg");
        for bad in [
            "",
            "walk",
            "run --calls 0",
            "run --calls 5001",
            "run --seconds 121",
            "run --repeat 11",
            "run --targets mss,asterisk",
            "run --mss-ports 30001-30000",
            "run --calls",
            "run --bogus 1",
            "one --targets mss,rtpengine",
            "run --relay-address 10.0.0.1",
            "run --rtpengine-ng 192.0.2.1:22222",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
