//! Fake VoIP providers for the integration tests of external lines.
//!
//! Include it from a test file with
//! `#[path = "providers/support.rs"] mod providers;`. It uses `std` only.
//!
//! Each provider runs as a child process in its own process group, bound to
//! `127.0.0.1` on a free UDP port, with all its files in a fresh temp dir.
//! The returned [`ProviderGuard`] stops the whole group (SIGTERM, then
//! SIGKILL) and removes the temp dir when dropped. Every wait is bounded, and
//! every process also ends by itself after [`MAX_LIFETIME`] even if the test
//! process is killed before it can drop the guard.
//!
//! See `README.md` next to this file for the behaviour of each fixture.

#![allow(dead_code, unreachable_pub)]

#[path = "ports.rs"]
mod ports;
#[path = "procfs.rs"]
pub mod procfs;

pub use ports::{free_udp_port, wait_for_udp, wait_for_udp_bound};

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procfs::PortOwner;

/// The folder holding the fixtures (`kamailio-provider.cfg`, `uas-*.xml`).
pub const PROVIDERS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/providers");

/// How long a provider may live at most; it stops by itself afterwards.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// How long [`start_kamailio`] and [`start_sipp`] wait for the port to be ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The digest realm of both the Kamailio fixture and `uas-407.xml`.
pub const PROVIDER_REALM: &str = "provider.test";

/// Why a provider could not be started.
#[derive(Debug)]
pub enum ProviderError {
    /// The program is not installed (run `scripts/install-test-deps.sh`).
    NotInstalled {
        /// `kamailio` or `sipp`.
        program: &'static str,
    },
    /// An I/O step failed.
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process holds the provider's port too (`SO_REUSEADDR` lets
    /// both bind); the start functions retry on a new port before giving this.
    PortTaken {
        /// The port.
        port: u16,
    },
    /// The process did not become ready, or exited early.
    NotReady {
        /// `kamailio` or `sipp`.
        program: &'static str,
        /// Exit status or "timed out".
        why: String,
        /// The process's stdout and stderr so far.
        log: String,
    },
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::NotInstalled { program } => write!(
                f,
                "`{program}` is not installed: run scripts/install-test-deps.sh \
                 (Debian packages sip-tester, kamailio, kamailio-extra-modules)"
            ),
            ProviderError::Io { what, source } => write!(f, "{what}: {source}"),
            ProviderError::PortTaken { port } => {
                write!(f, "UDP port {port} is held by another process too")
            }
            ProviderError::NotReady { program, why, log } => {
                write!(
                    f,
                    "{program} did not become ready ({why}); its output:\n{log}"
                )
            }
        }
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProviderError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ProviderError {
    let what = what.into();
    move |source| ProviderError::Io { what, source }
}

/// Settings of the Kamailio registrar fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KamailioOptions {
    /// The one user allowed to register (digest user name and AOR user).
    pub user: String,
    /// Its password (plain text).
    pub password: String,
    /// The shortest expiry accepted, in seconds; shorter ones get `423` +
    /// `Min-Expires` (`-A PROVIDER_MIN_EXPIRES=N`). Longer than 3600 is cut to 3600.
    pub min_expires: u32,
    /// Turns on the "Invalid CSeq number" quirk (`-A WITH_CSEQ_QUIRK`).
    pub cseq_quirk: bool,
    /// Carries calls too (`-A WITH_CALLS`): outgoing INVITEs of the user are challenged
    /// (407) and then relayed to this gateway, incoming ones go to the user's contact.
    pub calls_gateway: Option<SocketAddr>,
}

impl Default for KamailioOptions {
    fn default() -> Self {
        KamailioOptions {
            user: "2001".to_owned(),
            password: "secret".to_owned(),
            min_expires: 60,
            cseq_quirk: false,
            calls_gateway: None,
        }
    }
}

/// The SIPp UAS scenarios of this folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `uas-423.xml`: 423 + `Min-Expires: 120` first and below 120, then 200.
    IntervalTooBrief,
    /// `uas-407.xml`: 407 challenge, then 200 with Proxy-Authorization.
    ProxyAuth,
    /// `uas-403.xml`: 403 to the first `fail_count` REGISTERs (default 2), then 200.
    Forbidden,
    /// `uas-503.xml`: 503 + `Retry-After: retry_after` (default 2) to the
    /// first `fail_count` (default 1), then 200.
    Unavailable,
    /// `uas-silence.xml`: no answer to the first `silent_count` REGISTER
    /// datagrams (default 3), then 200.
    Silence,
}

impl Scenario {
    /// The scenario's file name in [`PROVIDERS_DIR`].
    pub fn file_name(self) -> &'static str {
        match self {
            Scenario::IntervalTooBrief => "uas-423.xml",
            Scenario::ProxyAuth => "uas-407.xml",
            Scenario::Forbidden => "uas-403.xml",
            Scenario::Unavailable => "uas-503.xml",
            Scenario::Silence => "uas-silence.xml",
        }
    }
}

/// A running provider: kills its process group and removes its temp dir on drop.
#[derive(Debug)]
pub struct ProviderGuard {
    child: Child,
    program: &'static str,
    port: u16,
    dir: PathBuf,
}

impl ProviderGuard {
    /// The UDP port the provider listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The provider's temp dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whatever the provider printed so far (stdout, then stderr), for
    /// failure messages.
    pub fn log(&self) -> String {
        read_logs(&self.dir)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProviderGuard {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        // Best effort: a temp dir left behind is harmless.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` to the whole process group led by `child`.
fn signal_group(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM to the group (Kamailio's main process then stops its workers),
/// up to 3 s of grace, then SIGKILL to the group; always reaps the child.
fn stop_group(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        signal_group(child, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    // Workers may outlive the leader: kill whatever is left of the group.
    signal_group(child, "-KILL");
    let _ = child.kill();
    let _ = child.wait();
}

fn read_logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        if let Ok(text) = fs::read_to_string(dir.join(name)) {
            out.push_str(&text);
        }
    }
    out
}

/// A fresh empty directory under the system temp dir.
fn make_temp_dir(tag: &str) -> Result<PathBuf, ProviderError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mss-provider-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
}

/// Finds `program` in `PATH`, then in the `extra` folders.
fn find_program(program: &'static str, extra: &[&str]) -> Result<PathBuf, ProviderError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(ProviderError::NotInstalled { program })
}

/// Spawns `command` in its own process group, output to files in `dir`,
/// and waits for it with `ready`; on failure stops it and reports its output.
fn spawn_provider(
    program: &'static str,
    mut command: Command,
    port: u16,
    dir: PathBuf,
    ready: fn(u16, Duration) -> io::Result<()>,
) -> Result<ProviderGuard, ProviderError> {
    let stdout = File::create(dir.join("stdout.log")).map_err(io_err("creating stdout.log"))?;
    let stderr = File::create(dir.join("stderr.log")).map_err(io_err("creating stderr.log"))?;
    command
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(io_err(format!("starting {program}")))?;
    let mut guard = ProviderGuard {
        child,
        program,
        port,
        dir,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            return Err(ProviderError::NotReady {
                program,
                why: format!("exited with {status}"),
                log: guard.log(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProviderError::NotReady {
                program,
                why: format!("not ready within {START_TIMEOUT:?}"),
                log: guard.log(),
            });
        }
        if ready(port, left.min(Duration::from_millis(500))).is_ok() {
            match procfs::port_owner(port, guard.pid()) {
                Ok(PortOwner::Group) => return Ok(guard),
                Ok(PortOwner::Foreign) => return Err(ProviderError::PortTaken { port }),
                // Bound by a worker not yet visible, or /proc unreadable: retry.
                Ok(PortOwner::Nobody) | Err(_) => {}
            }
        }
    }
}

/// Starts the Kamailio registrar fixture (`kamailio-provider.cfg`) in the
/// foreground on a free port of 127.0.0.1, and waits until it answers OPTIONS.
///
/// # Errors
///
/// [`ProviderError::NotInstalled`] without `kamailio`, [`ProviderError::NotReady`]
/// (with its log) when it exits or stays silent, [`ProviderError::Io`] otherwise.
pub fn start_kamailio(options: &KamailioOptions) -> Result<ProviderGuard, ProviderError> {
    let kamailio = find_program("kamailio", &["/usr/sbin", "/usr/local/sbin"])?;
    with_port_retries(|| start_kamailio_once(&kamailio, options))
}

/// Runs `start` again (on a new port) when the port turned out to be shared.
fn with_port_retries(
    start: impl Fn() -> Result<ProviderGuard, ProviderError>,
) -> Result<ProviderGuard, ProviderError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match start() {
            Err(ProviderError::PortTaken { .. }) if attempts < 3 => {}
            result => return result,
        }
    }
}

fn start_kamailio_once(
    kamailio: &Path,
    options: &KamailioOptions,
) -> Result<ProviderGuard, ProviderError> {
    let port = free_udp_port().map_err(io_err("picking a free UDP port"))?;
    let dir = make_temp_dir("kamailio")?;
    let config = Path::new(PROVIDERS_DIR).join("kamailio-provider.cfg");
    let mut command = Command::new("timeout");
    command
        .arg(format!("{}s", MAX_LIFETIME.as_secs()))
        .arg(kamailio)
        .arg("-f")
        .arg(config)
        .args(["-DD", "-E", "-m", "64", "-M", "8"])
        .arg("-l")
        .arg(format!("udp:127.0.0.1:{port}"))
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(&dir)
        .arg("-A")
        .arg(format!("PROVIDER_USER={}", cfg_string(&options.user)))
        .arg("-A")
        .arg(format!(
            "PROVIDER_PASSWORD={}",
            cfg_string(&options.password)
        ))
        .arg("-A")
        .arg(format!("PROVIDER_REALM={}", cfg_string(PROVIDER_REALM)))
        .arg("-A")
        .arg(format!("PROVIDER_MIN_EXPIRES={}", options.min_expires));
    if options.cseq_quirk {
        command.args(["-A", "WITH_CSEQ_QUIRK"]);
    }
    if let Some(gateway) = options.calls_gateway {
        command.args(["-A", "WITH_CALLS", "-A"]).arg(format!(
            "CALLS_GATEWAY={}",
            cfg_string(&format!("sip:{gateway}"))
        ));
    }
    spawn_provider("kamailio", command, port, dir, wait_for_udp)
}

/// A Kamailio config string literal (`"..."`, with `"` and `\` escaped).
fn cfg_string(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Starts SIPp with a UAS scenario of this folder on a free port of
/// 127.0.0.1, in the foreground, and waits until its port is bound.
/// `vars` are passed as `-set NAME VALUE` (for example `("fail_count", "3")`).
///
/// # Errors
///
/// [`ProviderError::NotInstalled`] without `sipp`, [`ProviderError::NotReady`]
/// (with its log) when it exits or does not bind, [`ProviderError::Io`] otherwise.
pub fn start_sipp(
    scenario: Scenario,
    vars: &[(&str, &str)],
) -> Result<ProviderGuard, ProviderError> {
    let sipp = find_program("sipp", &["/usr/bin", "/usr/local/bin"])?;
    with_port_retries(|| start_sipp_once(&sipp, scenario, vars))
}

fn start_sipp_once(
    sipp: &Path,
    scenario: Scenario,
    vars: &[(&str, &str)],
) -> Result<ProviderGuard, ProviderError> {
    let port = free_udp_port().map_err(io_err("picking a free UDP port"))?;
    let dir = make_temp_dir("sipp")?;
    // SIPp names its log files after the scenario path: run a copy inside the
    // temp dir so nothing is ever written next to the fixtures.
    let file = scenario.file_name();
    fs::copy(Path::new(PROVIDERS_DIR).join(file), dir.join(file))
        .map_err(io_err(format!("copying {file}")))?;
    let lifetime = MAX_LIFETIME.as_secs();
    let mut command = Command::new(sipp);
    command
        .args(["-sf", file, "-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-nostdin", "-deadcall_wait", "0"])
        // -timeout alone does not stop SIPp while calls are open, and these
        // scenarios loop forever: -recv_timeout ends idle calls.
        .arg("-timeout")
        .arg(format!("{lifetime}s"))
        .arg("-recv_timeout")
        .arg(format!("{}", lifetime * 1000));
    for (name, value) in vars {
        command.args(["-set", name, value]);
    }
    spawn_provider("sipp", command, port, dir, wait_for_udp_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_strings_are_quoted_and_escaped() {
        assert_eq!(cfg_string("se\"c\\r"), "\"se\\\"c\\\\r\"");
    }
}
