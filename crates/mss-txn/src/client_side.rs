//! The client half of the table: requests from the TU and responses from the network
//! (RFC 3261 §17.1; RFC 6026 §7.2).

use std::time::Instant;

use bytes::Bytes;
use mss_sip::{Flow, Message, Method, Request, Response};

use crate::base::read_outgoing;
use crate::build::ack_for;
use crate::client_invite::ClientInvite;
use crate::client_non_invite::ClientNonInvite;
use crate::completed::KeyEntry;
use crate::error::TxnError;
use crate::machine::{Action, ResponseClass, State};
use crate::output::Event;
use crate::slab::ClientTransactionId;
use crate::transactions::{client_id, ClientMachine, ClientTxn, Transactions, Txn};
use crate::TransactionKey;

impl Transactions {
    /// Starts a client transaction for `req` and sends it to `to` (§17.1.1.2, §17.1.2.2).
    ///
    /// The request must carry its Via with a branch (the TU chooses it, `z9hG4bK`-prefixed,
    /// §8.1.1.7), From, To, Call-ID and CSeq. Responses come back as [`Event::Response`];
    /// a timeout as [`Event::Timeout`] with a 408.
    ///
    /// # Errors
    /// - [`TxnError::AckTransaction`] for an ACK (send it with
    ///   [`Transactions::send_stateless`]).
    /// - [`TxnError::MissingBranch`], [`TxnError::Header`]
    ///   for a request the layer cannot match responses to.
    /// - [`TxnError::DuplicateTransaction`] when a live client transaction has the same
    ///   branch and method.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        to: Flow,
    ) -> Result<ClientTransactionId, TxnError> {
        let now = self.advance(now);
        if *req.method() == Method::Ack {
            return Err(TxnError::AckTransaction);
        }
        let (via, cseq) = read_outgoing(req.headers())?;
        let key = TransactionKey::for_outgoing_via(&req, &via)?;
        if self.find_key(&key).is_some() {
            let branch = via.branch().unwrap_or_default().to_owned();
            return Err(TxnError::DuplicateTransaction { branch });
        }
        let reliable = to.transport.is_reliable();
        let timers = self.config.timers;
        let mut out = std::mem::take(&mut self.scratch);
        let machine = if *req.method() == Method::Invite {
            ClientMachine::Invite(ClientInvite::start(now, &timers, reliable, &mut out))
        } else {
            ClientMachine::NonInvite(ClientNonInvite::start(now, &timers, reliable, &mut out))
        };
        let request_bytes = req.to_bytes();
        let hash = self.keys.hash(&key);
        let slot = self.txns.insert(Txn::Client(Box::new(ClientTxn {
            key,
            machine,
            flow: to,
            request: Some(req),
            cseq,
            request_bytes: request_bytes.clone(),
            ack: None,
        })));
        // No transaction holds the key (checked above): nothing to take over.
        self.keys.insert(hash, KeyEntry::Live(slot), |_| false);
        self.transmit(to, request_bytes, Some(client_id(slot)));
        for action in out.drain(..) {
            self.apply(slot, action);
        }
        self.scratch = out;
        Ok(ClientTransactionId(slot))
    }

    /// A response from the network: to its client transaction (§17.1.3), or up to the TU as
    /// a stray.
    pub(crate) fn handle_response(&mut self, now: Instant, rsp: Response, from: Flow) {
        let code = rsp.status().as_u16();
        let read = TransactionKey::client(&rsp)
            .map_err(TxnError::from)
            .and_then(|key| {
                let class = ResponseClass::of(code).ok_or(TxnError::BadStatus(code))?;
                Ok((key, class))
            });
        let (key, class) = match read {
            Ok(parts) => parts,
            Err(error) => {
                let message = Box::new(Message::Response(rsp));
                return self.event(Event::Invalid {
                    message,
                    from,
                    error,
                });
            }
        };
        let slot = key.and_then(|k| match self.find_key(&k) {
            Some(KeyEntry::Live(slot)) => Some(slot),
            _ => None,
        });
        let timers = self.config.timers;
        let mut out = std::mem::take(&mut self.scratch);
        let Some((slot, Txn::Client(c))) = slot.and_then(|s| Some((s, self.txns.get_mut(s)?)))
        else {
            self.scratch = out;
            return self.event(Event::StrayResponse {
                response: rsp,
                from,
            });
        };
        // An INVITE's transaction passes up several responses (1xx, 2xx) whose From and
        // To tags the dialog layer and the TU read: the request's values, parsed once, tell
        // them where (`Headers::note_tags_from_request`), instead of a parse per response.
        if let (ClientMachine::Invite(_), Some(request)) = (&c.machine, &c.request) {
            rsp.headers().note_tags_from_request(request.headers());
        }
        match &mut c.machine {
            ClientMachine::Invite(m) => m.on_response(class, now, &timers, &mut out),
            ClientMachine::NonInvite(m) => m.on_response(class, now, &timers, &mut out),
        }
        // §17.1.1.3: the ACK is built from the first non-2xx final and re-sent as is.
        if c.ack.is_none() && out.contains(&Action::SendAck) {
            if let Some(request) = &c.request {
                c.ack = Some(ack_for(request, &rsp, c.cseq).to_bytes());
            }
        }
        // With its final response the transaction re-sends and times out no more: the
        // request and its bytes go (an answered INVITE's transaction stays 32 s in
        // Accepted for Timer M, RFC 6026 §8.4).
        let state = match &c.machine {
            ClientMachine::Invite(m) => m.state(),
            ClientMachine::NonInvite(m) => m.state(),
        };
        if matches!(state, State::Accepted | State::Completed) {
            c.request = None;
            c.request_bytes = Bytes::new();
        }
        if let ClientMachine::Invite(m) = &mut c.machine {
            if m.accepted.count(state) {
                self.accepted += 1;
            }
        }
        let (flow, ack) = (c.flow, c.ack.clone());
        let mut rsp = Some(rsp);
        for action in out.drain(..) {
            match action {
                Action::PassUp => {
                    if let Some(response) = rsp.take() {
                        self.event(Event::Response {
                            id: ClientTransactionId(slot),
                            response,
                        });
                    }
                }
                // §17.1.1.2: the ACK goes where the INVITE went.
                Action::SendAck => {
                    if let Some(ack) = ack.clone() {
                        self.transmit(flow, ack, Some(client_id(slot)));
                    }
                }
                other => self.apply(slot, other),
            }
        }
        self.scratch = out;
    }
}
