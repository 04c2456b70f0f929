//! One dialog's state (RFC 3261 §12): how it is created as UAS and as UAC, and what a
//! request received in it changes (§12.2.2).

use mss_sip::{Contacts, HeaderName, Headers, Method, Request, Response};

use crate::error::DialogError;
use crate::id::DialogId;
use crate::local::LocalEnd;
use crate::party::Party;
use crate::rejection::Rejection;
use crate::role::DialogRole;
use crate::route_set::RouteSet;
use crate::state::DialogState;

/// The state of one dialog (RFC 3261 §12): its id, its state, the route set, the remote
/// target, the two CSeq numbers, the two parties and our own address in it.
///
/// A dialog is created by [`crate::Dialogs`] (which also keeps its INVITE transactions and
/// timers); read it with [`crate::Dialogs::get`]. Its pure builders, [`Dialog::ack`] and
/// [`Dialog::response`], may be used directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub(crate) id: DialogId,
    pub(crate) state: DialogState,
    pub(crate) role: DialogRole,
    pub(crate) local_party: Party,
    pub(crate) remote_party: Party,
    pub(crate) remote_target: String,
    pub(crate) route_set: RouteSet,
    pub(crate) local_cseq: Option<u32>,
    pub(crate) remote_cseq: Option<u32>,
    pub(crate) local_end: LocalEnd,
}

/// The URI of the first Contact, `None` without Contact (or with `*`, which no dialog
/// request may carry).
pub(crate) fn first_contact(headers: &Headers) -> Result<Option<String>, mss_sip::ParseError> {
    Ok(match headers.contacts()? {
        Contacts::List(list) => list.first().map(|c| c.addr.uri_str.to_owned()),
        Contacts::Star => None,
    })
}

/// Requests whose Contact replaces the remote target (target refresh requests, RFC 3261
/// §12.2; UPDATE: RFC 3311 §5.1) and whose `2xx` carries our Contact.
pub(crate) fn refreshes_target(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update)
}

impl Dialog {
    /// The dialog mss creates as UAS of `invite` when it answers with a provisional response
    /// with a To tag or a `2xx` (RFC 3261 §12.1.1): route set = the Record-Route values of
    /// the INVITE in order, remote target = its Contact, remote CSeq = its CSeq, remote URI =
    /// its From, local URI = its To; the local tag is `local_tag`, the local CSeq empty.
    /// The dialog starts early.
    ///
    /// # Errors
    /// [`DialogError::NotDialogCreating`] for a method other than INVITE,
    /// [`DialogError::AlreadyInDialog`] when the To header has a tag,
    /// [`DialogError::Missing`] without a Contact, [`DialogError::Malformed`] when From,
    /// To, Call-ID, CSeq, Contact or Record-Route does not parse.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_end: LocalEnd,
    ) -> Result<Dialog, DialogError> {
        if *invite.method() != Method::Invite {
            return Err(DialogError::NotDialogCreating(invite.method().clone()));
        }
        let h = invite.headers();
        let to = h.to()?;
        if to.tag().is_some() {
            return Err(DialogError::AlreadyInDialog);
        }
        let from = h.from()?;
        let remote_target = first_contact(h)?.ok_or(DialogError::Missing(HeaderName::Contact))?;
        Ok(Dialog {
            id: DialogId::new(h.call_id()?, local_tag, from.tag().unwrap_or("")),
            state: DialogState::Early,
            role: DialogRole::Uas,
            local_party: Party::from_name_addr(&to),
            remote_party: Party::from_name_addr(&from),
            remote_target,
            route_set: RouteSet::for_uas(h)?,
            local_cseq: None,
            remote_cseq: Some(h.cseq()?.seq),
            local_end,
        })
    }

    /// The dialog mss creates as UAC of `invite` from `response`, a provisional response
    /// with a To tag (early) or a `2xx` (confirmed) (RFC 3261 §12.1.2): route set = the
    /// Record-Route values of the response in reverse order, remote target = its Contact
    /// (the INVITE's Request-URI when it has none: a provisional response need not carry
    /// one, and a `2xx` without one must still be acknowledged and ended), local CSeq = the
    /// INVITE's, remote CSeq empty, remote URI = the INVITE's To, local URI = its From.
    /// Our Via and Contact in the dialog are those of the INVITE ([`LocalEnd::from_request`]).
    ///
    /// # Errors
    /// [`DialogError::NotDialogCreating`] for a method other than INVITE,
    /// [`DialogError::StatusCreatesNoDialog`] for `100` and final non-`2xx` responses,
    /// [`DialogError::NoToTag`], [`DialogError::Missing`] without a From tag or without the
    /// INVITE's Contact, [`DialogError::Malformed`] when a header needed does not parse,
    /// [`DialogError::UnknownTransport`] for an INVITE Via transport mss does not speak.
    pub fn uac(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        if *invite.method() != Method::Invite {
            return Err(DialogError::NotDialogCreating(invite.method().clone()));
        }
        let status = response.status().0;
        if !(101..300).contains(&status) {
            return Err(DialogError::StatusCreatesNoDialog(status));
        }
        let rh = response.headers();
        // `to_tag` is `to()?.tag()`, the value parsed once per message (the table just read it).
        let remote_tag = rh.to_tag()?.ok_or(DialogError::NoToTag)?.to_owned();
        let ih = invite.headers();
        let from = ih.from()?;
        let local_tag = from.tag().ok_or(DialogError::Missing(HeaderName::From))?;
        let remote_target = match first_contact(rh)? {
            Some(uri) => uri,
            None => invite.uri_str()?.to_owned(),
        };
        Ok(Dialog {
            id: DialogId::new(ih.call_id()?, local_tag, remote_tag),
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            role: DialogRole::Uac,
            local_party: Party::from_name_addr(&from),
            remote_party: Party::from_name_addr(&ih.to()?),
            remote_target,
            route_set: RouteSet::for_uac(rh)?,
            local_cseq: Some(ih.cseq()?.seq),
            remote_cseq: None,
            local_end: LocalEnd::from_request(invite)?,
        })
    }

    /// The dialog's id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, confirmed or terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Whether mss was UAC or UAS of the INVITE that created the dialog.
    pub fn role(&self) -> DialogRole {
        self.role
    }

    /// The local URI and how From names it in our requests (§12.1).
    pub fn local_party(&self) -> &Party {
        &self.local_party
    }

    /// The remote URI and how To names it in our requests (§12.1).
    pub fn remote_party(&self) -> &Party {
        &self.remote_party
    }

    /// The remote target: the peer's Contact URI, where our requests go (through the route
    /// set) (§12.1, §12.2).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, first hop first.
    pub fn route_set(&self) -> &RouteSet {
        &self.route_set
    }

    /// The CSeq number of the last request mss sent in the dialog (`None`: none yet).
    pub fn local_cseq(&self) -> Option<u32> {
        self.local_cseq
    }

    /// The CSeq number of the last request the peer sent in the dialog (`None`: none yet).
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// Our Via and Contact in the dialog.
    pub fn local_end(&self) -> &LocalEnd {
        &self.local_end
    }

    /// Follows a change of our address towards the peer (a new flow): the Via and Contact of
    /// the requests sent from now on. The peer learns a new Contact only from the next target
    /// refresh (re-INVITE or UPDATE).
    pub fn set_local_end(&mut self, local_end: LocalEnd) {
        self.local_end = local_end;
    }

    /// The CSeq check of a request received in the dialog (RFC 3261 §12.2.2): a number
    /// below the remote CSeq is out of order (`500`); otherwise it becomes the remote CSeq.
    ///
    /// # Errors
    /// [`Rejection::OutOfOrder`], the dialog unchanged.
    pub(crate) fn receive_cseq(&mut self, seq: u32) -> Result<(), Rejection> {
        match self.remote_cseq {
            Some(remote) if seq < remote => Err(Rejection::OutOfOrder),
            _ => {
                self.remote_cseq = Some(seq);
                Ok(())
            }
        }
    }

    /// Replaces the remote target with `contact` when there is one (a target refresh,
    /// §12.2.1.2, §12.2.2). Returns true when the target changed.
    pub(crate) fn refresh_remote_target(&mut self, contact: Option<String>) -> bool {
        match contact {
            Some(uri) if uri != self.remote_target => {
                self.remote_target = uri;
                true
            }
            _ => false,
        }
    }
}
