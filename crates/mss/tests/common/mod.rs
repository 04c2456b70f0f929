//! Shared helpers of the integration tests: start the real `mss` binary on loopback with a
//! temporary data folder and free ports, wait until it answers, talk SIP over a raw UDP
//! socket, read the admin API, find the test peers.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, HeaderName, Message, Response};

/// A port free on 127.0.0.1 for both UDP and TCP right now (bound with port 0, then
/// released; a rare race with another process is possible and shows as a bind error).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found on 127.0.0.1");
}

/// A free loopback port whose next port is free too, for baresip: it binds UDP and TCP on
/// its `sip_listen` port and TLS on the one after (a taken one fails its start with
/// "Address already in use").
pub fn free_port_for_baresip() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", next)).is_ok()
            && UdpSocket::bind(("127.0.0.1", next)).is_ok()
        {
            return port;
        }
    }
    panic!("no free pair of ports found on 127.0.0.1");
}

/// Writes a headless baresip's configuration under `home/.baresip` and returns that folder
/// (for `baresip -f`): SIP on a free loopback port, the `g711` and `account` modules plus
/// the application modules `apps`, and one account line per `(user, transport, password)`
/// at the mss listening on `sip_port` (registration interval 600 s).
pub fn baresip_config(
    home: &Path,
    sip_port: u16,
    apps: &[&str],
    accounts: &[(&str, &str, &str)],
) -> PathBuf {
    let conf = home.join(".baresip");
    std::fs::create_dir_all(&conf).unwrap();
    let apps: String = apps
        .iter()
        .map(|a| format!("module_app {a}.so\n"))
        .collect();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\n{apps}",
            free_port_for_baresip()
        ),
    )
    .unwrap();
    let accounts: String = accounts
        .iter()
        .map(|(user, transport, password)| {
            format!("<sip:{user}@127.0.0.1:{sip_port};transport={transport}>;auth_pass={password};regint=600\n")
        })
        .collect();
    std::fs::write(conf.join("accounts"), accounts).unwrap();
    conf
}

/// A test peer's binary; fails the test with a clear message when it is missing
/// (`scripts/install-test-deps.sh` installs them).
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the test peer `{name}` is not installed: run scripts/install-test-deps.sh \
         (Debian packages sip-tester, sipsak, baresip, sipvicious, linphone-cli, chromium, iproute2, iptables, curl)"
    );
}

/// A running `mss serve`, killed when dropped.
pub struct Server {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub sip_port: u16,
    pub admin_port: u16,
    /// The `tls:` listener's port, when there is one.
    pub tls_port: Option<u16>,
    /// The `ws:` and `wss:` listeners' ports, when there are some.
    pub ws_ports: Option<(u16, u16)>,
    child: Option<Child>,
    run: u32,
    /// Started without a configuration file: the embedded defaults.
    embedded: bool,
}

impl Server {
    /// Writes `mss.ini` (with `[server]` listen/admin on free ports prepended to
    /// `extra_ini`) into `dir` and starts the server; waits until it answers OPTIONS.
    pub fn start(dir: &Path, extra_ini: &str) -> Server {
        Server::start_with(dir, "", extra_ini)
    }

    /// As [`Server::start`], with `server_keys` (lines ending in `\n`) added to `[server]`.
    pub fn start_with(dir: &Path, server_keys: &str, extra_ini: &str) -> Server {
        Server::start_listening(dir, None, None, server_keys, extra_ini)
    }

    /// As [`Server::start`], also listening on `tls:127.0.0.1:PORT` ([`Server::tls_port`]).
    pub fn start_tls(dir: &Path, extra_ini: &str) -> Server {
        Server::start_listening(dir, Some(free_port()), None, "", extra_ini)
    }

    /// As [`Server::start`], also listening on `ws:127.0.0.1:PORT` and
    /// `wss:127.0.0.1:PORT` ([`Server::ws`], [`Server::wss`]).
    pub fn start_ws(dir: &Path, extra_ini: &str) -> Server {
        Server::start_listening(dir, None, Some((free_port(), free_port())), "", extra_ini)
    }

    fn start_listening(
        dir: &Path,
        tls_port: Option<u16>,
        ws_ports: Option<(u16, u16)>,
        server_keys: &str,
        extra_ini: &str,
    ) -> Server {
        let config = dir.join("mss.ini");
        Server::start_on_free_ports(|first| {
            // A retry picks every port afresh.
            let tls_port = tls_port.map(|p| if first { p } else { free_port() });
            let ws_ports = ws_ports.map(|p| if first { p } else { (free_port(), free_port()) });
            let sip_port = free_port();
            let admin_port = free_port();
            let mut tls = tls_port.map_or_else(String::new, |p| format!(", tls:127.0.0.1:{p}"));
            if let Some((ws, wss)) = ws_ports {
                tls.push_str(&format!(", ws:127.0.0.1:{ws}, wss:127.0.0.1:{wss}"));
            }
            let ini = format!(
                "[server]\ndomain = pbx.test\nlisten = udp:127.0.0.1:{sip_port}, tcp:127.0.0.1:{sip_port}{tls}\nadmin = 127.0.0.1:{admin_port}\nmin_expires = 10\n{server_keys}\n{extra_ini}"
            );
            std::fs::write(&config, ini).unwrap();
            Server {
                dir: dir.to_path_buf(),
                config: config.clone(),
                data: dir.join("data"),
                sip_port,
                admin_port,
                tls_port,
                ws_ports,
                child: None,
                run: 0,
                embedded: false,
            }
        })
    }

    /// Starts the server `make(first attempt)` describes; when another process took one
    /// of its ports between `free_port` and mss's bind ("Address already in use"), starts
    /// the one `make(false)` describes instead (fresh ports), up to 5 attempts.
    fn start_on_free_ports(mut make: impl FnMut(bool) -> Server) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut s = make(attempt == 1);
            match s.try_spawn() {
                Ok(()) => return s,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {}
                Err(log) => panic!("{log}"),
            }
        }
    }

    /// Starts the server on its embedded defaults (no `mss.ini` in `dir`, the working
    /// folder), with SIP and the admin API moved to free loopback ports by `--listen` and
    /// `--admin`, data in `dir/data`. The default users' passwords are in
    /// [`Server::default_password`].
    pub fn start_embedded(dir: &Path) -> Server {
        Server::start_embedded_listening(dir, None)
    }

    /// As [`Server::start_embedded`], with a `tls:` listener on a free port as well.
    pub fn start_embedded_tls(dir: &Path) -> Server {
        Server::start_embedded_listening(dir, Some(free_port()))
    }

    fn start_embedded_listening(dir: &Path, tls_port: Option<u16>) -> Server {
        Server::start_on_free_ports(|first| {
            let s = Server {
                dir: dir.to_path_buf(),
                config: dir.join("mss.ini"),
                data: dir.join("data"),
                sip_port: free_port(),
                admin_port: free_port(),
                tls_port: tls_port.map(|p| if first { p } else { free_port() }),
                ws_ports: None,
                child: None,
                run: 0,
                embedded: true,
            };
            assert!(!s.config.exists(), "{} exists", s.config.display());
            s
        })
    }

    /// The password generated for default user `user` at the first start on the embedded
    /// defaults (from `data/default-users.ini`).
    pub fn default_password(&self, user: &str) -> String {
        let file = std::fs::read_to_string(self.data.join("default-users.ini")).unwrap();
        let mut lines = file.lines();
        lines
            .find(|l| *l == format!("[user:{user}]"))
            .and_then(|_| lines.find_map(|l| l.strip_prefix("password = ")))
            .unwrap_or_else(|| panic!("no password for {user} in:\n{file}"))
            .to_string()
    }

    /// Starts the process (again) on the same files and ports and waits until it answers.
    pub fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("{log}");
        }
    }

    /// As [`Server::spawn`]; a process that exits at start is an error with its log.
    fn try_spawn(&mut self) -> Result<(), String> {
        self.run += 1;
        let log = |kind: &str| {
            std::fs::File::create(self.dir.join(format!("mss-{}.{kind}", self.run))).unwrap()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mss"));
        cmd.arg("serve");
        if self.embedded {
            let port = self.sip_port;
            let tls = self
                .tls_port
                .map_or_else(String::new, |p| format!(",tls:127.0.0.1:{p}"));
            cmd.current_dir(&self.dir)
                .arg("--listen")
                .arg(format!("udp:127.0.0.1:{port},tcp:127.0.0.1:{port}{tls}"))
                .arg("--admin")
                .arg(format!("127.0.0.1:{}", self.admin_port));
        } else {
            cmd.arg("--config").arg(&self.config);
        }
        let child = cmd
            .arg("--data-dir")
            .arg(&self.data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready()
    }

    /// The server's SIP address.
    pub fn sip(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// The address of the `tls:` listener.
    pub fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port.expect("no tls: listener")))
    }

    /// The address of the `ws:` listener.
    pub fn ws(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ws_ports.expect("no ws: listener").0))
    }

    /// The address of the `wss:` listener.
    pub fn wss(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ws_ports.expect("no wss: listener").1))
    }

    /// The process id of the running server.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("server not running").id()).unwrap()
    }

    /// What the current run printed on stdout.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("mss-{}.out", self.run))).unwrap_or_default()
    }

    /// The log of the current run.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("mss-{}.err", self.run))).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let sock = Peer::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                self.child = None;
                return Err(format!(
                    "mss exited at start ({status}):\n{}",
                    self.stderr()
                ));
            }
            n += 1;
            sock.send(
                self.sip(),
                &options(self.sip(), &sock, &format!("ready-{n}")),
            );
            if let Some(r) = sock.recv_timeout(Duration::from_millis(200)) {
                if r.status().as_u16() == 200 {
                    return Ok(());
                }
            }
        }
        panic!("mss did not answer OPTIONS within 20 s:\n{}", self.stderr());
    }

    /// Sends SIGKILL and waits for the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server not running");
        let pid = i32::try_from(c.id()).unwrap();
        send_signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("mss did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` on the admin API: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.admin_port)), path)
    }

    /// `DELETE path` on the admin API: status and body.
    pub fn delete(&self, path: &str) -> (u16, String) {
        http_request(
            SocketAddr::from(([127, 0, 0, 1], self.admin_port)),
            "DELETE",
            path,
        )
    }

    /// `GET /api/registrations` as JSON.
    pub fn registrations(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/registrations");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends signal `sig` (`TERM`, `INT`…) with the `kill` command (the crate forbids unsafe
/// code, so no `libc::kill`).
pub fn send_signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Runs `cmd` for at most `limit`; kills it after that. Returns whether it exited with
/// status 0, and its stdout and stderr.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    (ok, read(&out_path), read(&err_path))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 GET (the admin API is plain HTTP on loopback).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path)
}

/// A minimal HTTP/1.1 request without a body: status and body of the answer.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies: take the JSON between the first chunk size and the terminator.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}

/// A UDP SIP peer on 127.0.0.1.
pub struct Peer {
    pub sock: UdpSocket,
}

impl Peer {
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Peer { sock }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, to).unwrap();
    }

    /// The next datagram within `timeout`, raw.
    pub fn recv_raw(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 65_536];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(_) => None,
        }
    }

    /// The next response within `timeout` (provisional ones included).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let raw = self.recv_raw(left.max(Duration::from_millis(1)))?;
            if let Ok(Message::Response(r)) = parse_datagram(Bytes::from(raw)) {
                return Some(r);
            }
        }
    }

    /// Sends `req` and returns the first final response (within 5 s).
    pub fn transact(&self, to: SocketAddr, req: &str) -> Response {
        self.send(to, req.as_bytes());
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(r) = self.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if r.status().as_u16() >= 200 {
                return r;
            }
        }
        panic!("no final response to:\n{req}");
    }
}

/// An OPTIONS to the server from `peer`.
pub fn options(server: SocketAddr, peer: &Peer, call_id: &str) -> Vec<u8> {
    let me = peer.addr();
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A REGISTER for `user` from `peer`, with `extra` header lines (each ending in CRLF).
pub fn register(
    server: SocketAddr,
    peer: &Peer,
    user: &str,
    call_id: &str,
    cseq: u32,
    extra: &str,
) -> String {
    let me = peer.addr();
    format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@pbx.test>;tag=f{cseq}\r\nTo: <sip:{user}@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 300\r\nUser-Agent: mss-test\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// The `Authorization` value answering the first (MD5) challenge of `challenge`.
pub fn authorization(
    challenge: &Response,
    server: SocketAddr,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    digest_answer(
        challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        &format!("sip:{server}"),
        user,
        password,
        nc,
    )
}

/// The value of an `Authorization` / `Proxy-Authorization` header answering the first
/// challenge of `challenge`'s `header` (`WWW-Authenticate` / `Proxy-Authenticate`) for
/// `method` to `uri` as `user` with `password`, nonce count `nc`.
pub fn digest_answer(
    challenge: &Response,
    header: &HeaderName,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let ch = challenge.headers().auth(header).unwrap();
    let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
    mss_auth::authorize(params, method, uri, user, password, "0a4f113b", nc).unwrap()
}
