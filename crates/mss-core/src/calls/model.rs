//! One call of the B2BUA: its A leg (mss as UAS of the caller's INVITE), its B legs (mss as
//! UAC of one INVITE per device or line tried) and what links them (DESIGN §8).

use std::time::Instant;

use bytes::Bytes;
use mss_dialog::DialogId;
use mss_sip::{Flow, Request, Response};
use mss_store::CallRecord;
use mss_txn::{ClientTransactionId, ServerTransactionId};

/// The key of a call in the call table (never reused while the server runs).
pub(crate) type CallKey = u64;

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// The caller's leg.
    A,
    /// The B leg with this index in [`Call::b`].
    B(usize),
}

/// Where the call stands, as `GET /api/calls/active` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallState {
    /// B legs were sent; nobody rings yet.
    Trying,
    /// Someone rings (a `180`).
    Ringing,
    /// Early media (a `183` with SDP).
    Early,
    /// Answered (a `2xx` went to the caller).
    Answered,
    /// Over: the caller got its final answer or a BYE ended the call; B legs that still
    /// have an INVITE in progress are being cancelled.
    Ending,
}

impl CallState {
    /// The name shown by the admin API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallState::Trying => "trying",
            CallState::Ringing => "ringing",
            CallState::Early => "early",
            CallState::Answered => "answered",
            CallState::Ending => "ending",
        }
    }
}

/// Whom a B leg calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BTarget {
    /// One registered contact of a local user.
    Device {
        /// The user.
        user: String,
    },
    /// A number out through line number `line` (its index in the configuration).
    Line {
        /// The line's index.
        line: usize,
        /// The number dialled, without the out-group prefix.
        number: String,
    },
}

/// What the B legs of the current stage of a call are for (`routing.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Nothing rings yet.
    Idle,
    /// Every device of a user.
    User(String),
    /// Every available member of a group at once.
    GroupAll(String),
    /// A group's members one after another: `members` in ringing order, `next` the index
    /// of the next one to ring.
    GroupHunt {
        /// The group.
        group: String,
        /// The members to ring, in order.
        members: Vec<String>,
        /// The next member to ring.
        next: usize,
    },
    /// Out through the lines.
    Out,
}

/// The caller's leg: mss is UAS of its INVITE.
#[derive(Debug)]
pub(crate) struct ALeg {
    /// The INVITE as received.
    pub(crate) invite: Request,
    /// Its server transaction.
    pub(crate) server: ServerTransactionId,
    /// Where it came from: every request and response to the caller goes there.
    pub(crate) flow: Flow,
    /// The dialog, once mss sent a provisional response with a To tag or the `2xx`.
    pub(crate) dialog: Option<DialogId>,
    /// The final response to the INVITE went out.
    pub(crate) answered: bool,
}

/// How far one B leg's INVITE got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BState {
    /// Sent; no provisional response yet.
    Calling,
    /// A provisional response came (CANCEL may now be sent, RFC 3261 §9.1).
    Proceeding,
    /// A `2xx` came: this leg answered.
    Answered,
    /// Final non-`2xx` response (or timeout, or transport error): the leg is over.
    Failed(u16),
}

/// One outgoing leg: mss is UAC of its INVITE.
#[derive(Debug)]
pub(crate) struct BLeg {
    /// Whom it calls.
    pub(crate) target: BTarget,
    /// The INVITE as sent last (after a challenge: the one with credentials).
    pub(crate) invite: Request,
    /// Its client transaction while the INVITE is in progress.
    pub(crate) client: Option<ClientTransactionId>,
    /// Where it goes: every request of this leg goes there.
    pub(crate) flow: Flow,
    /// How far it got.
    pub(crate) state: BState,
    /// A CANCEL is wanted but no provisional response came yet (RFC 3261 §9.1: wait).
    pub(crate) cancel_pending: bool,
    /// A CANCEL went out.
    pub(crate) cancelled: bool,
    /// The dialogs its responses created (forks behind a proxy have one each).
    pub(crate) dialogs: Vec<DialogId>,
    /// The dialog of the `2xx` that answered the call on this leg.
    pub(crate) confirmed: Option<DialogId>,
    /// Credentials were sent with the INVITE (one challenge is answered, no more).
    pub(crate) authenticated: bool,
    /// The peer answered a PRACK `405`/`501`: it gets no PRACK any more (RFC 3262 is
    /// broken there; the call goes on).
    pub(crate) prack_refused: bool,
    /// mss's PRACK of a reliable `18x` whose offer went on to the caller (a delayed
    /// offer): it waits for the caller's PRACK, which carries the answer (RFC 3262 §5).
    /// The dialog, the RSeq and the INVITE's CSeq number.
    pub(crate) prack_waits: Option<(DialogId, u32, u32)>,
}

impl BLeg {
    /// A leg whose INVITE `invite` to `target` is about to go out over `flow`.
    pub(crate) fn calling(target: BTarget, invite: Request, flow: Flow) -> BLeg {
        BLeg {
            target,
            invite,
            client: None,
            flow,
            state: BState::Calling,
            cancel_pending: false,
            cancelled: false,
            dialogs: Vec::new(),
            confirmed: None,
            authenticated: false,
            prack_refused: false,
            prack_waits: None,
        }
    }

    /// A party that joins a call already in confirmed dialog `dialog` (a transfer's
    /// target, a caller with Replaces): its INVITE `invite`, reached over `flow`.
    pub(crate) fn joined(target: BTarget, invite: Request, flow: Flow, dialog: DialogId) -> BLeg {
        BLeg {
            state: BState::Answered,
            dialogs: vec![dialog.clone()],
            confirmed: Some(dialog),
            ..BLeg::calling(target, invite, flow)
        }
    }

    /// True while the INVITE has no final response.
    pub(crate) fn pending(&self) -> bool {
        matches!(self.state, BState::Calling | BState::Proceeding)
    }
}

/// A `2xx` of one leg whose ACK waits for the ACK of the other leg's `2xx` (the ACK is
/// relayed end to end, so that an answer in an ACK reaches the other side, RFC 3264 §4).
#[derive(Debug, Clone)]
pub(crate) struct AckRelay {
    /// The dialog whose `2xx` mss answered on behalf of the other side (its ACK is
    /// waited for).
    pub(crate) from: DialogId,
    /// The dialog whose `2xx` is still unacknowledged.
    pub(crate) to: DialogId,
    /// The CSeq number of the INVITE that `2xx` answers.
    pub(crate) cseq: u32,
}

/// A re-INVITE (or other request) that met glare on the other leg and is retried there
/// after the RFC 3261 §14.1 wait, with what it carried.
#[derive(Debug, Clone)]
pub(crate) struct HeldRequest {
    /// The server transaction of the request that caused it (answered at the end).
    pub(crate) server: ServerTransactionId,
    /// The request as received on the first leg.
    pub(crate) request: Request,
    /// The leg it came from.
    pub(crate) from: Side,
    /// The dialog it came in (before the answer an early one).
    pub(crate) dialog: DialogId,
}

/// One call (DESIGN §8): an A leg, its B legs and the record being written.
#[derive(Debug)]
pub(crate) struct Call {
    /// The record written at answer and at the end.
    pub(crate) record: CallRecord,
    /// When the INVITE arrived.
    pub(crate) since: Instant,
    /// The local user who called, if any.
    pub(crate) caller_user: Option<String>,
    /// The users whose `max_calls` this call counts against (caller, users rung).
    pub(crate) slots: Vec<String>,
    /// The users the call reached, in order: a forward back to one of them is a loop.
    pub(crate) chain: Vec<String>,
    /// What the current B legs are for.
    pub(crate) stage: Stage,
    /// The index in `b` of the first leg of the current stage.
    pub(crate) stage_start: usize,
    /// The user who forwarded the call and why (`Diversion`, RFC 5806).
    pub(crate) diversion: Option<(String, &'static str)>,
    /// The user whose `call_level` a call out needs: the caller, or who forwarded it out.
    pub(crate) level_user: Option<String>,
    /// Where the call stands.
    pub(crate) state: CallState,
    /// The caller's leg.
    pub(crate) a: ALeg,
    /// The outgoing legs, in the order they were started.
    pub(crate) b: Vec<BLeg>,
    /// The B leg that answered.
    pub(crate) winner: Option<usize>,
    /// Lines still to try when the current one fails (`408`, `503`, no answer).
    pub(crate) lines_left: Vec<usize>,
    /// The number dialled out, for the next line.
    pub(crate) out_number: Option<String>,
    /// The best final response of a failed B leg so far (RFC 3261 §16.7 step 6).
    pub(crate) best: Option<Response>,
    /// The A leg's body of the INVITE (the offer, or empty for a delayed offer).
    pub(crate) offer: Option<(Bytes, Bytes)>,
    /// The B leg and its early dialog whose provisional response with a session
    /// description the caller got last: where the caller's requests before the answer
    /// (UPDATE, INFO; RFC 3311 §5.1) go.
    pub(crate) early: Option<(usize, DialogId)>,
    /// A `2xx` whose ACK waits for the other leg's ACK.
    pub(crate) ack_relay: Option<AckRelay>,
    /// When the ringing B legs are given up (no answer).
    pub(crate) ring_deadline: Option<Instant>,
    /// The codec of the last answer (`PCMU/8000`), for the admin view.
    pub(crate) codec: super::view::AnswerCodec,
    /// A device's redirection (`3xx`): the user whose device redirected and where to, as
    /// a forward target; followed when the stage has nothing else ringing.
    pub(crate) redirect: Option<(String, String)>,
    /// The call's media relay sessions (`[media] relay = always`), `None` without relay.
    pub(crate) media: Option<super::media::CallMedia>,
    /// Where the call goes once its relay ports are allocated.
    pub(crate) waiting_target: Option<super::admission::Target>,
    /// The client transactions of requests passed on from one leg to the other
    /// (`CallClient::Forward`) still without final response: what a hang-up gives up,
    /// found without a scan of every client transaction of the service (the INVITEs
    /// among those stay 32 s after their answer, RFC 6026 Timer M).
    pub(crate) forwards: Vec<mss_txn::ClientTransactionId>,
}

impl Call {
    /// A call that starts at `since` with its record `record` and its caller's leg `a`:
    /// no caller user, no B leg yet, trying.
    pub(crate) fn new(record: CallRecord, since: Instant, a: ALeg) -> Call {
        Call {
            record,
            since,
            caller_user: None,
            slots: Vec::new(),
            chain: Vec::new(),
            stage: Stage::Idle,
            stage_start: 0,
            diversion: None,
            level_user: None,
            state: CallState::Trying,
            a,
            b: Vec::new(),
            winner: None,
            lines_left: Vec::new(),
            out_number: None,
            best: None,
            offer: None,
            early: None,
            ack_relay: None,
            ring_deadline: None,
            codec: super::view::AnswerCodec::default(),
            redirect: None,
            media: None,
            waiting_target: None,
            forwards: Vec::new(),
        }
    }

    /// The B leg `i`.
    pub(crate) fn leg(&self, i: usize) -> Option<&BLeg> {
        self.b.get(i)
    }

    /// True while some B leg's INVITE has no final response.
    pub(crate) fn any_pending(&self) -> bool {
        self.b.iter().any(BLeg::pending)
    }

    /// The dialog of `side` in the answered call (the A dialog, or the winner's).
    pub(crate) fn dialog_of(&self, side: Side) -> Option<&DialogId> {
        match side {
            Side::A => self.a.dialog.as_ref(),
            Side::B(i) => self.b.get(i).and_then(|b| b.confirmed.as_ref()),
        }
    }

    /// Every dialog of the call: the caller's and each B leg's (early or confirmed).
    pub(crate) fn dialogs(&self) -> impl Iterator<Item = &DialogId> {
        self.a.dialog.iter().chain(
            self.b
                .iter()
                .flat_map(|b| b.dialogs.iter().chain(b.confirmed.iter())),
        )
    }

    /// The other side of an answered call.
    pub(crate) fn other(&self, side: Side) -> Option<Side> {
        match side {
            Side::A => self.winner.map(Side::B),
            Side::B(_) => Some(Side::A),
        }
    }

    /// Where a request within `side`'s dialog goes on to, with that leg's dialog: the
    /// other side once answered; before the answer the caller's go to the early dialog
    /// of [`Call::early`], a callee's early dialog's to the caller.
    pub(crate) fn in_dialog_peer(&self, side: Side) -> Option<(Side, DialogId)> {
        match (side, self.winner) {
            (Side::A, None) => self.early.as_ref().map(|(i, d)| (Side::B(*i), d.clone())),
            _ => {
                let other = self.other(side)?;
                Some((other, self.dialog_of(other)?.clone()))
            }
        }
    }

    /// The flow of `side`.
    pub(crate) fn flow_of(&self, side: Side) -> Option<Flow> {
        match side {
            Side::A => Some(self.a.flow),
            Side::B(i) => self.b.get(i).map(|b| b.flow),
        }
    }
}
