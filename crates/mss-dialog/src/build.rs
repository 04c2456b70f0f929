//! The messages a dialog builds: requests within it (RFC 3261 §12.2.1.1), the ACK for a
//! `2xx` (§13.2.2.4) and responses that carry the dialog (§12.1.1).

use mss_sip::{HeaderName, Method, Request, Response, StatusCode};
use rand::RngCore;

use crate::dialog::{refreshes_target, Dialog};
use crate::error::DialogError;
use crate::random::new_branch;
use crate::state::DialogState;

/// Max-Forwards of every request mss starts (RFC 3261 §8.1.1.6).
pub const MAX_FORWARDS: u8 = 70;

impl Dialog {
    /// A request of the dialog with CSeq `cseq`: Request-URI and Route from the route set and
    /// the remote target (loose routing, or the strict-router rewrite, §12.2.1.1), Via with
    /// a fresh branch, Max-Forwards 70, From with the local URI and tag, To with the remote
    /// URI and tag, the Call-ID, and our Contact for target refresh requests.
    fn build(&self, method: Method, cseq: u32, rng: &mut dyn RngCore) -> Request {
        let destination = self.route_set.destination(&self.remote_target);
        let contact = refreshes_target(&method);
        let mut b = Request::builder(method, destination.request_uri)
            .via(self.local_end.via(&new_branch(rng)))
            .max_forwards(MAX_FORWARDS);
        for route in destination.routes {
            b = b.header(HeaderName::Route, route);
        }
        b = b
            .from(self.local_party.with_tag(self.id.local_tag()))
            .to(self.remote_party.with_tag(self.id.remote_tag()))
            .call_id(self.id.call_id().to_owned())
            .cseq(cseq);
        if contact {
            b = b.contact(self.local_end.contact_value());
        }
        b.build()
    }

    /// A new request of the dialog (RFC 3261 §12.2.1.1): the local CSeq goes up by one (it
    /// starts at 1 when mss has sent nothing yet). A BYE ends the dialog (§15.1.1: the
    /// session is over once it is sent); only a BYE may follow it. The checks that need the dialog's transactions are
    /// [`crate::Dialogs::request`]'s.
    pub(crate) fn request(
        &mut self,
        method: Method,
        rng: &mut dyn RngCore,
    ) -> Result<Request, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::NotANewRequest(method));
        }
        // A BYE may go again in a terminated dialog: the first one was challenged
        // (`401`/`407`) and is sent with credentials (RFC 3261 §22.2).
        if self.state == DialogState::Terminated && method != Method::Bye {
            return Err(DialogError::Terminated);
        }
        let cseq = match self.local_cseq {
            None => 1,
            Some(n) => n.checked_add(1).ok_or(DialogError::CSeqExhausted)?,
        };
        if method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        self.local_cseq = Some(cseq);
        Ok(self.build(method, cseq, rng))
    }

    /// The ACK for a `2xx` to our INVITE with CSeq number `invite_cseq` (RFC 3261
    /// §13.2.2.4): built like any request of the dialog, to the remote target the `2xx` set,
    /// but with the INVITE's CSeq number and method ACK, and no Contact. It does not change
    /// the local CSeq. Credentials the INVITE carried (`Authorization`,
    /// `Proxy-Authorization`) and the answer of a delayed offer are the caller's to add
    /// before handing it to [`crate::Dialogs::send_ack`].
    pub fn ack(&self, invite_cseq: u32, rng: &mut dyn RngCore) -> Request {
        self.build(Method::Ack, invite_cseq, rng)
    }

    /// A response of mss to `request`, a request that creates or belongs to this dialog
    /// (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and CSeq copied, our local tag added to To
    /// when it has none. A `101`-`299` response also carries, to a request that creates the
    /// dialog, every Record-Route value of the request in order (§12.1.1), and to INVITE and
    /// UPDATE, our Contact (§12.1.1, §13.3.1.4, RFC 3311 §5.2).
    pub fn response(&self, request: &Request, status: StatusCode, reason: &str) -> Response {
        let mut rsp = Response::for_request_with_to_tag(
            request,
            status,
            reason.to_owned(),
            self.id.local_tag().as_bytes(),
        );
        if (101..300).contains(&status.0) {
            let creates = request.headers().to_tag().is_ok_and(|tag| tag.is_none());
            if creates {
                rsp.headers_mut()
                    .copy_from(request.headers(), &HeaderName::RecordRoute);
            }
            if refreshes_target(request.method()) {
                rsp.headers_mut()
                    .push(HeaderName::Contact, self.local_end.contact_value());
            }
        }
        rsp
    }
}
