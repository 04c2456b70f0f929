//! A simulated-time harness for [`Registration`]: a fake provider closure answers each
//! REGISTER, a seeded RNG makes runs replayable, and time jumps to the next deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mss_auth::{
    Algorithm, Credentials, DigestServer, NonceSecret, ServerConfig, UserSecret, Verdict,
};
use mss_sip::{HeaderName, Request, Response, StatusCode, Transport};
use mss_store::LineRecord;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::lines::{
    LineLog, LineOutput, LineSettings, LineState, LineStatus, Registration, Target,
};
use crate::Now;

/// One REGISTER the line sent.
pub(crate) struct Sent {
    pub(crate) at: Now,
    pub(crate) request: Request,
    pub(crate) target: Target,
}

impl Sent {
    pub(crate) fn call_id(&self) -> String {
        self.request.headers().call_id().unwrap().to_owned()
    }
    pub(crate) fn cseq(&self) -> u32 {
        self.request.headers().cseq().unwrap().seq
    }
    pub(crate) fn tag_in_from(&self) -> String {
        self.request
            .headers()
            .from()
            .unwrap()
            .tag()
            .unwrap()
            .to_owned()
    }
    pub(crate) fn expires(&self) -> u32 {
        self.request.headers().expires().unwrap().unwrap()
    }
    pub(crate) fn has_credentials(&self) -> bool {
        self.request.headers().contains(&HeaderName::Authorization)
            || self
                .request
                .headers()
                .contains(&HeaderName::ProxyAuthorization)
    }
}

/// What the fake provider does with a REGISTER.
pub(crate) enum Reply {
    /// Answer after 50 ms.
    Answer(Response),
    /// Say nothing: the transaction times out after 32 s (Timer F).
    Silence,
}

pub(crate) const LATENCY: Duration = Duration::from_millis(50);
pub(crate) const TIMER_F: Duration = Duration::from_secs(32);

pub(crate) fn target(last: u8) -> Target {
    Target {
        addr: SocketAddr::from(([192, 0, 2, last], 5060)),
        transport: Transport::Udp,
        local: SocketAddr::from(([198, 51, 100, 9], 5060)),
    }
}

pub(crate) fn settings() -> LineSettings {
    let mut s = LineSettings::new("provider1", "sip.provider.example", "2001", "secret");
    s.user_agent = "mss-test".into();
    s
}

/// The line, its clock and everything it did.
pub(crate) struct Sim {
    pub(crate) reg: Registration,
    pub(crate) now: Now,
    pub(crate) start: Now,
    pub(crate) rng: StdRng,
    pub(crate) targets: Vec<Target>,
    pub(crate) resolves: usize,
    pub(crate) sent: Vec<Sent>,
    pub(crate) persisted: Vec<LineRecord>,
    pub(crate) states: Vec<LineStatus>,
    pub(crate) logs: Vec<LineLog>,
    /// Outputs in order, as short tags (`P` persist, `S` send, `R` resolve …).
    pub(crate) order: String,
    answer: Option<(Instant, Response)>,
    timer_f: Option<Instant>,
}

impl Sim {
    pub(crate) fn new(settings: LineSettings, persisted: Option<LineRecord>) -> Sim {
        Sim::with_seed(settings, persisted, 42)
    }

    pub(crate) fn with_seed(
        settings: LineSettings,
        persisted: Option<LineRecord>,
        seed: u64,
    ) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Now::new(Instant::now(), 1_700_000_000_000);
        let reg = Registration::new(settings, persisted, start, &mut rng);
        Sim {
            reg,
            now: start,
            start,
            rng,
            targets: vec![target(1)],
            resolves: 0,
            sent: Vec::new(),
            persisted: Vec::new(),
            states: Vec::new(),
            logs: Vec::new(),
            order: String::new(),
            answer: None,
            timer_f: None,
        }
    }

    pub(crate) fn state(&self) -> LineState {
        self.reg.status().state
    }

    fn drain(&mut self, provider: &mut dyn FnMut(&Request, &Target, Now) -> Reply) {
        while let Some(out) = self.reg.poll_output(self.now, &mut self.rng) {
            match out {
                LineOutput::Resolve(_) => {
                    self.order.push('R');
                    self.resolves += 1;
                    let t = self.targets.clone();
                    self.reg.handle_resolved(self.now, t);
                }
                LineOutput::Send { request, target } => {
                    self.order.push('S');
                    match provider(&request, &target, self.now) {
                        Reply::Answer(rsp) => self.answer = Some((self.now.mono + LATENCY, rsp)),
                        Reply::Silence => self.timer_f = Some(self.now.mono + TIMER_F),
                    }
                    self.sent.push(Sent {
                        at: self.now,
                        request: *request,
                        target,
                    });
                }
                LineOutput::Persist(r) => {
                    self.order.push('P');
                    self.persisted.push(r);
                }
                LineOutput::StateChanged(s) => {
                    self.order.push('C');
                    self.states.push(s);
                }
                LineOutput::Log(l) => {
                    self.order.push('L');
                    self.logs.push(l);
                }
            }
        }
    }

    /// Runs for `span` of simulated time with `provider` answering.
    pub(crate) fn run(
        &mut self,
        span: Duration,
        mut provider: impl FnMut(&Request, &Target, Now) -> Reply,
    ) {
        let end = self.now.mono + span;
        for _ in 0..1_000_000 {
            self.drain(&mut provider);
            let next = [
                self.reg.poll_timeout(),
                self.answer.as_ref().map(|a| a.0),
                self.timer_f,
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.advance_to(end);
                return;
            };
            self.advance_to(next);
            if self.answer.as_ref().is_some_and(|a| a.0 <= self.now.mono) {
                if let Some((_, rsp)) = self.answer.take() {
                    self.reg.handle_response(self.now, &rsp, &mut self.rng);
                }
            } else if self.timer_f.is_some_and(|t| t <= self.now.mono) {
                self.timer_f = None;
                self.reg.handle_transaction_timeout(self.now);
            } else {
                self.reg.handle_timeout(self.now);
            }
        }
        panic!("simulation did not settle");
    }

    fn advance_to(&mut self, at: Instant) {
        if at > self.now.mono {
            self.now = self.now.after(at - self.now.mono);
        }
    }

    /// Seconds since the start of the simulation.
    pub(crate) fn secs(&self, at: Now) -> f64 {
        (at.mono - self.start.mono).as_secs_f64()
    }
}

/// A response to `req` with a To tag.
pub(crate) fn respond(req: &Request, code: u16, reason: &'static str) -> Response {
    let mut r = Response::for_request(req, StatusCode(code), reason);
    r.set_to_tag("prov1");
    r
}

/// `200 OK` listing the request's Contact with `;expires=N` (N = asked, or `cap`).
pub(crate) fn ok(req: &Request, cap: u32) -> Response {
    let asked = req.headers().expires().ok().flatten().unwrap_or(3600);
    let contact = req
        .headers()
        .get_str(&HeaderName::Contact)
        .ok()
        .flatten()
        .unwrap_or("");
    respond(req, 200, "OK").with_header(
        HeaderName::Contact,
        format!("{contact};expires={}", asked.min(cap)),
    )
}

/// A registrar with real digest (mss-auth's server side) for user 2001, password `secret`.
pub(crate) struct DigestProvider {
    pub(crate) server: DigestServer,
    pub(crate) password: String,
    pub(crate) realm: String,
    /// Challenge with `407` / `Proxy-Authenticate` instead of `401`.
    pub(crate) proxy: bool,
    pub(crate) granted: u32,
    pub(crate) verdicts: Vec<Verdict>,
    rng: StdRng,
}

impl DigestProvider {
    pub(crate) fn new(algorithms: Vec<Algorithm>, nonce_lifetime_secs: u64) -> DigestProvider {
        let config = ServerConfig {
            nonce_lifetime_secs,
            algorithms,
            ..ServerConfig::default()
        };
        DigestProvider {
            server: DigestServer::new(NonceSecret::from_bytes([7; 32]), config),
            password: "secret".into(),
            realm: "sip.provider.example".into(),
            proxy: false,
            granted: 3600,
            verdicts: Vec::new(),
            rng: StdRng::seed_from_u64(9),
        }
    }

    pub(crate) fn handle(&mut self, req: &Request, now: Now) -> Reply {
        let secs = u64::try_from(now.unix_ms / 1000).unwrap();
        let (cred_header, chal_header, code, reason) = if self.proxy {
            (
                HeaderName::ProxyAuthorization,
                HeaderName::ProxyAuthenticate,
                407,
                "Proxy Authentication Required",
            )
        } else {
            (
                HeaderName::Authorization,
                HeaderName::WwwAuthenticate,
                401,
                "Unauthorized",
            )
        };
        let auth = req.headers().auth(&cred_header).unwrap();
        let verdict = match auth.first() {
            None => None,
            Some(a) => {
                let creds =
                    Credentials::from_params(a.params.iter().map(|(n, v)| (*n, v.as_ref())))
                        .unwrap();
                assert_eq!(creds.uri, "sip:sip.provider.example");
                Some(self.server.verify(
                    &creds,
                    "REGISTER",
                    UserSecret::Password(&self.password),
                    &self.realm,
                    secs,
                ))
            }
        };
        if let Some(v) = verdict {
            self.verdicts.push(v);
        }
        match verdict {
            Some(Verdict::Ok) => Reply::Answer(ok(req, self.granted)),
            other => {
                let stale = other.is_some_and(Verdict::is_stale);
                let mut r = respond(req, code, reason);
                for c in self
                    .server
                    .challenges(&self.realm, stale, secs, &mut self.rng)
                    .unwrap()
                {
                    r.headers_mut().push(chal_header.clone(), c);
                }
                Reply::Answer(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_registers_with_a_plain_provider() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(10), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert_eq!(sim.state(), LineState::Online);
        assert_eq!(sim.sent.len(), 1);
        assert_eq!(sim.order, "RPSC");
    }
}
