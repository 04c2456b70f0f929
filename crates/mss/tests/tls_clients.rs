//! Real SIP clients from Debian over TLS with the real `mss` (its self-signed certificate of
//! the first start): baresip and linphonec register over TLS, send a MESSAGE over TLS that
//! a UDP phone receives, and receive one from the UDP phone over the connection they
//! registered on.
//!
//! - **baresip 1.0** (headless, configuration in a temporary HOME): the account's
//!   outbound proxy is `sip:127.0.0.1:PORT;transport=tls`; `sip_cafile` names mss's
//!   certificate, but libre 1.0 does not verify a server's certificate at all (checked by
//!   hand: it registers with an unrelated CA file too), so its side proves TLS, not trust.
//!   The MESSAGE it sends is given with `-e` at start; what it received is read from its
//!   SIP trace (`-s`).
//! - **linphonec 5.1** (Debian `linphone-cli`): it verifies the certificate (belle-sip,
//!   `root_ca` = mss's certificate, `verify_server_certs` and `verify_server_cn` on). Its
//!   mbedTLS does not read an IP-address subjectAltName, so it connects to `localhost`,
//!   one of the DNS names of the self-signed certificate. It runs as `linphonec --pipe`
//!   (headless, commands through its socket `/tmp/linphonec-UID`, sent with `linphonecsh
//!   generic`; only one such daemon per user can run, hence one linphonec test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod im_common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{require_tool, run_bounded, wait_for, Server};
use im_common::{send_message, Ua, USERS};
use mss_sip::{HeaderName, Request};

const TEXT: Option<&str> = Some("text/plain");

/// mss with the IM users on UDP, TCP and TLS, its certificate made at the first start.
fn start(dir: &Path) -> Server {
    let users: String = USERS
        .iter()
        .map(|(u, p)| format!("[user:{u}]\npassword = {p}\n"))
        .collect();
    let s = Server::start_tls(dir, &format!("{users}[im]\nrate_limit_per_minute = 0\n"));
    assert!(
        s.stdout().contains("created a self-signed TLS certificate"),
        "{}",
        s.stdout()
    );
    s
}

/// A client process, killed when dropped.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `user` is registered over TLS; returns the binding.
fn registered_over_tls(s: &Server, user: &str, limit: Duration) -> Option<serde_json::Value> {
    wait_for(limit, || {
        s.registrations()
            .into_iter()
            .find(|r| r["user"] == user && r["transport"] == "TLS")
    })
}

/// The MESSAGE relayed to the UDP phone `ua`, answered `200`; `None` after `limit`.
fn take_message(s: &Server, ua: &Ua, limit: Duration) -> Option<Request> {
    let req = ua.recv_request(limit)?;
    ua.answer(s.sip(), &req, 200, "OK");
    Some(req)
}

fn from_of(req: &Request) -> String {
    String::from_utf8_lossy(req.headers().values(&HeaderName::From).next().unwrap()).into_owned()
}

/// One entry of baresip's SIP trace: the route line (`TLS 127.0.0.1:A -> 127.0.0.1:B`) and
/// the message. Entries are `#\nROUTE\n<message>` with colour escapes around them.
fn trace_entries(log: &str) -> Vec<(String, String)> {
    log.split("\u{1b}[36;1m#\n")
        .skip(1)
        .filter_map(|entry| {
            let entry = entry.split("\u{1b}[;m").next().unwrap_or("");
            let (route, message) = entry.split_once('\n')?;
            Some((route.to_owned(), message.to_owned()))
        })
        .collect()
}

#[test]
fn baresip_registers_and_messages_over_tls() {
    let baresip = require_tool("baresip");
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let ua = Ua::new("102");
    ua.register(s.sip());

    let home = dir.path().join("home");
    let conf = home.join(".baresip");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nsip_cafile {}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\nmodule_app contact.so\nmodule_app menu.so\n",
            common::free_port_for_baresip(),
            s.data.join("tls-cert.pem").display()
        ),
    )
    .unwrap();
    let tls = s.tls().port();
    std::fs::write(
        conf.join("accounts"),
        format!(
            "<sip:101@pbx.test;transport=tls>;auth_pass={};outbound=\"sip:127.0.0.1:{tls};transport=tls\";regint=600\n",
            im_common::password("101")
        ),
    )
    .unwrap();
    // The contact module's current contact is the first of its list: `/message` goes there.
    std::fs::write(conf.join("contacts"), "\"Bob\" <sip:102@pbx.test>\n").unwrap();
    let log_path = dir.path().join("baresip.out");
    let _baresip = Client(
        Command::new(baresip)
            .env("HOME", &home)
            .arg("-f")
            .arg(&conf)
            .args(["-s", "-t", "40", "-e", "/message hello 102 from baresip"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log_path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // baresip → UDP phone, through mss's 407.
    let req = take_message(&s, &ua, Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "no MESSAGE from baresip at the UDP phone:\n{}\n{}",
            log(),
            s.stderr()
        )
    });
    assert_eq!(&req.body()[..], b"hello 102 from baresip");
    assert!(from_of(&req).contains("sip:101@pbx.test"), "{req:?}");
    let binding = registered_over_tls(&s, "101", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("baresip did not register over TLS:\n{}", log()));
    assert!(
        binding["user_agent"]
            .as_str()
            .unwrap_or("")
            .starts_with("baresip"),
        "{binding}"
    );

    // UDP phone → baresip: delivered over its TLS connection and answered 200 by it.
    let rsp = send_message(
        s.sip(),
        &ua.peer,
        "102",
        "101",
        TEXT,
        b"hello 101 from the UDP phone",
    );
    assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}\n{}", log());
    // Its trace is written after the answer. The request goes to its registered contact,
    // `sip:101-0x…@ADDR;transport=tls`.
    let _ = wait_for(Duration::from_secs(5), || {
        trace_entries(&log())
            .iter()
            .any(|(_, m)| m.starts_with("MESSAGE sip:101"))
            .then_some(())
    });
    let trace = log();
    let entries = trace_entries(&trace);
    let sent = entries
        .iter()
        .find(|(_, m)| m.starts_with("MESSAGE sip:102@pbx.test"))
        .unwrap_or_else(|| panic!("no MESSAGE sent in the trace:\n{trace}"));
    assert!(sent.0.starts_with("TLS "), "sent over {}", sent.0);
    let got = entries
        .iter()
        .find(|(_, m)| m.starts_with("MESSAGE sip:101") && m.contains("from the UDP phone"))
        .unwrap_or_else(|| panic!("no MESSAGE received in the trace:\n{trace}"));
    assert!(got.0.starts_with("TLS "), "received over {}", got.0);
    assert!(
        entries.iter().all(|(route, _)| route.starts_with("TLS ")),
        "baresip used another transport:\n{trace}"
    );
}

/// `linphonec --pipe`, killed when dropped, its socket file (left behind by a kill)
/// removed.
struct Linphonec(Client, PathBuf);

impl Drop for Linphonec {
    fn drop(&mut self) {
        let _ = self.0 .0.kill();
        let _ = self.0 .0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// The numeric user id (for linphonec's socket name), from `id -u`.
fn uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends `command` to the running `linphonec --pipe` of `home`.
fn linphonecsh(home: &Path, command: &str) -> String {
    let (ok, out, err) = run_bounded(
        Command::new(require_tool("linphonecsh"))
            .env("HOME", home)
            .args(["generic", command]),
        Duration::from_secs(10),
    );
    assert!(ok, "linphonecsh generic {command:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn linphonec_verifies_the_certificate_registers_and_messages_over_tls() {
    let linphonec = require_tool("linphonec");
    require_tool("linphonecsh");
    let socket = PathBuf::from(format!("/tmp/linphonec-{}", uid()));
    if socket.exists() {
        // A socket nobody listens on is left by a linphonec that was killed.
        assert!(
            UnixStream::connect(&socket).is_err(),
            "{}: another linphonec --pipe of this user is running (one at a time)",
            socket.display()
        );
        std::fs::remove_file(&socket).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let ua = Ua::new("102");
    ua.register(s.sip());

    let home = dir.path().join("home");
    // Its message database (a warning only when missing).
    std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
    let tls = s.tls().port();
    let rc = home.join("linphonerc");
    std::fs::write(
        &rc,
        format!(
            "[sip]\nsip_port=-1\nsip_tcp_port=-1\nsip_tls_port=-1\nroot_ca={}\nverify_server_certs=1\nverify_server_cn=1\ndefault_proxy=0\n\n[proxy_0]\nreg_proxy=<sip:localhost:{tls};transport=tls>\nreg_route=<sip:localhost:{tls};transport=tls;lr>\nreg_identity=\"101\" <sip:101@pbx.test>\nreg_expires=600\nreg_sendregister=1\npublish=0\n\n[auth_info_0]\nusername=101\npasswd={}\nrealm=pbx.test\ndomain=pbx.test\n\n[video]\nenabled=0\ncapture=0\ndisplay=0\n",
            s.data.join("tls-cert.pem").display(),
            im_common::password("101")
        ),
    )
    .unwrap();
    let log_path = dir.path().join("linphonec.log");
    let out_path = dir.path().join("linphonec.out");
    let _linphonec = Linphonec(
        Client(
            Command::new(linphonec)
                .env("HOME", &home)
                .arg("--pipe")
                .arg("-c")
                .arg(&rc)
                .args(["-d", "6", "-l"])
                .arg(&log_path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out_path).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ),
        socket.clone(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let binding = registered_over_tls(&s, "101", Duration::from_secs(20)).unwrap_or_else(|| {
        let handshake: Vec<String> = log()
            .lines()
            .filter(|l| l.contains("SSL") || l.contains("belle-sip-error"))
            .map(str::to_owned)
            .collect();
        panic!(
            "linphonec did not register over TLS:\n{}\n{}",
            handshake.join("\n"),
            s.stderr()
        )
    });
    assert!(
        binding["user_agent"]
            .as_str()
            .unwrap_or("")
            .starts_with("Linphonec"),
        "{binding}"
    );
    assert!(
        log().contains("SSL handshake finished"),
        "no verified handshake in the log"
    );
    assert!(
        wait_for(Duration::from_secs(5), || std::path::Path::new(&socket)
            .exists()
            .then_some(()))
        .is_some()
    );

    // linphonec → UDP phone.
    linphonecsh(&home, "chat sip:102@pbx.test hello 102 from linphonec");
    let req = take_message(&s, &ua, Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "no MESSAGE from linphonec at the UDP phone:\n{}",
            s.stderr()
        )
    });
    assert_eq!(&req.body()[..], b"hello 102 from linphonec");
    assert!(from_of(&req).contains("sip:101@pbx.test"), "{req:?}");

    // UDP phone → linphonec, over the connection it registered on.
    let rsp = send_message(
        s.sip(),
        &ua.peer,
        "102",
        "101",
        TEXT,
        b"hello 101 from the UDP phone",
    );
    assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}\n{}", s.stderr());
    let shown = wait_for(Duration::from_secs(5), || {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        out.contains("hello 101 from the UDP phone").then_some(out)
    });
    assert!(
        shown.is_some(),
        "linphonec did not show the MESSAGE:\n{}",
        std::fs::read_to_string(&out_path).unwrap_or_default()
    );
    // The TLS connection is the only one it opened to mss.
    let regs = s.registrations();
    let r = regs.iter().find(|r| r["user"] == "101").unwrap();
    assert_eq!(r["source"], binding["source"], "{r}");
    linphonecsh(&home, "quit");
}
