//! End-to-end tests of the `mss` executable's command line.

// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mss(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_reports_every_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mss.ini"),
        "[server]\ndomain = pbx.test\nlisten = udp:0.0.0.0\n\n[line:p1]\nregistrar = sip.example\nnumber = 1\npassword = x\nexpires = abc\n",
    )
    .unwrap();
    let out = mss(dir.path(), &["check-config", "--config", "mss.ini"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("mss.ini:3: [server] listen: "), "{err}");
    assert!(
        err.contains("mss.ini:9: [line:p1] expires: \"abc\" is not a number of seconds"),
        "{err}"
    );
    assert!(err.contains("2 errors found"), "{err}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn check_config_finds_mss_ini_and_var_file_in_current_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mss.ini"),
        "[user:101]\npassword = a\n[line:p1]\nregistrar = 127.0.0.1:5090\nnumber = 2001\npassword = x\nowner = 101\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mss_var_param.ini"),
        "[sip]\ngVarSipRegSameDialog = 0\n",
    )
    .unwrap();
    let out = mss(dir.path(), &["check-config"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("OK\n"), "{stdout}");
    assert!(stdout.contains("users: 1 (101)"), "{stdout}");
    assert!(
        stdout.contains("call-id fresh, incoming and outgoing calls"),
        "{stdout}"
    );
    assert!(
        stdout.contains("calls: at most 1000 at once; 9 + number calls out"),
        "{stdout}"
    );
}

#[test]
fn check_config_on_embedded_defaults_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = mss(dir.path(), &["check-config"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("embedded defaults"));
    let out = mss(dir.path(), &["check-config", "--config", "nope.ini"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read nope.ini"));
}

/// Runs `mss serve` on the embedded defaults, with free loopback ports instead of 5060 and
/// 5080, until it has printed its announcement; then stops it with SIGTERM.
fn serve_once(dir: &Path) -> String {
    let free = || {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port()
    };
    let (sip, admin) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(["serve", "--data-dir", "data", "--listen"])
        .arg(format!("udp:127.0.0.1:{sip}"))
        .arg("--admin")
        .arg(format!("127.0.0.1:{admin}"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    // The announcement ends with a newline; it is complete once the server answers on the
    // admin port (printed before the runtime starts).
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < deadline, "mss serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut shown = String::new();
    out.read_to_string(&mut shown).unwrap();
    shown
}

#[test]
fn serve_on_defaults_generates_passwords_once() {
    let dir = tempfile::tempdir().unwrap();
    let shown = serve_once(dir.path());
    assert!(
        shown.contains("created default users 100, 101, 102"),
        "{shown}"
    );
    let file = dir.path().join("data/default-users.ini");
    let stored = std::fs::read_to_string(&file).unwrap();
    let password = stored
        .lines()
        .find_map(|l| l.strip_prefix("password = "))
        .unwrap();
    assert!(shown.contains(password));
    let shown = serve_once(dir.path());
    assert!(shown.contains("passwords in"), "{shown}");
    assert!(!shown.contains(password));
}

#[test]
fn serve_refuses_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mss.ini"), "[server]\nadmin = nowhere\n").unwrap();
    let out = mss(dir.path(), &["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("mss.ini:2: [server] admin: "));
    assert!(!dir.path().join("mss-data").exists());
}

#[test]
fn status_without_server_says_so() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = mss(
        dir.path(),
        &["status", "--admin", &format!("127.0.0.1:{port}")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is mss running?"));
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = mss(dir.path(), &["--help"]);
    let help = text(&out.stdout);
    for cmd in ["serve", "check-config", "status"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = mss(dir.path(), &["--version"]);
    assert!(text(&out.stdout).starts_with("mss "));
}
