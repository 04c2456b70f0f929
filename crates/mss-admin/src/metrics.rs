//! A small Prometheus registry made of atomics.
//!
//! Every metric and every label value is known up front, so each series is one slot in a
//! fixed array of atomics indexed by an enum: incrementing from the hot path is a single
//! relaxed atomic add, with no lock and no allocation. [`Metrics::render`] writes the
//! Prometheus text format (version 0.0.4) with `# HELP` and `# TYPE` lines.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use mss_store::{CallDirection, CallDisposition};

use crate::views::LineState;

/// A SIP method, as a metrics label. Extension methods count as [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// REGISTER (RFC 3261 §10).
    Register,
    /// INVITE (RFC 3261 §13).
    Invite,
    /// ACK (RFC 3261 §17).
    Ack,
    /// BYE (RFC 3261 §15).
    Bye,
    /// CANCEL (RFC 3261 §9).
    Cancel,
    /// OPTIONS (RFC 3261 §11).
    Options,
    /// MESSAGE (RFC 3428).
    Message,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// REFER (RFC 3515).
    Refer,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other method.
    Other,
}

impl Method {
    /// Every method, in label order.
    pub const ALL: [Method; 15] = [
        Method::Register,
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Message,
        Method::Subscribe,
        Method::Notify,
        Method::Info,
        Method::Update,
        Method::Prack,
        Method::Refer,
        Method::Publish,
        Method::Other,
    ];

    /// The method token (upper case), or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other => "other",
        }
    }

    /// The label for a method token (case-sensitive, as RFC 3261 §7.1 says methods are).
    pub fn from_token(token: &str) -> Method {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == token && *m != Method::Other)
            .unwrap_or(Method::Other)
    }
}

/// Whether a message was received or sent by mss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the network.
    In,
    /// Sent to the network.
    Out,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Why a digest authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// Unknown user or wrong password (indistinguishable on the wire).
    Credentials,
    /// The nonce had expired (`stale=true` was sent).
    StaleNonce,
    /// The nonce count was replayed.
    Replay,
    /// A malformed `Authorization`/`Proxy-Authorization` header.
    Malformed,
}

impl AuthFailure {
    const ALL: [AuthFailure; 4] = [
        AuthFailure::Credentials,
        AuthFailure::StaleNonce,
        AuthFailure::Replay,
        AuthFailure::Malformed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Credentials => "credentials",
            AuthFailure::StaleNonce => "stale_nonce",
            AuthFailure::Replay => "replay",
            AuthFailure::Malformed => "malformed",
        }
    }
}

/// What happened to an instant message (RFC 3428) handled by mss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageOutcome {
    /// Stored for an offline recipient (answered `202`).
    Stored,
    /// Delivered to the recipient (online, or later from the store).
    Delivered,
    /// Dropped from the store after `offline_ttl`.
    Expired,
    /// Refused (`413` too long, `480` store full, rate limited).
    Refused,
}

impl MessageOutcome {
    const ALL: [MessageOutcome; 4] = [
        MessageOutcome::Stored,
        MessageOutcome::Delivered,
        MessageOutcome::Expired,
        MessageOutcome::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Stored => "stored",
            MessageOutcome::Delivered => "delivered",
            MessageOutcome::Expired => "expired",
            MessageOutcome::Refused => "refused",
        }
    }
}

/// Lowest status code with a slot (RFC 3261 §7.2: 100–699).
const MIN_CODE: u16 = 100;
/// Number of status-code slots.
const CODES: usize = 600;

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The metrics of one mss process. Share it in an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by direction (outer) and method (inner).
    requests: [[AtomicU64; Method::ALL.len()]; 2],
    /// Responses by direction (outer) and status code − 100 (inner).
    responses: [[AtomicU64; CODES]; 2],
    /// Messages that failed to parse.
    parse_errors: AtomicU64,
    /// Digest failures by reason.
    auth_failures: [AtomicU64; AuthFailure::ALL.len()],
    /// Current contact bindings of local users.
    registered_contacts: AtomicI64,
    /// Number of lines in each state.
    lines: [AtomicI64; LineState::ALL.len()],
    /// Instant messages by outcome.
    messages: [AtomicU64; MessageOutcome::ALL.len()],
    /// Calls in progress.
    calls_active: AtomicU64,
    /// Ended calls by direction (outer) and disposition (inner).
    calls: [[AtomicU64; CallDisposition::ALL.len()]; CallDirection::ALL.len()],
    /// Calls with one-way audio, by the silent leg (caller, callee).
    one_way: [AtomicU64; 2],
}

/// The leg of a call the media relay heard nothing from (`mss_calls_one_way_total{leg}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallLeg {
    /// The caller's leg.
    Caller,
    /// The callee's leg.
    Callee,
}

impl CallLeg {
    /// Both, in the order of the series.
    pub const ALL: [CallLeg; 2] = [CallLeg::Caller, CallLeg::Callee];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallLeg::Caller => "caller",
            CallLeg::Callee => "callee",
        }
    }

    fn index(self) -> usize {
        match self {
            CallLeg::Caller => 0,
            CallLeg::Callee => 1,
        }
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

fn method_index(m: Method) -> usize {
    Method::ALL
        .iter()
        .position(|x| *x == m)
        .unwrap_or(Method::ALL.len() - 1)
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
    }
}

fn state_index(s: LineState) -> usize {
    LineState::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Metrics {
    /// A registry with every series at zero.
    pub fn new() -> Metrics {
        Metrics {
            requests: [counters(), counters()],
            responses: [counters(), counters()],
            parse_errors: AtomicU64::new(0),
            auth_failures: counters(),
            registered_contacts: AtomicI64::new(0),
            lines: std::array::from_fn(|_| AtomicI64::new(0)),
            messages: counters(),
            calls_active: AtomicU64::new(0),
            calls: std::array::from_fn(|_| counters()),
            one_way: counters(),
        }
    }

    /// Counts one request.
    pub fn request(&self, direction: Direction, method: Method) {
        if let Some(row) = self.requests.get(dir_index(direction)) {
            if let Some(c) = row.get(method_index(method)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one response; codes outside 100–699 are ignored.
    pub fn response(&self, direction: Direction, code: u16) {
        let Some(slot) = code.checked_sub(MIN_CODE) else {
            return;
        };
        if let Some(row) = self.responses.get(dir_index(direction)) {
            if let Some(c) = row.get(usize::from(slot)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one message that failed to parse.
    pub fn parse_error(&self) {
        self.parse_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed digest authentication.
    pub fn auth_failure(&self, reason: AuthFailure) {
        let i = AuthFailure::ALL.iter().position(|x| *x == reason);
        if let Some(c) = i.and_then(|i| self.auth_failures.get(i)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the number of current contact bindings.
    pub fn set_registered_contacts(&self, n: u64) {
        self.registered_contacts
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Moves one line from state `from` (if any) to state `to`.
    pub fn line_transition(&self, from: Option<LineState>, to: LineState) {
        if let Some(c) = from.and_then(|f| self.lines.get(state_index(f))) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(c) = self.lines.get(state_index(to)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the number of lines in `state` (for a full recount).
    pub fn set_lines(&self, state: LineState, n: u64) {
        if let Some(c) = self.lines.get(state_index(state)) {
            c.store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// Counts one instant message outcome.
    pub fn message(&self, outcome: MessageOutcome) {
        self.message_n(outcome, 1);
    }

    /// Counts `n` instant messages with one outcome (a service publishing what it counted
    /// since it last published).
    pub fn message_n(&self, outcome: MessageOutcome, n: u64) {
        let i = MessageOutcome::ALL.iter().position(|x| *x == outcome);
        if let Some(c) = i.and_then(|i| self.messages.get(i)) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sets the number of calls in progress (`mss_calls_active`).
    pub fn set_calls_active(&self, n: u64) {
        self.calls_active.store(n, Ordering::Relaxed);
    }

    /// Counts one ended call attempt (`mss_calls_total{direction,disposition}`): the
    /// labels are the call record's own values (`mss_store`'s enums), so what is counted
    /// and what is recorded cannot disagree.
    pub fn call_ended(&self, direction: CallDirection, disposition: CallDisposition) {
        if let Some(c) = self.call_slot(direction, disposition) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a call whose leg `leg` sent no RTP after the answer
    /// (`mss_calls_one_way_total{leg}`).
    pub fn call_one_way(&self, leg: CallLeg) {
        if let Some(c) = self.one_way.get(leg.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current value of a `mss_calls_one_way_total` series (for tests).
    pub fn calls_one_way(&self, leg: CallLeg) -> u64 {
        self.one_way
            .get(leg.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The current value of a `mss_calls_total` series (for tests).
    pub fn calls_ended(&self, direction: CallDirection, disposition: CallDisposition) -> u64 {
        self.call_slot(direction, disposition)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The counter of one `mss_calls_total` series.
    fn call_slot(
        &self,
        direction: CallDirection,
        disposition: CallDisposition,
    ) -> Option<&AtomicU64> {
        let d = CallDirection::ALL.iter().position(|x| *x == direction)?;
        let o = CallDisposition::ALL
            .iter()
            .position(|x| *x == disposition)?;
        self.calls.get(d)?.get(o)
    }

    /// The current value of a request counter (for tests and `mss status`).
    pub fn requests(&self, direction: Direction, method: Method) -> u64 {
        self.requests
            .get(dir_index(direction))
            .and_then(|row| row.get(method_index(method)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The current value of a response counter; 0 for codes outside 100–699.
    pub fn responses(&self, direction: Direction, code: u16) -> u64 {
        code.checked_sub(MIN_CODE)
            .and_then(|slot| {
                self.responses
                    .get(dir_index(direction))
                    .and_then(|row| row.get(usize::from(slot)))
            })
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Renders every series in the Prometheus text format.
    ///
    /// Response series are written only for codes seen at least once, so the output stays
    /// short; every other series is always written.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "mss_sip_requests_total",
            "SIP requests by direction and method.",
            "counter",
        );
        for d in Direction::ALL {
            for m in Method::ALL {
                let v = self.requests(d, m);
                let _ = writeln!(
                    out,
                    "mss_sip_requests_total{{direction=\"{}\",method=\"{}\"}} {v}",
                    d.as_str(),
                    m.as_str()
                );
            }
        }
        header(
            &mut out,
            "mss_sip_responses_total",
            "SIP responses by direction and status code.",
            "counter",
        );
        for d in Direction::ALL {
            if let Some(row) = self.responses.get(dir_index(d)) {
                for (code, c) in (MIN_CODE..).zip(row.iter()) {
                    let v = c.load(Ordering::Relaxed);
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "mss_sip_responses_total{{direction=\"{}\",code=\"{code}\"}} {v}",
                            d.as_str()
                        );
                    }
                }
            }
        }
        header(
            &mut out,
            "mss_sip_parse_errors_total",
            "Received SIP messages that failed to parse.",
            "counter",
        );
        let _ = writeln!(
            out,
            "mss_sip_parse_errors_total {}",
            self.parse_errors.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "mss_auth_failures_total",
            "Failed digest authentications by reason.",
            "counter",
        );
        for (r, c) in AuthFailure::ALL.iter().zip(self.auth_failures.iter()) {
            let _ = writeln!(
                out,
                "mss_auth_failures_total{{reason=\"{}\"}} {}",
                r.as_str(),
                c.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "mss_registered_contacts",
            "Current contact bindings of local users.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "mss_registered_contacts {}",
            self.registered_contacts.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "mss_lines",
            "External lines by registration state.",
            "gauge",
        );
        for (s, c) in LineState::ALL.iter().zip(self.lines.iter()) {
            let _ = writeln!(
                out,
                "mss_lines{{state=\"{}\"}} {}",
                s.as_str(),
                c.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "mss_messages_total",
            "Instant messages by outcome.",
            "counter",
        );
        for (o, c) in MessageOutcome::ALL.iter().zip(self.messages.iter()) {
            let _ = writeln!(
                out,
                "mss_messages_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                c.load(Ordering::Relaxed)
            );
        }
        header(&mut out, "mss_calls_active", "Calls in progress.", "gauge");
        let _ = writeln!(
            out,
            "mss_calls_active {}",
            self.calls_active.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "mss_calls_total",
            "Ended call attempts by direction and disposition.",
            "counter",
        );
        for (d, row) in CallDirection::ALL.iter().zip(self.calls.iter()) {
            for (o, c) in CallDisposition::ALL.iter().zip(row.iter()) {
                let _ = writeln!(
                    out,
                    "mss_calls_total{{direction=\"{}\",disposition=\"{}\"}} {}",
                    d.as_str(),
                    o.as_str(),
                    c.load(Ordering::Relaxed)
                );
            }
        }
        header(
            &mut out,
            "mss_calls_one_way_total",
            "Answered calls with a leg the media relay got no RTP from (one-way audio), by that leg.",
            "counter",
        );
        for leg in CallLeg::ALL {
            let _ = writeln!(
                out,
                "mss_calls_one_way_total{{leg=\"{}\"}} {}",
                leg.as_str(),
                self.calls_one_way(leg)
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_labels() {
        let m = Metrics::new();
        m.request(Direction::In, Method::Register);
        m.request(Direction::In, Method::Register);
        m.request(Direction::In, Method::from_token("FOO"));
        m.response(Direction::Out, 401);
        m.response(Direction::Out, 99);
        m.response(Direction::Out, 700);
        m.parse_error();
        m.auth_failure(AuthFailure::StaleNonce);
        m.set_registered_contacts(3);
        m.line_transition(None, LineState::Registering);
        m.line_transition(Some(LineState::Registering), LineState::Online);
        m.message(MessageOutcome::Stored);
        m.message_n(MessageOutcome::Refused, 3);
        m.message_n(MessageOutcome::Refused, 0);
        m.set_lines(LineState::BackingOff, 4);
        m.set_calls_active(2);
        m.call_ended(CallDirection::Outbound, CallDisposition::Answered);
        m.call_ended(CallDirection::Outbound, CallDisposition::Answered);
        m.call_ended(CallDirection::Inbound, CallDisposition::Interrupted);
        assert_eq!(
            m.calls_ended(CallDirection::Outbound, CallDisposition::Answered),
            2
        );
        assert_eq!(m.responses(Direction::Out, 401), 1);
        assert_eq!(m.responses(Direction::Out, 700), 0);
        assert_eq!(m.requests(Direction::In, Method::Register), 2);
        let text = m.render();
        assert!(text.contains("mss_lines{state=\"backing_off\"} 4\n"));
        assert!(text.contains("mss_sip_requests_total{direction=\"in\",method=\"REGISTER\"} 2\n"));
        assert!(text.contains("mss_sip_requests_total{direction=\"in\",method=\"other\"} 1\n"));
        assert!(text.contains("mss_sip_responses_total{direction=\"out\",code=\"401\"} 1\n"));
        assert!(!text.contains("code=\"99\""));
        assert!(text.contains("mss_sip_parse_errors_total 1\n"));
        assert!(text.contains("mss_auth_failures_total{reason=\"stale_nonce\"} 1\n"));
        assert!(text.contains("mss_registered_contacts 3\n"));
        assert!(text.contains("mss_lines{state=\"online\"} 1\n"));
        assert!(text.contains("mss_lines{state=\"registering\"} 0\n"));
        assert!(text.contains("mss_messages_total{outcome=\"stored\"} 1\n"));
        assert!(text.contains("mss_messages_total{outcome=\"refused\"} 3\n"));
        assert!(text.contains("# TYPE mss_lines gauge\n"));
        assert!(text.contains("mss_calls_active 2\n"));
        assert!(text.contains("# TYPE mss_calls_active gauge\n"));
        assert!(
            text.contains("mss_calls_total{direction=\"outbound\",disposition=\"answered\"} 2\n")
        );
        assert!(
            text.contains("mss_calls_total{direction=\"inbound\",disposition=\"interrupted\"} 1\n")
        );
        assert!(
            text.contains("mss_calls_total{direction=\"internal\",disposition=\"no_answer\"} 0\n")
        );
        assert_eq!(text.matches("mss_calls_total{").count(), 18);
        m.call_one_way(CallLeg::Callee);
        let text = m.render();
        assert!(text.contains("mss_calls_one_way_total{leg=\"callee\"} 1\n"));
        assert!(text.contains("mss_calls_one_way_total{leg=\"caller\"} 0\n"));
        assert!(text.contains("# HELP mss_sip_requests_total "));
    }

    #[test]
    fn every_series_line_is_well_formed() {
        let text = Metrics::new().render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("mss_"), "{line}");
            assert!(value.parse::<i64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn method_tokens_are_case_sensitive() {
        assert_eq!(Method::from_token("MESSAGE"), Method::Message);
        assert_eq!(Method::from_token("message"), Method::Other);
        assert_eq!(Method::from_token("other"), Method::Other);
    }
}
