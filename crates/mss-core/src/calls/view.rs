//! The calls as the admin API shows them (`GET /api/calls/active`, DESIGN §8) and the
//! call counters of `/metrics`.

use mss_admin::{ActiveCallView, CallLegView};
use mss_sip::Request;

use super::media::CallMedia;
use super::model::Call;
use super::CallKey;
use crate::core::Core;
use mss_media::Leg;

/// The encoding of an RTP/AVP static payload type (RFC 3551 §6, the audio ones phones use).
fn static_payload(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        18 => "G729/8000",
        _ => return None,
    })
}

/// The codec an SDP answer chose: the first payload type of its first audio stream that is
/// not rejected, as `ENCODING/RATE` (`None` when the body is not usable SDP).
pub(crate) fn codec_of(body: &bytes::Bytes) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let sdp = mss_sdp::SessionDescription::parse(body.clone()).ok()?;
    let media = sdp
        .media()
        .iter()
        .find(|m| m.media_type() == "audio" && !m.is_rejected())?;
    let pt = media.payload_types().next()?;
    match media.rtpmap(pt) {
        Some(map) => Some(format!("{}/{}", map.encoding, map.clock_rate)),
        None => static_payload(pt).map(str::to_owned),
    }
}

/// The codec of a call's last answer that names one ([`codec_of`]), for the admin view.
///
/// The SDP of the latest answer is kept (copied: the datagram it came in is not held) and
/// parsed only when the view asks: parsing every answer cost ~10k instructions per call
/// for a view most calls never get. An earlier answer is parsed when a later one comes, so
/// that an answer naming no codec leaves the one before it, as it did when each answer
/// was parsed on arrival.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnswerCodec {
    /// The codec of the answers before `latest`.
    known: Option<String>,
    /// The body of the latest non-empty answer, not parsed yet.
    latest: Option<bytes::Bytes>,
}

impl AnswerCodec {
    /// An answer (`2xx` to an INVITE) with body `body` came.
    pub(crate) fn answered(&mut self, body: &bytes::Bytes) {
        if body.is_empty() {
            return;
        }
        if let Some(codec) = self.latest.take().as_ref().and_then(codec_of) {
            self.known = Some(codec);
        }
        self.latest = Some(bytes::Bytes::copy_from_slice(body));
    }

    /// The codec is `codec` (a call taking over another call's answer).
    pub(crate) fn set(&mut self, codec: String) {
        self.known = Some(codec);
        self.latest = None;
    }

    /// The codec of the last answer that named one.
    pub(crate) fn get(&self) -> Option<String> {
        self.latest
            .as_ref()
            .and_then(codec_of)
            .or_else(|| self.known.clone())
    }
}

/// The leg of `invite` sent to (or received from) `peer`, with the relay's counters of
/// `leg` when the call has relay sessions.
fn leg_view(
    invite: &Request,
    peer: std::net::SocketAddr,
    codec: Option<&String>,
    media: Option<(&CallMedia, Leg)>,
) -> CallLegView {
    let (rtp_in, rtp_out) = media.map_or((0, 0), |(m, leg)| m.rtp(leg));
    let no_rtp_from = media.is_some_and(|(m, leg)| match leg {
        Leg::A => m.no_rtp_from[0],
        Leg::B => m.no_rtp_from[1],
    });
    CallLegView {
        call_id: invite
            .headers()
            .call_id()
            .map(str::to_owned)
            .unwrap_or_default(),
        peer: peer.to_string(),
        codec: codec.cloned(),
        rtp_in,
        rtp_out,
        no_rtp_from,
    }
}

/// `GET /api/calls/active` for one call; `since` is when it started (unix seconds). The
/// relay's B side counts for the leg that answered (before the answer: for every leg
/// ringing, which share it).
fn view(call: &Call) -> ActiveCallView {
    let codec = call.codec.get();
    let codec = codec.as_ref();
    let media = call.media.as_ref();
    let mut legs = vec![leg_view(
        &call.a.invite,
        call.a.flow.remote,
        codec,
        media.map(|m| (m, Leg::A)),
    )];
    legs.extend(
        call.b
            .iter()
            .filter(|b| b.pending() || b.confirmed.is_some())
            .map(|b| {
                let c = codec.filter(|_| b.confirmed.is_some());
                leg_view(&b.invite, b.flow.remote, c, media.map(|m| (m, Leg::B)))
            }),
    );
    ActiveCallView {
        id: call.record.id.clone(),
        caller: call.record.caller.clone(),
        callee: call.record.callee.clone(),
        state: call.state.as_str().to_owned(),
        since: u64::try_from(call.record.started_at / 1000).unwrap_or(0),
        legs,
    }
}

impl Core {
    /// The calls in progress (`GET /api/calls/active`, `mss status`), oldest first.
    pub fn active_calls(&self) -> Vec<ActiveCallView> {
        let mut calls: Vec<&Call> = self.calls.table.values().map(|c| &**c).collect();
        calls.sort_by_key(|c| c.since);
        calls.into_iter().map(view).collect()
    }

    /// Sets `mss_calls_active`.
    pub(crate) fn publish_calls_active(&self) {
        let n = u64::try_from(self.calls.len()).unwrap_or(u64::MAX);
        self.metrics.set_calls_active(n);
    }

    /// Counts the end of call `key` in `mss_calls_total`.
    pub(crate) fn publish_call_end(&self, key: CallKey) {
        if let Some(call) = self.calls.table.get(&key) {
            if let Some(d) = call.record.disposition {
                self.metrics.call_ended(call.record.direction, d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codec_is_the_first_payload_of_the_answer() {
        let body = |m: &str| {
            bytes::Bytes::from(format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{m}"
            ))
        };
        assert_eq!(
            codec_of(&body("m=audio 4000 RTP/AVP 8 0\r\n")).as_deref(),
            Some("PCMA/8000")
        );
        assert_eq!(
            codec_of(&body(
                "m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
            ))
            .as_deref(),
            Some("opus/48000")
        );
        assert_eq!(codec_of(&body("m=audio 0 RTP/AVP 0\r\n")), None);
        assert_eq!(codec_of(&bytes::Bytes::new()), None);
    }

    /// Parsed when asked, the codec is the one parsing each answer on arrival gave: the
    /// last answer naming one, over every sequence of answers of four kinds.
    #[test]
    fn the_codec_parsed_when_asked_is_the_one_parsed_on_arrival() {
        let sdp = |m: &str| {
            bytes::Bytes::from(format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{m}"
            ))
        };
        let answers = [
            sdp("m=audio 4000 RTP/AVP 8 0\r\n"),
            sdp("m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
            sdp("m=audio 0 RTP/AVP 0\r\n"),
            bytes::Bytes::from_static(b"not sdp"),
            bytes::Bytes::new(),
        ];
        let n = answers.len();
        let mut sequences = 0;
        for len in 0..=4u32 {
            for mut code in 0..n.pow(len) {
                let (mut lazy, mut eager) = (AnswerCodec::default(), None);
                for _ in 0..len {
                    let body = &answers[code % n];
                    code /= n;
                    lazy.answered(body);
                    if let Some(c) = codec_of(body) {
                        eager = Some(c);
                    }
                    assert_eq!(lazy.get(), eager);
                }
                sequences += 1;
            }
        }
        assert_eq!(sequences, 1 + 5 + 25 + 125 + 625);
        let mut c = AnswerCodec::default();
        c.answered(&answers[0]);
        c.set("G722/8000".into());
        assert_eq!(c.get().as_deref(), Some("G722/8000"));
        c.answered(&answers[2]);
        assert_eq!(c.get().as_deref(), Some("G722/8000"));
    }
}
