//! The timers of the table: one heap of `(deadline, dialog)` with lazy deletion, fired by
//! [`Dialogs::handle_timeout`].

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::Instant;

use mss_txn::Timers;

use super::{find, find_id_mut, Dialogs, Entry, TimerHeap};
use crate::invite_usage::ReinviteRetry;
use crate::output::DialogOutput;
use crate::reliable::ReliableStep;
use crate::retransmission::RetransmissionStep;
use crate::state::DialogState;

impl Dialogs {
    /// The instant [`Dialogs::handle_timeout`] is next due: a `2xx` retransmission, the end
    /// of the wait for an ACK, or a glare retry. `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs every timer due at `now`: `2xx` retransmissions ([`DialogOutput::Response`]), the
    /// end of the wait for an ACK ([`DialogOutput::AckTimeout`]), glare retries
    /// ([`DialogOutput::RetryReinvite`]), reliable provisional responses again
    /// ([`DialogOutput::Response`]) or given up ([`DialogOutput::PrackTimeout`]). A call before anything is due does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timers = self.config.timers;
        self.clock = Some(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.timers.pop() else {
                break;
            };
            let Some(entry) = find_id_mut(&mut self.by_call_id, &id) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            entry.fire(now, &timers, &mut self.outputs);
            entry.reschedule(&mut self.timers);
        }
        self.prune();
    }

    /// Drops stale entries from the top of the heap (their dialog is gone or its deadline
    /// moved), so that [`Dialogs::poll_timeout`] names a live deadline.
    pub(crate) fn prune(&mut self) {
        while let Some(Reverse((at, id))) = self.timers.peek() {
            let live = find(
                &self.by_call_id,
                id.call_id(),
                id.local_tag(),
                id.remote_tag(),
            )
            .is_some_and(|e| e.scheduled == Some(*at));
            if live {
                break;
            }
            self.timers.pop();
        }
    }
}

impl Entry {
    /// Makes sure the heap holds an entry for the next deadline of this dialog.
    pub(crate) fn reschedule(&mut self, heap: &mut TimerHeap) {
        let deadline = self.usage.deadline();
        if deadline != self.scheduled {
            self.scheduled = deadline;
            if let Some(at) = deadline {
                heap.push(Reverse((at, self.dialog.id.clone())));
            }
        }
    }

    /// Runs what is due at `now`.
    fn fire(&mut self, now: Instant, timers: &Timers, outputs: &mut VecDeque<DialogOutput>) {
        if let Some(retransmission) = self.usage.unacked_2xx.as_mut() {
            match retransmission.on_timeout(now, timers) {
                RetransmissionStep::Resend(response) => {
                    outputs.push_back(DialogOutput::Response {
                        id: self.dialog.id.clone(),
                        response,
                    });
                }
                RetransmissionStep::GiveUp => {
                    // §13.3.1.4: the session should end; a re-INVITE retry has no point.
                    self.usage.unacked_2xx = None;
                    self.usage.retry = None;
                    outputs.push_back(DialogOutput::AckTimeout {
                        id: self.dialog.id.clone(),
                    });
                }
                RetransmissionStep::NotYet => {}
            }
        }
        if let Some(reliable) = self.usage.reliable.as_mut() {
            match reliable.on_timeout(now) {
                ReliableStep::Resend(response) => outputs.push_back(DialogOutput::Response {
                    id: self.dialog.id.clone(),
                    response,
                }),
                ReliableStep::GiveUp => outputs.push_back(DialogOutput::PrackTimeout {
                    id: self.dialog.id.clone(),
                }),
                ReliableStep::NotYet => {}
            }
        }
        if let Some(ReinviteRetry::At(at)) = self.usage.retry {
            if now >= at {
                if self.dialog.state == DialogState::Terminated {
                    self.usage.retry = None;
                } else {
                    self.usage.retry = Some(ReinviteRetry::WhenIdle);
                    self.release_retry(outputs);
                }
            }
        }
    }
}
