//! A phone behind NAT (DESIGN §8 "Media relay"): in network namespaces the test creates,
//! mss and phone B are on the "public" side (203.0.113.1, TEST-NET-3), phone A on a private
//! LAN (10.0.0.2) behind a router that masquerades with random source ports. A's SIP and
//! SDP name its private address, which nobody on the public side can reach; with the
//! relay, mss answers A at its signalling source, latches A's RTP to the NAT's address and
//! port, and both phones hear each other's tone. Without the relay, B would send its audio
//! to 10.0.0.2 and A would hear nothing.
//!
//! Needs root (CAP_NET_ADMIN) for `ip netns` and `iptables`; fails naming what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audio_common;
mod calls_common;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use audio_common::{assert_hears, TALK};
use calls_common::{ev, password, Agent, AgentOptions};
use serde_json::Value;

/// mss's public address (and phone B's side).
const PUBLIC: &str = "203.0.113.1";
/// The router's public address: what mss sees of phone A.
const NAT_PUBLIC: &str = "203.0.113.2";
/// Phone A's private address.
const PRIVATE: &str = "10.0.0.2";

/// Runs `ip`/`iptables`/`sysctl` (in `ns` when given); panics with its output on failure.
fn run(ns: Option<&str>, args: &[&str]) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (is iproute2/iptables installed?)"));
    assert!(
        out.status.success(),
        "{args:?} in {ns:?} failed (this test needs root for network namespaces and NAT): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three namespaces — public (mss, phone B), router, LAN (phone A) — deleted on drop.
struct Topology {
    public: String,
    router: String,
    lan: String,
}

impl Topology {
    fn new() -> Topology {
        for tool in ["ip", "iptables", "curl"] {
            common::require_tool(tool);
        }
        let id = std::process::id();
        let t = Topology {
            public: format!("mss-pub-{id}"),
            router: format!("mss-rtr-{id}"),
            lan: format!("mss-lan-{id}"),
        };
        for ns in [&t.public, &t.router, &t.lan] {
            run(None, &["ip", "netns", "add", ns]);
        }
        // Interface names: at most 15 characters.
        let (wan_a, wan_b) = (format!("mw{id}a"), format!("mw{id}b"));
        let (lan_a, lan_b) = (format!("ml{id}a"), format!("ml{id}b"));
        run(
            None,
            &[
                "ip", "link", "add", &wan_a, "type", "veth", "peer", "name", &wan_b,
            ],
        );
        run(None, &["ip", "link", "set", &wan_a, "netns", &t.public]);
        run(None, &["ip", "link", "set", &wan_b, "netns", &t.router]);
        run(
            None,
            &[
                "ip", "link", "add", &lan_a, "type", "veth", "peer", "name", &lan_b,
            ],
        );
        run(None, &["ip", "link", "set", &lan_a, "netns", &t.lan]);
        run(None, &["ip", "link", "set", &lan_b, "netns", &t.router]);
        let p = Some(t.public.as_str());
        let r = Some(t.router.as_str());
        let l = Some(t.lan.as_str());
        for (ns, dev, addr) in [
            (p, &wan_a, format!("{PUBLIC}/24")),
            (r, &wan_b, format!("{NAT_PUBLIC}/24")),
            (r, &lan_b, "10.0.0.1/24".to_owned()),
            (l, &lan_a, format!("{PRIVATE}/24")),
        ] {
            run(ns, &["ip", "addr", "add", &addr, "dev", dev]);
            run(ns, &["ip", "link", "set", dev, "up"]);
        }
        for ns in [p, r, l] {
            run(ns, &["ip", "link", "set", "lo", "up"]);
        }
        run(l, &["ip", "route", "add", "default", "via", "10.0.0.1"]);
        run(r, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        // Source NAT with random ports: the phone's RTP arrives from another port than its
        // SDP names, as behind most home routers.
        run(
            r,
            &[
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                &wan_b,
                "-j",
                "MASQUERADE",
                "--random",
            ],
        );
        t
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends (and their peers).
        for ns in [&self.lan, &self.router, &self.public] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `mss serve` in the public namespace: SIP on every address of it, the admin API on its
/// own loopback, the relay on (the default).
struct NsServer {
    ns: String,
    dir: PathBuf,
    child: Child,
}

impl NsServer {
    fn start(dir: &Path, ns: &str) -> NsServer {
        let users: String = ["100", "101"]
            .iter()
            .map(|u| format!("[user:{u}]\npassword = {}\n", password(u)))
            .collect();
        let config = dir.join("mss.ini");
        std::fs::write(
            &config,
            format!(
                "[server]\ndomain = pbx.test\nlisten = udp:0.0.0.0:5060\nadmin = 127.0.0.1:5080\n\
                 min_expires = 10\ndigest_algorithms = md5\n{users}[media]\nrtp_ports = 20000-20099\n"
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(env!("CARGO_BIN_EXE_mss"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "info,mss_core=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("mss.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("mss.err")).unwrap())
            .spawn()
            .unwrap();
        let s = NsServer {
            ns: ns.to_owned(),
            dir: dir.to_path_buf(),
            child,
        };
        let ready = common::wait_for(Duration::from_secs(20), || {
            (s.get("/api/calls/active").0 == 200).then_some(())
        });
        assert!(ready.is_some(), "mss did not start:\n{}", s.log());
        s
    }

    /// `GET path` on the admin API, through `curl` in the namespace.
    fn get(&self, path: &str) -> (u16, String) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-s",
                "-m",
                "5",
                "-w",
                "\n%{http_code}",
            ])
            .arg(format!("http://127.0.0.1:5080{path}"))
            .output();
        let Ok(out) = out else {
            return (0, String::new());
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mss.err")).unwrap_or_default()
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent registered at mss from namespace `ns`, bound to `bind`, reaching mss at
/// `registrar`, with a tone and a recording.
fn phone(
    dir: &Path,
    s: &NsServer,
    name: &str,
    user: &str,
    (ns, bind, registrar): (&str, &str, &str),
    tone: u16,
) -> Agent {
    let a = Agent::start(
        dir,
        name,
        &AgentOptions {
            user: Some(user.to_owned()),
            registrar: Some(registrar.parse().unwrap()),
            domain: Some("pbx.test".to_owned()),
            transport: "udp".to_owned(),
            tone,
            record: Some(dir.join(format!("rec-{name}"))),
            bind: Some(bind.to_owned()),
            netns: Some(ns.to_owned()),
            ..AgentOptions::default()
        },
    );
    a.wait_ctx("its REGISTER answered 200", &|| s.log(), |e| {
        e["event"] == "reg" && e["code"] == 200
    });
    a
}

/// The legs of the one active call, once both counted RTP both ways.
fn legs_with_rtp(s: &NsServer) -> Option<Vec<Value>> {
    let (code, body) = s.get("/api/calls/active");
    if code != 200 {
        return None;
    }
    let calls: Vec<Value> = serde_json::from_str(&body).ok()?;
    let legs = calls.first()?["legs"].as_array()?.clone();
    let flowing = legs.len() == 2
        && legs.iter().all(|l| {
            l["rtp_in"].as_u64().unwrap_or(0) > 0 && l["rtp_out"].as_u64().unwrap_or(0) > 0
        });
    flowing.then_some(legs)
}

#[test]
fn a_phone_behind_nat_advertising_its_private_address_is_heard_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = Topology::new();
    let s = NsServer::start(d, &net.public);
    let registrar = format!("{PUBLIC}:5060");
    let mut a = phone(d, &s, "a", "100", (&net.lan, PRIVATE, &registrar), 440);
    let b = Agent::start(
        d,
        "b",
        &AgentOptions {
            user: Some("101".to_owned()),
            registrar: Some("127.0.0.1:5060".parse().unwrap()),
            domain: Some("pbx.test".to_owned()),
            transport: "udp".to_owned(),
            auto_answer: 200,
            tone: 1000,
            record: Some(d.join("rec-b")),
            netns: Some(net.public.clone()),
            ..AgentOptions::default()
        },
    );
    b.wait_ctx("its REGISTER answered 200", &|| s.log(), |e| {
        e["event"] == "reg" && e["code"] == 200
    });
    // mss sees A at the router's address, not at the private one.
    let (_, regs) = s.get("/api/registrations");
    assert!(
        regs.contains(NAT_PUBLIC),
        "A registers through the NAT: {regs}"
    );

    a.cmd("call 101");
    a.wait_ctx("the call confirmed", &|| s.log(), ev::state(1, "CONFIRMED"));
    // A's offer names its private address (the agent binds and advertises 10.0.0.2, no
    // STUN); the offer B received names mss instead (its o= line keeps A's, byte for byte).
    let trace = b.sip_trace();
    let connections: Vec<&str> = trace.lines().filter(|l| l.starts_with("c=")).collect();
    assert!(
        !connections.is_empty() && connections.iter().all(|c| *c == "c=IN IP4 127.0.0.1"),
        "B should get an offer that names mss, not {PRIVATE}:\n{trace}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut legs = None;
    while legs.is_none() && Instant::now() < deadline {
        legs = legs_with_rtp(&s);
        std::thread::sleep(Duration::from_millis(200));
    }
    let legs = legs.unwrap_or_else(|| {
        panic!(
            "expected RTP both ways on both legs: {:?}\n{}",
            s.get("/api/calls/active"),
            s.log()
        )
    });
    assert!(
        legs.iter().all(|l| l["no_rtp_from"] == false),
        "no leg is silent: {legs:?}"
    );
    std::thread::sleep(TALK);
    a.cmd("hangup");
    a.wait_ctx("the call over", &|| s.log(), ev::state(1, "DISCONNECTED"));
    b.wait_ctx(
        "the callee's call over",
        &|| s.log(),
        ev::state(1, "DISCONNECTED"),
    );
    a.quit();
    b.quit();
    assert_hears(
        &d.join("rec-a-call1.wav"),
        1000.0,
        440.0,
        "A (behind NAT) hears B",
    );
    assert_hears(
        &d.join("rec-b-call1.wav"),
        440.0,
        1000.0,
        "B hears A (behind NAT)",
    );
    let latched = s
        .log()
        .lines()
        .any(|l| l.contains("media latched") && l.contains(NAT_PUBLIC));
    assert!(
        latched,
        "the relay latched A at the NAT's address:\n{}",
        s.log()
    );
}
