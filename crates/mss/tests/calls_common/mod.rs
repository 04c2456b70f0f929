//! Helpers of the call tests (`tests/calls_*.rs`, DESIGN §8): mss with users 100–103, the
//! pjsua2 agent (`tests/agents/pjsua_agent.py`, PyPI `pjsua2-python`) driven over its
//! stdin/stdout, headless baresip driven over its `ctrl_tcp` interface, SIPp runs with
//! their message traces, and the call views of the admin API.
//!
//! Every wait is bounded, and every failure message says what was expected and shows what
//! was seen: the peer's events and SIP trace, and the tail of the mss log.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    free_port, free_port_for_baresip, require_tool, run_bounded, wait_for, Server,
};

/// The local users of every call test, with their passwords.
pub const USERS: [(&str, &str); 4] = [
    ("100", "pw-100"),
    ("101", "pw-101"),
    ("102", "pw-102"),
    ("103", "pw-103"),
];

/// How long a test waits for one step of a call (a ring, an answer, a hang-up).
pub const STEP: Duration = Duration::from_secs(10);

/// The password of `user`.
pub fn password(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no test user {user}"))
}

/// The `[media]` section of the call tests: the relay (on by default, DESIGN §8) with its
/// sockets on loopback, where every peer of the tests is.
pub fn media_section() -> &'static str {
    "[media]\nrtp_address = 127.0.0.1\n"
}

/// Starts mss with [`USERS`], MD5 challenges only (SIPp and baresip 1.0 answer MD5 alone),
/// the media relay on loopback ([`media_section`]), plus `sections` (`[line:…]` …).
pub fn start(dir: &Path, sections: &str) -> Server {
    start_services(dir, "", &[], sections)
}

/// As [`start`], with `server_keys` added to `[server]` and, for each `(user, keys)` of
/// `user_keys`, `keys` (lines such as `forward_busy = 102\n`) added to that user's section:
/// the call services of the README's configuration reference.
pub fn start_services(
    dir: &Path,
    server_keys: &str,
    user_keys: &[(&str, &str)],
    sections: &str,
) -> Server {
    for (u, _) in user_keys {
        assert!(
            USERS.iter().any(|(n, _)| n == u),
            "start_services: {u} is not one of the test users"
        );
    }
    let users: String = USERS
        .iter()
        .map(|(u, p)| {
            let keys: String = user_keys
                .iter()
                .filter(|(n, _)| n == u)
                .map(|(_, k)| *k)
                .collect();
            format!("[user:{u}]\npassword = {p}\n{keys}")
        })
        .collect();
    Server::start_with(
        dir,
        &format!("digest_algorithms = md5\n{server_keys}"),
        &format!("{users}\n{}\n{sections}", media_section()),
    )
}

/// The last `n` characters of `text` (whole lines), for failure messages.
pub fn tail(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    let mut start = text.len() - n;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    match text[start..].find('\n') {
        Some(i) => &text[start + i + 1..],
        None => &text[start..],
    }
}

/// The mss log's tail, headed, for failure messages.
pub fn mss_log(s: &Server) -> String {
    format!("--- mss log (tail) ---\n{}", tail(&s.stderr(), 6000))
}

// ------------------------------------------------------------------------------------------
// Admin API: call records and active calls (DESIGN §8)

/// `GET /api/calls` (records, newest first).
pub fn call_records(s: &Server) -> Vec<Value> {
    let (status, body) = s.get("/api/calls");
    assert_eq!(
        status, 200,
        "GET /api/calls: expected 200 with the call records, got {status}: {body}"
    );
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET /api/calls is not a JSON list ({e}): {body}"))
}

/// Waits until `GET /api/calls` has a record for which `pred` holds; returns it.
/// Only finished records count: the one written at answer (no disposition yet) is replaced
/// when the call ends, a moment after the phones saw the end.
pub fn wait_record(s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Vec::new();
    wait_for(STEP, || {
        last = call_records(s);
        last.iter()
            .find(|r| !r["disposition"].is_null() && pred(r))
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "GET /api/calls: expected a record {what} within {STEP:?}; the records:\n{}\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            mss_log(s)
        )
    })
}

/// Polls `f` (at most [`STEP`]) until it returns `Some`.
pub fn wait_some<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for(STEP, f)
}

/// `GET /api/calls/active`.
pub fn active_calls(s: &Server) -> (u16, String) {
    s.get("/api/calls/active")
}

/// After every test: `GET /api/calls/active` is an empty list (calls end a moment after
/// their last message, so this waits up to 5 s for it).
pub fn assert_no_active_calls(s: &Server) {
    let mut last = (0, String::new());
    let empty = wait_for(Duration::from_secs(5), || {
        last = active_calls(s);
        let list: Option<Vec<Value>> = serde_json::from_str(&last.1).ok();
        (last.0 == 200 && list.is_some_and(|l| l.is_empty())).then_some(())
    });
    assert!(
        empty.is_some(),
        "GET /api/calls/active: expected 200 and [] after the test, got {}: {}\n{}",
        last.0,
        last.1,
        mss_log(s)
    );
}

// ------------------------------------------------------------------------------------------
// The pjsua2 agent

/// The Python that has `pjsua2` (PyPI `pjsua2-python`): `$MSS_PJSUA_PYTHON`, else the venv
/// `scripts/install-test-python.sh` makes, else `python3` if it can import it.
pub fn pjsua_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("MSS_PJSUA_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(c) = cache {
        candidates.push(c.join("mss-test-deps/pjsua-venv/bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", "import pjsua2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c.clone();
        }
    }
    panic!(
        "no Python with pjsua2 found (tried {candidates:?}): run scripts/install-test-python.sh \
         (PyPI pjsua2-python in a venv under ~/.cache/mss-test-deps), or set MSS_PJSUA_PYTHON"
    );
}

/// The agent's script.
pub fn pjsua_agent_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/agents/pjsua_agent.py")
}

/// Events read from a peer, shared with its reader thread.
type Events = Arc<Mutex<Vec<Value>>>;

/// A pjsua2 user agent (one process), driven by commands; its events are JSON values.
pub struct Agent {
    pub name: String,
    pub port: u16,
    pub transport: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Events,
    trace: PathBuf,
    stderr: PathBuf,
}

/// How to start an agent.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Account user; registers at `registrar` with its password from [`USERS`] unless
    /// `no_register`.
    pub user: Option<String>,
    /// `host:port` of the registrar (mss); every request of the account goes there.
    pub registrar: Option<SocketAddr>,
    /// The account's domain (`pbx.test` for mss).
    pub domain: Option<String>,
    pub no_register: bool,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Answer every incoming call with this code at once (0: ring, answer on command).
    pub auto_answer: u16,
    /// The account's password when it is not one of [`USERS`] (a provider's user).
    pub password: Option<String>,
    /// Play a tone of this frequency (Hz) into every call (0: none).
    pub tone: u16,
    /// Record each call's received audio to `PREFIX-callN.wav`.
    pub record: Option<PathBuf>,
    /// The local address for SIP and RTP (default `127.0.0.1`).
    pub bind: Option<String>,
    /// Run in this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl Agent {
    /// Starts an agent called `name` (files in `dir`) and waits for its `ready` event.
    pub fn start(dir: &Path, name: &str, o: &AgentOptions) -> Agent {
        let trace = dir.join(format!("pjsua-{name}.trace"));
        let stderr = dir.join(format!("pjsua-{name}.err"));
        let transport = if o.transport.is_empty() {
            "udp".to_string()
        } else {
            o.transport.clone()
        };
        let mut cmd = match &o.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(pjsua_python());
                c
            }
            None => Command::new(pjsua_python()),
        };
        cmd.arg(pjsua_agent_script())
            .arg("--trace")
            .arg(&trace)
            .args(["--transport", &transport, "--lifetime", "150"]);
        if let Some(u) = &o.user {
            let pw = o
                .password
                .clone()
                .unwrap_or_else(|| password(u).to_string());
            cmd.args(["--user", u, "--password", &pw]);
        }
        if let Some(r) = o.registrar {
            cmd.arg("--registrar").arg(r.to_string());
        }
        if let Some(d) = &o.domain {
            cmd.args(["--domain", d]);
        }
        if o.no_register {
            cmd.arg("--no-register");
        }
        if o.auto_answer != 0 {
            cmd.arg("--auto-answer").arg(o.auto_answer.to_string());
        }
        if o.tone != 0 {
            cmd.arg("--tone").arg(o.tone.to_string());
        }
        if let Some(prefix) = &o.record {
            cmd.arg("--record").arg(prefix);
        }
        if let Some(bind) = &o.bind {
            cmd.args(["--bind", bind]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the pjsua2 agent: {e}"));
        let stdout = child.stdout.take().unwrap();
        let events: Events = Arc::default();
        {
            let events = events.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let v = serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({"event": "garbage", "line": line}));
                    events.lock().unwrap().push(v);
                }
            });
        }
        let stdin = child.stdin.take();
        let mut a = Agent {
            name: name.to_string(),
            port: 0,
            transport,
            child,
            stdin,
            events,
            trace,
            stderr,
        };
        let ready = a.wait_ctx("the agent to start (event `ready`)", &String::new, |e| {
            e["event"] == "ready"
        });
        a.port = u16::try_from(ready["port"].as_u64().unwrap()).unwrap();
        a
    }

    /// An agent registered as `user` at mss over `transport`; waits for the `200`.
    pub fn registered(dir: &Path, s: &Server, name: &str, user: &str, transport: &str) -> Agent {
        Agent::registered_with(dir, s, name, user, transport, AgentOptions::default())
    }

    /// As [`Agent::registered`], with the other options of `o` (a tone, a recording).
    pub fn registered_with(
        dir: &Path,
        s: &Server,
        name: &str,
        user: &str,
        transport: &str,
        o: AgentOptions,
    ) -> Agent {
        let a = Agent::start(
            dir,
            name,
            &AgentOptions {
                user: Some(user.to_string()),
                registrar: Some(s.sip()),
                domain: Some("pbx.test".to_string()),
                transport: transport.to_string(),
                ..o
            },
        );
        a.wait(s, "its REGISTER answered 200", |e| {
            e["event"] == "reg" && e["code"] == 200
        });
        a
    }

    /// Sends one command line (see the agent's docstring).
    pub fn cmd(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("agent stdin closed");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("agent {}: {e}", self.name));
        stdin.flush().unwrap();
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// The number of events so far: a mark for [`Agent::wait_after`].
    pub fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The SIP messages of the agent's trace (PJSIP's message log), for failure messages.
    pub fn sip_trace(&self) -> String {
        let log = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let mut out = String::new();
        let mut inside = false;
        for line in log.lines() {
            if !inside
                && (line.contains(" .RX ")
                    || line.contains(" .TX ")
                    || line.contains(" RX ")
                    || line.contains(" TX "))
                && line.contains(" bytes ")
            {
                inside = true;
            }
            if inside {
                out.push_str(line);
                out.push('\n');
                if line.starts_with("--end msg--") {
                    inside = false;
                }
            }
        }
        out
    }

    fn describe(&self) -> String {
        let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
        format!(
            "--- agent {} events ---\n{}\n--- agent {} SIP trace (tail) ---\n{}\n--- agent {} stderr (tail) ---\n{}",
            self.name,
            events.join("\n"),
            self.name,
            tail(&self.sip_trace(), 8000),
            self.name,
            tail(&std::fs::read_to_string(&self.stderr).unwrap_or_default(), 2000)
        )
    }

    /// Waits (at most [`STEP`]) for an event for which `pred` holds, from the start.
    pub fn wait(&self, s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_after(s, 0, what, pred)
    }

    /// As [`Agent::wait`], among the events after `mark`.
    pub fn wait_after(
        &self,
        s: &Server,
        mark: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_from(mark, what, &|| mss_log(s), pred)
    }

    /// As [`Agent::wait`] without mss (`context` adds to the failure message).
    pub fn wait_ctx(
        &self,
        what: &str,
        context: &dyn Fn() -> String,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_from(0, what, context, pred)
    }

    /// As [`Agent::wait_after`] without mss (`context` adds to the failure message).
    pub fn wait_from(
        &self,
        mark: usize,
        what: &str,
        context: &dyn Fn() -> String,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = wait_for(STEP, || {
            self.events
                .lock()
                .unwrap()
                .iter()
                .skip(mark)
                .find(|e| pred(e))
                .cloned()
        });
        found.unwrap_or_else(|| {
            panic!(
                "pjsua2 agent {}: expected {what} within {STEP:?}, not seen.\n{}\n{}",
                self.name,
                self.describe(),
                context()
            )
        })
    }

    /// Whether an event for which `pred` holds was seen after `mark`.
    pub fn saw_after(&self, mark: usize, pred: impl Fn(&Value) -> bool) -> bool {
        self.events.lock().unwrap().iter().skip(mark).any(pred)
    }

    /// Panics (with everything seen) when an event for which `pred` holds came after `mark`.
    pub fn assert_not_seen(
        &self,
        s: &Server,
        mark: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) {
        if self.saw_after(mark, pred) {
            panic!(
                "pjsua2 agent {}: expected no {what}, but it came.\n{}\n{}",
                self.name,
                self.describe(),
                mss_log(s)
            );
        }
    }

    /// Asks the agent to quit and waits (at most 5 s), then kills it.
    pub fn quit(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Predicates on agent events.
pub mod ev {
    use serde_json::Value;

    /// A state event of the agent's call `call` in `state`.
    pub fn state(call: u64, state: &'static str) -> impl Fn(&Value) -> bool {
        move |e| e["event"] == "state" && e["call"] == call && e["state"] == state
    }

    /// Any call of the agent in `state`.
    pub fn any_state(state: &'static str) -> impl Fn(&Value) -> bool {
        move |e| e["event"] == "state" && e["state"] == state
    }

    /// A response `code` to a request `method` of a call.
    pub fn response(method: &'static str, code: u64) -> impl Fn(&Value) -> bool {
        move |e| e["event"] == "rx_response" && e["method"] == method && e["code"] == code
    }

    /// A request `method` received inside a call.
    pub fn request(method: &'static str) -> impl Fn(&Value) -> bool {
        move |e| e["event"] == "rx_request" && e["method"] == method
    }

    /// A media state event with `status`.
    pub fn media(status: &'static str) -> impl Fn(&Value) -> bool {
        move |e| e["event"] == "media" && e["status"] == status
    }

    /// An incoming call.
    pub fn incoming() -> impl Fn(&Value) -> bool {
        |e| e["event"] == "incoming"
    }
}

/// The agent's call number in `event`.
pub fn call_no(event: &Value) -> u64 {
    event["call"].as_u64().unwrap()
}

// ------------------------------------------------------------------------------------------
// baresip 1.0, headless, over ctrl_tcp

/// A headless baresip with one account, driven through `ctrl_tcp` (JSON in netstrings):
/// commands `dial`, `accept`, `hangup`; events `CALL_INCOMING`, `CALL_RINGING`,
/// `CALL_PROGRESS`, `CALL_ESTABLISHED`, `CALL_CLOSED`. Its SIP trace (`-s`) is its stdout.
pub struct Baresip {
    pub name: String,
    pub sip_port: u16,
    child: Child,
    ctrl: TcpStream,
    events: Events,
    log: PathBuf,
}

impl Baresip {
    /// Starts baresip for `user` with an account at `registrar` (`None`: no account
    /// registration, `regint=0`) over `transport`, answering on command only.
    pub fn start(
        dir: &Path,
        name: &str,
        user: &str,
        registrar: SocketAddr,
        transport: &str,
        register: bool,
    ) -> Baresip {
        Baresip::start_with_config(dir, name, user, registrar, transport, register, "")
    }

    /// As [`Baresip::start`], with `extra` lines added to its `config` (audio modules).
    pub fn start_with_config(
        dir: &Path,
        name: &str,
        user: &str,
        registrar: SocketAddr,
        transport: &str,
        register: bool,
        extra: &str,
    ) -> Baresip {
        let baresip = require_tool("baresip");
        let home = dir.join(format!("baresip-{name}"));
        let conf = home.join(".baresip");
        std::fs::create_dir_all(&conf).unwrap();
        let sip_port = free_port_for_baresip();
        // baresip binds TLS on the SIP port + 1.
        let ctrl_port = loop {
            let p = free_port();
            if p != sip_port + 1 && p != sip_port {
                break p;
            }
        };
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\n\
                 module_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n{extra}"
            ),
        )
        .unwrap();
        let regint = if register { 600 } else { 0 };
        std::fs::write(
            conf.join("accounts"),
            format!(
                "<sip:{user}@{registrar};transport={transport}>;auth_pass={};regint={regint};answermode=manual\n",
                password(user)
            ),
        )
        .unwrap();
        let log = dir.join(format!("baresip-{name}.out"));
        let child = Command::new(baresip)
            .env("HOME", &home)
            .arg("-f")
            .arg(&conf)
            .args(["-s", "-t", "150"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
        let ctrl = wait_for(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip {name}: its ctrl_tcp port {ctrl_port} did not open within 10 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let events: Events = Arc::default();
        {
            let events = events.clone();
            let mut reader = ctrl.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = reader.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Netstrings: LEN ":" DATA ","
                    while let Some(colon) = buf.iter().position(|&b| b == b':') {
                        let Some(len) = std::str::from_utf8(&buf[..colon])
                            .ok()
                            .and_then(|l| l.parse::<usize>().ok())
                        else {
                            buf.clear();
                            break;
                        };
                        if buf.len() < colon + 1 + len + 1 {
                            break;
                        }
                        let data = buf[colon + 1..colon + 1 + len].to_vec();
                        buf.drain(..colon + 1 + len + 1);
                        let v = serde_json::from_slice(&data).unwrap_or_else(
                            |_| serde_json::json!({"garbage": String::from_utf8_lossy(&data)}),
                        );
                        events.lock().unwrap().push(v);
                    }
                }
            });
        }
        Baresip {
            name: name.to_string(),
            sip_port,
            child,
            ctrl,
            events,
            log,
        }
    }

    /// Sends `command` with `params` (e.g. `dial`, `sip:100@…`) and waits for its response.
    pub fn command(&mut self, command: &str, params: &str) -> Value {
        let token = format!("{command}-{}", self.mark());
        let data =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        write!(self.ctrl, "{}:{data},", data.len()).unwrap();
        self.ctrl.flush().unwrap();
        let r = self.wait_ctx(
            &format!("the response to `{command} {params}`"),
            &String::new,
            |e| e["response"] == true && e["token"] == token.as_str(),
        );
        assert_eq!(
            r["ok"],
            true,
            "baresip {}: `{command} {params}` failed: {r}\n{}",
            self.name,
            self.describe()
        );
        r
    }

    /// The number of events so far.
    pub fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// baresip's output: its SIP trace and log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The SIP messages baresip's trace shows, as `(route line, message text)`, in order.
    /// A trace entry is `#\nPROTO SRC -> DST\n<message>` with colour escapes around it.
    pub fn messages(&self) -> Vec<(String, String)> {
        let log = self.log();
        let mut out = Vec::new();
        for entry in log.split("\u{1b}[36;1m#\n").skip(1) {
            let entry = entry.split("\u{1b}[;m").next().unwrap_or("");
            let (route, msg) = entry.split_once('\n').unwrap_or((entry, ""));
            out.push((route.to_string(), msg.to_string()));
        }
        out
    }

    /// The requests baresip received from `from` whose start line begins with `method`.
    pub fn received_requests(&self, from: SocketAddr, method: &str) -> Vec<String> {
        let from = from.to_string();
        self.messages()
            .into_iter()
            .filter(|(route, msg)| {
                route.split(' ').nth(1) == Some(from.as_str())
                    && msg.starts_with(&format!("{method} "))
            })
            .map(|(_, m)| m)
            .collect()
    }

    fn describe(&self) -> String {
        let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
        format!(
            "--- baresip {} events ---\n{}\n--- baresip {} output (tail) ---\n{}",
            self.name,
            events.join("\n"),
            self.name,
            tail(&self.log(), 8000)
        )
    }

    /// Waits (at most [`STEP`]) for an event of `kind` (`CALL_INCOMING` …) after `mark`.
    pub fn wait_event(&self, s: &Server, mark: usize, kind: &str) -> Value {
        self.wait_from(mark, &format!("event {kind}"), &|| mss_log(s), |e| {
            e["event"] == true && e["type"] == kind
        })
    }

    /// As [`Baresip::wait_event`] with a predicate and a context for the failure message.
    pub fn wait_ctx(
        &self,
        what: &str,
        context: &dyn Fn() -> String,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_from(0, what, context, pred)
    }

    /// As [`Baresip::wait_event`] without mss (`context` adds to the failure message).
    pub fn wait_from(
        &self,
        mark: usize,
        what: &str,
        context: &dyn Fn() -> String,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(STEP, || {
            self.events
                .lock()
                .unwrap()
                .iter()
                .skip(mark)
                .find(|e| pred(e))
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip {}: expected {what} within {STEP:?}, not seen.\n{}\n{}",
                self.name,
                self.describe(),
                context()
            )
        })
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `user` has a registration at mss over `transport` (`UDP`/`TCP`).
pub fn wait_registered(s: &Server, user: &str, transport: &str, context: &dyn Fn() -> String) {
    let found = wait_for(STEP, || {
        s.registrations()
            .iter()
            .any(|r| r["user"] == user && r["transport"] == transport)
            .then_some(())
    });
    assert!(
        found.is_some(),
        "expected {user} registered over {transport} within {STEP:?}; registrations: {:?}\n{}\n{}",
        s.registrations(),
        context(),
        mss_log(s)
    );
}

// ------------------------------------------------------------------------------------------
// SIPp

/// The folder of the SIPp scenarios.
pub fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp")
}

/// A SIPp command with `scenario` from local port `port`, UDP, its message trace and
/// errors in `dir/NAME.msg` / `dir/NAME.err` (NAME = `name`), bounded to 30 s.
pub fn sipp(dir: &Path, name: &str, scenario: &str, port: u16) -> Command {
    let mut c = Command::new(require_tool("sipp"));
    c.current_dir(dir)
        .arg("-sf")
        .arg(sipp_dir().join(scenario))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
        .args([
            "-nostdin",
            "-timeout",
            "30",
            "-timeout_error",
            "-deadcall_wait",
            "0",
        ])
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join(format!("{name}.msg")))
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{name}.err")));
    c
}

/// SIPp's message trace and errors of run `name`, for failure messages and checks.
pub fn sipp_trace(dir: &Path, name: &str) -> String {
    let read =
        |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap_or_default();
    format!(
        "--- SIPp {name} errors ---\n{}\n--- SIPp {name} messages (tail) ---\n{}",
        tail(&read("err"), 3000),
        tail(&read("msg"), 12000)
    )
}

/// The start lines of the messages in SIPp's trace of run `name`, with `sent`/`received`.
pub fn sipp_flow(dir: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.msg"))).unwrap_or_default();
    let mut out = Vec::new();
    let mut dir_word = "";
    let mut take_next = false;
    for line in text.lines() {
        if line.contains("message sent") {
            dir_word = "sent";
            take_next = true;
        } else if line.contains("message received") {
            dir_word = "received";
            take_next = true;
        } else if take_next && !line.trim().is_empty() {
            out.push(format!("{dir_word} {}", line.trim()));
            take_next = false;
        }
    }
    out
}

/// Registers `user` at mss with SIPp from local port `port` (where its UAS will listen).
pub fn sipp_register(s: &Server, dir: &Path, user: &str, port: u16) {
    let csv = dir.join(format!("{user}.csv"));
    std::fs::write(
        &csv,
        format!(
            "SEQUENTIAL\n{user};[authentication username={user} password={}]\n",
            password(user)
        ),
    )
    .unwrap();
    let name = format!("register-{user}-{port}");
    let (ok, out, err) = run_bounded(
        sipp(dir, &name, "register_auth.xml", port)
            .arg(s.sip().to_string())
            .arg("-inf")
            .arg(&csv)
            .args(["-m", "1"]),
        Duration::from_secs(20),
    );
    assert!(
        ok,
        "SIPp REGISTER of {user} failed:\n{out}\n{err}\n{}\n{}",
        sipp_trace(dir, &name),
        mss_log(s)
    );
}

/// A SIPp process in the background (a UAS), killed when dropped.
pub struct SippBg {
    pub name: String,
    child: Child,
    out: PathBuf,
}

impl SippBg {
    /// Spawns `cmd` (from [`sipp`]) as run `name`.
    pub fn spawn(dir: &Path, name: &str, mut cmd: Command) -> SippBg {
        let out = dir.join(format!("{name}.out"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        SippBg {
            name: name.to_string(),
            child,
            out,
        }
    }

    /// Waits (at most `limit`) for SIPp to end; whether it exited 0, and its screen.
    pub fn finish(&mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        let ok = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            ok,
            tail(
                &std::fs::read_to_string(&self.out).unwrap_or_default(),
                4000,
            )
            .to_string(),
        )
    }
}

impl Drop for SippBg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
