//! The media relay of calls (DESIGN §8 "Media relay", `[media] relay = always`).
//!
//! The relay itself (ports, sockets, latching, timers) runs outside the core
//! (`mss_media::io::MediaRelay`, its own thread); the call service drives it through
//! [`Output::Media`] commands and hears it through [`crate::Input::Media`] events, as it
//! does the store. A new call needs one session per `m=` line of its offer (one for a
//! delayed offer). It takes them from the sessions the relay allocated and bound ahead
//! (`MediaEvent::Ready`, kept in `Calls::media_ready`), telling the relay with
//! `Command::Taken` so that it binds others, and its B legs start at once: no system call
//! and no round trip to the relay's thread in the INVITE's path. When too few are ready the
//! rest is asked for (`Command::Allocate`) and the B legs start when every session came
//! back; when the ports are used up the caller gets `503` + `Retry-After` and the sessions
//! already allocated are released. An allocation refused for want of ports while sessions
//! became ready meanwhile (the relay's thread sends them before it answers, the channel
//! keeps the order) takes a ready one instead: the caller is refused only when none is
//! left anywhere.
//!
//! Each session has an A side (the caller's leg) and one B side shared by every B leg of
//! the call: the caller has one dialog with mss and one place to send its media to, so all
//! forks' early media go to the same B port; the relay latches to the fork that sent the
//! last `183`'s SDP and again to the winner when its `2xx` comes (a new `SetRemote`; a
//! host the new remote does not allow is never latched, so a losing fork on another host
//! cannot take the winner's place).
//!
//! Every SDP that crosses mss is rewritten for the leg it goes to (`sdp_relay.rs`), and
//! what it says of the leg it came from becomes that leg's `Remote` (its signalling
//! source and SDP address: latching starts again) and its hold state. The call's sessions
//! are released when the call ends, whatever ended it (`end_call`), and an allocation that
//! comes back for a call that is gone is released at once. `TimedOut` ends the call with
//! BYE on both legs (ended by mss); `NoRtpFrom` flags the leg in `/api/calls/active`, is
//! logged once and counted (`mss_calls_one_way_total{leg}`). The counters of the view
//! (`rtp_in`, `rtp_out`) are asked for every [`STATS_INTERVAL`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_media::io::{AllocateError, Command, MediaEvent};
use mss_media::{Allocation, Event, Leg, PortPair, Remote, SessionId, SessionStats};
use mss_services::Now;
use mss_sip::{Flow, HeaderName, StatusCode};
use mss_store::EndedBy;

use super::admission::Target;
use super::model::{CallState, Side};
use super::sdp_relay::{is_sdp, leg_streams, LegSdp, StreamRemote};
use super::CallKey;
use crate::core::Core;
use crate::output::Output;

/// How often the counters of the calls' sessions are asked for (`/api/calls/active`).
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The most `m=` lines one call gets sessions for (audio, video, and a spare).
const MAX_STREAMS: usize = 4;

/// Seconds a caller refused for want of RTP ports is asked to wait.
const PORTS_RETRY_AFTER: &str = "10";

/// A call's sessions of the relay and what the relay said of them.
#[derive(Debug, Default)]
pub(crate) struct CallMedia {
    /// The sessions, by `m=` index (in the order the allocations came back).
    pub(crate) sessions: Vec<Allocation>,
    /// Allocations asked for and not answered yet.
    pub(crate) waiting: usize,
    /// Why an allocation failed, if one did.
    pub(crate) failed: Option<AllocateError>,
    /// The hold state given to the relay, per session and leg (A, B).
    hold: Vec<[bool; 2]>,
    /// The last counters of each session.
    stats: Vec<SessionStats>,
    /// Legs flagged `no_rtp_from` (A, B).
    pub(crate) no_rtp_from: [bool; 2],
    /// Each leg's SDP address of its first stream (A, B), for the log of a silent leg.
    sdp_rtp: [Option<SocketAddr>; 2],
    /// The caller's offer read when the sessions were counted (`None`: no usable SDP):
    /// what it says of the caller, and the description each B leg's INVITE carries
    /// rewritten; kept until the call is answered (no B leg starts after that).
    offer_sdp: Option<Box<LegSdp>>,
}

impl CallMedia {
    /// The RTP packets received from and sent to `leg`, over every session.
    pub(crate) fn rtp(&self, leg: Leg) -> (u64, u64) {
        self.stats.iter().fold((0, 0), |(i, o), s| {
            let l = match leg {
                Leg::A => &s.a,
                Leg::B => &s.b,
            };
            (i + l.rtp_in, o + l.rtp_out)
        })
    }

    /// The ports of `leg` in every session, by `m=` index.
    fn ports(&self, leg: Leg) -> Vec<PortPair> {
        self.sessions.iter().map(|s| s.ports(leg)).collect()
    }
}

/// The relay's leg of a call's side.
pub(crate) fn leg_of(side: Side) -> Leg {
    match side {
        Side::A => Leg::A,
        Side::B(_) => Leg::B,
    }
}

fn index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

impl Core {
    /// With the relay: gives new call `key` its sessions, from the ready ones when there
    /// are enough (false: the call goes on at once), else asks for the rest and keeps
    /// `target` until they come (true); without relay: false.
    pub(crate) fn media_allocate(&mut self, now: Now, key: CallKey, target: Target) -> bool {
        if self.calls.settings.media.is_none() {
            return false;
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return false;
        };
        // Read once: how many sessions, and later the caller's remote in each.
        let offer_sdp = call
            .offer
            .as_ref()
            .and_then(|(_, body)| LegSdp::parse(body).ok())
            .map(Box::new);
        let streams = offer_sdp
            .as_ref()
            .map_or(1, |s| s.streams().len())
            .clamp(1, MAX_STREAMS);
        call.media = Some(CallMedia {
            offer_sdp,
            ..CallMedia::default()
        });
        let mut missing = streams;
        while missing > 0 {
            let Some(a) = self.calls.media_ready.pop_front() else {
                break;
            };
            self.take_ready(now, key, a);
            missing -= 1;
        }
        if missing == 0 {
            self.media_complete(key);
            return false;
        }
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.waiting_target = Some(target);
            if let Some(media) = call.media.as_mut() {
                media.waiting = missing;
            }
        }
        for _ in 0..missing {
            let op = self.calls.next_media_op();
            self.calls.media_ops.insert(op, key);
            self.out.push_back(Output::Media(Command::Allocate { op }));
        }
        true
    }

    /// Ready session `a` becomes call `key`'s next session; the relay hears it was taken.
    fn take_ready(&mut self, now: Now, key: CallKey, a: Allocation) {
        self.out
            .push_back(Output::Media(Command::Taken { session: a.session }));
        self.add_session(now, key, a);
    }

    /// Session `a` becomes call `key`'s next session (by `m=` index).
    fn add_session(&mut self, now: Now, key: CallKey, a: Allocation) {
        let Some(media) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.media.as_mut())
        else {
            return;
        };
        media.sessions.push(a);
        media.hold.push([false; 2]);
        media.stats.push(SessionStats::default());
        self.calls.by_session.insert(a.session, key);
        self.calls.stats_at.get_or_insert(now.mono + STATS_INTERVAL);
    }

    /// Call `key` has all its sessions: the caller's offer tells the relay where its media
    /// comes from.
    fn media_complete(&mut self, key: CallKey) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let flow = call.a.flow;
        let streams = call
            .media
            .as_ref()
            .and_then(|m| m.offer_sdp.as_ref())
            .map(|s| s.streams().to_vec());
        if let Some(streams) = streams {
            self.note_streams_over(key, Side::A, flow, &streams);
        }
    }

    /// An answer or event of the media relay.
    pub(crate) fn on_media_event(&mut self, now: Now, event: MediaEvent) {
        match event {
            MediaEvent::Allocated { op, result } => self.on_allocated(now, op, result),
            MediaEvent::Ready(a) => self.calls.media_ready.push_back(a),
            MediaEvent::Released { session, stats } => {
                tracing::debug!(%session, ?stats, "media session released");
            }
            MediaEvent::Stats { session, stats } => {
                let Some(stats) = stats else { return };
                let Some(key) = self.calls.by_session.get(&session).copied() else {
                    return;
                };
                if let Some(media) = self
                    .calls
                    .table
                    .get_mut(&key)
                    .and_then(|c| c.media.as_mut())
                {
                    if let Some(i) = media.sessions.iter().position(|s| s.session == session) {
                        if let Some(slot) = media.stats.get_mut(i) {
                            *slot = stats;
                        }
                    }
                }
            }
            MediaEvent::Relay(e) => self.on_relay_event(now, e),
        }
    }

    /// Allocation `op` came back.
    fn on_allocated(&mut self, now: Now, op: u64, result: Result<Allocation, AllocateError>) {
        let key = self.calls.media_ops.remove(&op).filter(|k| {
            self.calls
                .table
                .get(k)
                .is_some_and(|c| c.state != CallState::Ending && c.media.is_some())
        });
        let Some(key) = key else {
            // The call ended (or was never ours) meanwhile: the ports go back at once.
            if let Ok(a) = result {
                self.out
                    .push_back(Output::Media(Command::Release { session: a.session }));
            }
            return;
        };
        match result {
            Ok(a) => self.add_session(now, key, a),
            Err(AllocateError::Exhausted) if !self.calls.media_ready.is_empty() => {
                // Sessions became ready after the call asked: they are the ports left.
                if let Some(a) = self.calls.media_ready.pop_front() {
                    self.take_ready(now, key, a);
                }
            }
            Err(e) => {
                if let Some(media) = self.media_of(key) {
                    media.failed.get_or_insert(e);
                }
            }
        }
        let Some(media) = self.media_of(key) else {
            return;
        };
        media.waiting = media.waiting.saturating_sub(1);
        if media.waiting > 0 {
            return;
        }
        if let Some(e) = media.failed.clone() {
            tracing::warn!(error = %e, "call refused: no media relay ports");
            self.media_release(key);
            self.refuse_for_ports(now, key);
            return;
        }
        self.media_complete(key);
        let target = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.waiting_target.take());
        if let Some(target) = target {
            self.route_to(now, key, target);
        }
    }

    /// Call `key`'s relay sessions.
    fn media_of(&mut self, key: CallKey) -> Option<&mut CallMedia> {
        self.calls
            .table
            .get_mut(&key)
            .and_then(|c| c.media.as_mut())
    }

    /// `503` + `Retry-After` to the caller of call `key`, whose ports could not be had.
    fn refuse_for_ports(&mut self, now: Now, key: CallKey) {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        if let Some(mut rsp) = self.a_response(key, status, "No Media Ports") {
            rsp.headers_mut()
                .push(HeaderName::RetryAfter, PORTS_RETRY_AFTER);
            self.send_to_a(now, key, rsp);
        }
        self.end_call(now, key, status.as_u16(), EndedBy::Mss);
        self.finish_if_done(now, key);
    }

    /// Gives call `key`'s sessions back to the relay (once; every end of a call).
    pub(crate) fn media_release(&mut self, key: CallKey) {
        let Some(media) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.media.as_mut())
        else {
            return;
        };
        let sessions = std::mem::take(&mut media.sessions);
        media.hold.clear();
        for a in sessions {
            self.calls.by_session.remove(&a.session);
            self.out
                .push_back(Output::Media(Command::Release { session: a.session }));
        }
    }

    /// Call `key` was answered: the relay's timers start.
    pub(crate) fn media_answered(&mut self, key: CallKey) {
        let Some(media) = self.media_of(key) else {
            return;
        };
        media.offer_sdp = None;
        let sessions: Vec<SessionId> = media.sessions.iter().map(|s| s.session).collect();
        for session in sessions {
            self.out
                .push_back(Output::Media(Command::Answered { session }));
        }
    }

    /// The address written into the SDP mss sends over `flow`: `public_address`, else a
    /// specific `rtp_address`, else our address towards the peer.
    fn media_address(&self, flow: &Flow) -> Option<IpAddr> {
        let m = self.calls.settings.media?;
        if let Some(ip) = m.public_address {
            return Some(ip);
        }
        if !m.rtp_address.is_unspecified() {
            return Some(m.rtp_address);
        }
        self.network
            .sent_by(flow.transport, flow.remote)
            .or(self.arrival)
            .map(|a| a.ip().to_canonical())
            .filter(|ip| !ip.is_unspecified())
    }

    /// A body (with its `headers`) from `from` of call `key`, passed on to `to`: the
    /// relay learns where `from` receives and whether it holds, and `to` gets the SDP
    /// pointed at mss. Anything that is not SDP, and every body without relay, goes as
    /// it is.
    pub(crate) fn relay_body(
        &mut self,
        key: CallKey,
        from: Side,
        to: Side,
        headers: &mss_sip::Headers,
        body: &Bytes,
    ) -> Bytes {
        if !self.relays(key, headers, body) {
            return body.clone();
        }
        let flows = self
            .calls
            .table
            .get(&key)
            .map(|c| (c.flow_of(from), c.flow_of(to)));
        let Some((from_flow, Some(to_flow))) = flows else {
            self.note_leg_sdp(key, from, body);
            return body.clone();
        };
        // Parsed once for both: what `from` says, and the description `to` gets.
        let sdp = LegSdp::parse(body);
        if let (Ok(sdp), Some(from_flow)) = (&sdp, from_flow) {
            self.note_streams_over(key, from, from_flow, sdp.streams());
        }
        self.relay_parsed(key, leg_of(to), &to_flow, body, sdp)
    }

    /// As [`Self::relay_body`] for parties that are not (yet) the call's legs on those
    /// sides (a transfer joining a party in `from`'s place, `transfer_join.rs`; an INVITE
    /// with Replaces, `replaces.rs`): `from`'s party is reached over `from_flow`, `to`'s
    /// over `to_flow`.
    pub(crate) fn relay_body_over(
        &mut self,
        key: CallKey,
        from: (Side, Flow),
        to: (Side, Flow),
        headers: &mss_sip::Headers,
        body: &Bytes,
    ) -> Bytes {
        if !self.relays(key, headers, body) {
            return body.clone();
        }
        let sdp = LegSdp::parse(body);
        if let Ok(sdp) = &sdp {
            self.note_streams_over(key, from.0, from.1, sdp.streams());
        }
        self.relay_parsed(key, leg_of(to.0), &to.1, body, sdp)
    }

    /// `body` (with its `headers`) as [`Self::relay_body`] passes it on to `to` of call
    /// `key`, without telling the relay anything: what `to` was sent.
    pub(crate) fn relayed_body(
        &self,
        key: CallKey,
        to: Side,
        headers: &mss_sip::Headers,
        body: &Bytes,
    ) -> Bytes {
        if !self.relays(key, headers, body) {
            return body.clone();
        }
        let flow = self.calls.table.get(&key).and_then(|c| c.flow_of(to));
        match flow {
            Some(flow) => self.sdp_for(key, leg_of(to), &flow, body),
            None => body.clone(),
        }
    }

    /// The caller's offer of call `key` as B leg INVITEs over `flow` carry it.
    pub(crate) fn offer_for_b(&self, key: CallKey, flow: &Flow) -> Option<(Bytes, Bytes)> {
        let call = self.calls.table.get(&key)?;
        let (content_type, body) = call.offer.clone()?;
        if !self.has_media_sessions(key) {
            return Some((content_type, body));
        }
        // The offer as it was read when the call began (not parsed again per B leg).
        let parsed = call
            .media
            .as_ref()
            .and_then(|m| m.offer_sdp.as_deref())
            .cloned();
        let body = match parsed {
            Some(sdp) => self.relay_parsed(key, Leg::B, flow, &body, Ok(sdp)),
            None => self.sdp_for(key, Leg::B, flow, &body),
        };
        Some((content_type, body))
    }

    /// Whether `body` (with its `headers`) of call `key` is rewritten for the relay: an
    /// SDP body of a call with relay sessions.
    fn relays(&self, key: CallKey, headers: &mss_sip::Headers, body: &Bytes) -> bool {
        !body.is_empty() && is_sdp(headers) && self.has_media_sessions(key)
    }

    /// Whether call `key` has relay sessions.
    fn has_media_sessions(&self, key: CallKey) -> bool {
        self.calls
            .table
            .get(&key)
            .and_then(|c| c.media.as_ref())
            .is_some_and(|m| !m.sessions.is_empty())
    }

    /// `body` rewritten for `leg` of call `key`, reached over `flow`; as it is when it
    /// cannot be (logged).
    fn sdp_for(&self, key: CallKey, leg: Leg, flow: &Flow, body: &Bytes) -> Bytes {
        self.relay_parsed(key, leg, flow, body, LegSdp::parse(body))
    }

    /// As [`Self::sdp_for`] with `body` parsed already (`sdp`).
    fn relay_parsed(
        &self,
        key: CallKey,
        leg: Leg,
        flow: &Flow,
        body: &Bytes,
        sdp: Result<LegSdp, mss_sdp::SdpError>,
    ) -> Bytes {
        let Some(ports) = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.media.as_ref())
            .map(|m| m.ports(leg))
        else {
            return body.clone();
        };
        let Some(address) = self.media_address(flow) else {
            tracing::warn!(peer = %flow, "no local address towards the peer: SDP passed as it is");
            return body.clone();
        };
        match sdp.and_then(|sdp| sdp.relay(address, &ports)) {
            Ok(rewritten) => rewritten,
            Err(e) => {
                tracing::info!(error = %e, "SDP that cannot be rewritten passed as it is");
                body.clone()
            }
        }
    }

    /// What `side`'s SDP `body` says becomes its `Remote` (latching starts again) and its
    /// hold state, in every session.
    fn note_leg_sdp(&mut self, key: CallKey, side: Side, body: &Bytes) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        let Some(flow) = call.flow_of(side) else {
            return;
        };
        self.note_sdp_over(key, side, flow, body);
    }

    /// As [`Self::note_leg_sdp`] for a party on `side` reached over `flow`.
    pub(crate) fn note_sdp_over(&mut self, key: CallKey, side: Side, flow: Flow, body: &Bytes) {
        let Ok(streams) = leg_streams(body) else {
            return;
        };
        self.note_streams_over(key, side, flow, &streams);
    }

    /// As [`Self::note_sdp_over`] with what the SDP says of each stream read already.
    fn note_streams_over(
        &mut self,
        key: CallKey,
        side: Side,
        flow: Flow,
        streams: &[StreamRemote],
    ) {
        let leg = leg_of(side);
        let signalling = flow.remote.ip().to_canonical();
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        // Another party than the call's on that side (a transfer's target, a replacing
        // caller): the relay keeps the stream toward the other phone continuous and does
        // not latch to the leaving party again (`Relay::new_source`).
        let new_party = call.flow_of(side) != Some(flow);
        let Some(media) = call.media.as_mut() else {
            return;
        };
        if let Some(first) = streams.first() {
            media.sdp_rtp[index(leg)] = first.rtp;
        }
        let mut commands = Vec::new();
        for (i, a) in media.sessions.iter().enumerate() {
            let Some(s) = streams.get(i).copied() else {
                continue;
            };
            commands.push(Command::SetRemote {
                session: a.session,
                leg,
                remote: remote_of(signalling, s),
            });
            if new_party {
                commands.push(Command::SourceChanged {
                    session: a.session,
                    leg,
                });
            }
            if let Some(hold) = media.hold.get_mut(i) {
                let slot = &mut hold[index(leg)];
                if *slot != s.hold {
                    *slot = s.hold;
                    commands.push(Command::SetHold {
                        session: a.session,
                        leg,
                        on_hold: s.hold,
                    });
                }
            }
        }
        self.out.extend(commands.into_iter().map(Output::Media));
    }

    /// A latch, a silent leg or a timeout of a session.
    fn on_relay_event(&mut self, now: Now, event: Event) {
        match event {
            Event::Latched {
                session,
                leg,
                rtcp,
                source,
            } => tracing::debug!(%session, ?leg, rtcp, %source, "media latched"),
            Event::NoRtpFrom { session, leg } => self.on_no_rtp_from(session, leg),
            Event::TimedOut { session, cause } => {
                let Some(key) = self.calls.by_session.get(&session).copied() else {
                    return;
                };
                if let Some(call) = self.calls.table.get(&key) {
                    tracing::info!(
                        call = %call.record.id,
                        cause = cause.as_str(),
                        "no media: ending the call"
                    );
                }
                self.hang_up(now, key, None, EndedBy::Mss);
            }
        }
    }

    /// `leg` of `session` sent no RTP after the answer: flagged, logged once, counted.
    fn on_no_rtp_from(&mut self, session: SessionId, leg: Leg) {
        let Some(key) = self.calls.by_session.get(&session).copied() else {
            return;
        };
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let signalling = match leg {
            Leg::A => Some(call.a.flow.remote),
            Leg::B => call
                .winner
                .and_then(|w| call.b.get(w))
                .map(|b| b.flow.remote),
        };
        let id = call.record.id.clone();
        let Some(media) = call.media.as_mut() else {
            return;
        };
        if std::mem::replace(&mut media.no_rtp_from[index(leg)], true) {
            return;
        }
        let sdp = media.sdp_rtp[index(leg)];
        let (name, metric) = match leg {
            Leg::A => ("caller", mss_admin::CallLeg::Caller),
            Leg::B => ("callee", mss_admin::CallLeg::Callee),
        };
        tracing::warn!(
            call = %id,
            leg = name,
            signalling = ?signalling,
            sdp = ?sdp,
            "no RTP from the {name} since the answer: one-way audio (its NAT or firewall)"
        );
        self.metrics.call_one_way(metric);
    }

    /// Asks for the counters of every session when due; the next time they are.
    pub(crate) fn media_stats_due(&mut self, now: Instant) {
        if self.calls.by_session.is_empty() {
            self.calls.stats_at = None;
            return;
        }
        match self.calls.stats_at {
            Some(at) if at > now => return,
            _ => {}
        }
        self.calls.stats_at = Some(now + STATS_INTERVAL);
        let sessions: Vec<SessionId> = self.calls.by_session.keys().copied().collect();
        for session in sessions {
            self.out
                .push_back(Output::Media(Command::Stats { session }));
        }
    }

    /// When the counters are asked for next (while some call has sessions).
    pub(crate) fn media_timeout(&self) -> Option<Instant> {
        if self.calls.by_session.is_empty() {
            return None;
        }
        self.calls.stats_at
    }
}

/// A leg's `Remote`: its signalling source and what its SDP says of one stream.
fn remote_of(signalling: IpAddr, s: StreamRemote) -> Remote {
    Remote {
        signalling: Some(signalling),
        rtp: s.rtp,
        rtcp: s.rtcp,
        srtp: s.srtp,
    }
}
