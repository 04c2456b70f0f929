//! [`Dialogs`]: every dialog of mss, keyed by [`DialogId`], bounded, with the timers and
//! outputs of their INVITE usages.
//!
//! The parts, one file each: `table/incoming.rs` (requests received), `table/answers.rs`
//! (responses received), `table/sending.rs` (requests, ACKs and responses mss sends),
//! `table/timers.rs` (the timer heap, `handle_timeout`, `poll_timeout`).

mod answers;
mod incoming;
mod prack;
mod sending;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use mss_sip::Request;
use rand::RngCore;

use crate::config::DialogConfig;
use crate::dialog::Dialog;
use crate::error::DialogError;
use crate::id::DialogId;
use crate::invite_usage::InviteUsage;
use crate::local::LocalEnd;
use crate::output::DialogOutput;
use crate::random::new_tag;
use crate::reliable::ReliableUas;

/// One dialog with what the table keeps beside it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) dialog: Dialog,
    pub(crate) usage: InviteUsage,
    /// The deadline the timer heap holds an entry for; a heap entry at another instant is
    /// stale.
    pub(crate) scheduled: Option<Instant>,
}

/// The timer heap: `(deadline, dialog)`, earliest first, stale entries dropped lazily.
pub(crate) type TimerHeap = BinaryHeap<Reverse<(Instant, DialogId)>>;

/// The dialogs of one Call-ID: one, or several forks of one INVITE told apart by their
/// remote tag. Keyed by Call-ID so that a lookup borrows the received Call-ID (no
/// allocation) and the early dialogs of one INVITE sit together.
type ByCallId = HashMap<String, Vec<Entry>, ahash::RandomState>;

fn find<'a>(map: &'a ByCallId, call_id: &str, local: &str, remote: &str) -> Option<&'a Entry> {
    map.get(call_id)?
        .iter()
        .find(|e| e.dialog.id.local_tag() == local && e.dialog.id.remote_tag() == remote)
}

fn find_mut<'a>(
    map: &'a mut ByCallId,
    call_id: &str,
    local: &str,
    remote: &str,
) -> Option<&'a mut Entry> {
    map.get_mut(call_id)?
        .iter_mut()
        .find(|e| e.dialog.id.local_tag() == local && e.dialog.id.remote_tag() == remote)
}

fn find_id_mut<'a>(map: &'a mut ByCallId, id: &DialogId) -> Option<&'a mut Entry> {
    find_mut(map, id.call_id(), id.local_tag(), id.remote_tag())
}

/// Every dialog of mss, sans-IO (RFC 3261 §12-§14 with RFC 6026): created as UAS
/// ([`Dialogs::create_uas`]) or as UAC ([`Dialogs::handle_invite_response`]), found again by
/// the requests and responses that belong to them, and the transaction user's duties the
/// transaction layer leaves to it: the `2xx` retransmissions until the ACK, the ACK for every
/// `2xx` retransmission, the wait after a `491`.
///
/// Time comes in with every call that needs it (`now`), randomness from the caller's
/// generator (tags, branches, waits); effects come out of [`Dialogs::poll_output`] and the
/// next deadline from [`Dialogs::poll_timeout`]. After each input, drain `poll_output`.
///
/// A dialog stays in the table until the caller removes it ([`Dialogs::remove`]), also once
/// it is terminated: the outcomes say when (a BYE answered, [`crate::ResponseEffect::Terminated`],
/// [`crate::ResponseOutcome::EarlyDialogsEnded`]). The table holds at most
/// [`DialogConfig::max_dialogs`].
#[derive(Debug)]
pub struct Dialogs {
    config: DialogConfig,
    by_call_id: ByCallId,
    len: usize,
    timers: TimerHeap,
    outputs: VecDeque<DialogOutput>,
    /// The last instant an input carried (for a request given without one).
    clock: Option<Instant>,
}

impl Dialogs {
    /// An empty table. `rng` seeds the table's hasher, so that a peer cannot choose Call-IDs
    /// that collide.
    pub fn new(config: DialogConfig, rng: &mut dyn RngCore) -> Dialogs {
        let hasher = ahash::RandomState::with_seeds(
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        );
        let config = DialogConfig {
            timers: config.timers.sanitized(),
            ..config
        };
        Dialogs {
            config,
            by_call_id: HashMap::with_hasher(hasher),
            len: 0,
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            clock: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DialogConfig {
        &self.config
    }

    /// How many dialogs the table holds (terminated ones included, until removed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no dialog.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dialog `id`.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.find(id.call_id(), id.local_tag(), id.remote_tag())
    }

    /// The dialog of `call_id`, `local_tag` and `remote_tag`; for a request received within
    /// a dialog these are its Call-ID, To tag and From tag (RFC 3261 §12.2.2).
    pub fn find(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> Option<&Dialog> {
        find(&self.by_call_id, call_id, local_tag, remote_tag).map(|e| &e.dialog)
    }

    /// The dialog a request received within a dialog belongs to: Call-ID, To tag (ours) and
    /// From tag (the peer's). `None` when it has no To tag, a header does not parse or no
    /// dialog matches.
    pub fn find_for_request(&self, request: &Request) -> Option<&Dialog> {
        let h = request.headers();
        let to_tag = h.to_tag().ok()??;
        let from_tag = h.from_tag().ok()?;
        self.find(h.call_id().ok()?, to_tag, from_tag.unwrap_or(""))
    }

    /// The dialogs of one INVITE: every dialog with this Call-ID and local tag (the forks an
    /// INVITE mss sent created, told apart by their remote tags).
    pub fn dialogs_of<'a>(
        &'a self,
        call_id: &str,
        local_tag: &'a str,
    ) -> impl Iterator<Item = &'a Dialog> + 'a {
        self.by_call_id
            .get(call_id)
            .into_iter()
            .flatten()
            .filter(move |e| e.dialog.id.local_tag() == local_tag)
            .map(|e| &e.dialog)
    }

    /// Every dialog, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> + '_ {
        self.by_call_id.values().flatten().map(|e| &e.dialog)
    }

    /// Creates the dialog mss is UAS of, for `invite` (RFC 3261 §12.1.1; see
    /// [`Dialog::uas`]), with a new local tag (64 random bits from `rng`, hex). Call it when
    /// mss is about to send the first provisional response with a To tag or the `2xx`; build
    /// those with [`Dialogs::response`] and send them with [`Dialogs::send_response`]. The
    /// dialog starts early, its INVITE in progress until the final response. When `invite`
    /// lists 100rel (`Require` or `Supported`), its provisional responses go reliably
    /// (RFC 3262 §3), numbered from a random RSeq drawn from `rng`.
    ///
    /// # Errors
    /// [`DialogError::TableFull`], and those of [`Dialog::uas`].
    pub fn create_uas(
        &mut self,
        invite: &Request,
        local_end: LocalEnd,
        rng: &mut dyn RngCore,
    ) -> Result<DialogId, DialogError> {
        self.check_room()?;
        let local_tag = new_tag(rng);
        let dialog = Dialog::uas(invite, &local_tag, local_end)?;
        let usage = InviteUsage {
            theirs: dialog.remote_cseq,
            reliable: ReliableUas::new(invite, rng).map(Box::new),
            ..InviteUsage::default()
        };
        self.insert(dialog, usage)
    }

    /// Removes dialog `id` with its timers; returns it. Retransmissions of its `2xx` stop,
    /// and anything that arrives for it later is answered as for an unknown dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        let bucket = self.by_call_id.get_mut(id.call_id())?;
        let at = bucket.iter().position(|e| {
            e.dialog.id.local_tag() == id.local_tag() && e.dialog.id.remote_tag() == id.remote_tag()
        })?;
        let entry = bucket.swap_remove(at);
        if bucket.is_empty() {
            self.by_call_id.remove(id.call_id());
        }
        self.len -= 1;
        self.prune();
        Some(entry.dialog)
    }

    /// Follows a change of our address towards the peer of dialog `id`
    /// ([`Dialog::set_local_end`]).
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`].
    pub fn set_local_end(&mut self, id: &DialogId, local_end: LocalEnd) -> Result<(), DialogError> {
        let entry = find_id_mut(&mut self.by_call_id, id).ok_or(DialogError::UnknownDialog)?;
        entry.dialog.set_local_end(local_end);
        Ok(())
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<DialogOutput> {
        self.outputs.pop_front()
    }

    fn check_room(&self) -> Result<(), DialogError> {
        if self.len >= self.config.max_dialogs {
            Err(DialogError::TableFull {
                max: self.config.max_dialogs,
            })
        } else {
            Ok(())
        }
    }

    fn insert(&mut self, dialog: Dialog, usage: InviteUsage) -> Result<DialogId, DialogError> {
        self.check_room()?;
        let id = dialog.id.clone();
        if self.get(&id).is_some() {
            return Err(DialogError::DialogExists);
        }
        self.by_call_id
            .entry(id.call_id().to_owned())
            // Nearly every Call-ID has one dialog: a `Vec`'s first push would make room
            // for four entries (~1 KB each dialog held for nothing).
            .or_insert_with(|| Vec::with_capacity(1))
            .push(Entry {
                dialog,
                usage,
                scheduled: None,
            });
        self.len += 1;
        Ok(id)
    }
}

impl Entry {
    /// Queues [`DialogOutput::RetryReinvite`] when a retry waited only for the INVITE in
    /// progress to end and it has.
    pub(crate) fn release_retry(&mut self, outputs: &mut VecDeque<DialogOutput>) {
        if self.usage.take_retry_if_idle() {
            outputs.push_back(DialogOutput::RetryReinvite {
                id: self.dialog.id.clone(),
            });
        }
    }
}
