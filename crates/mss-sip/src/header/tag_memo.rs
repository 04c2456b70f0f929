//! The tags of From and To, remembered on the message once parsed.
//!
//! Every layer that handles a message asks for its From and To tags (the prechecks, the
//! transaction key under RFC 2543 matching, the dialog lookup of every request and
//! response): each parse of a name-addr parses its URI too. [`Headers::from_tag`] and
//! [`Headers::to_tag`] parse the value in full the first time (the same parser, the same
//! errors as [`Headers::from`] and [`Headers::to`]) and remember where the tag is; later
//! calls read it from there. Any change to the headers forgets what was remembered.
//! `from()` and `to()` leave the memo alone: finding the tag costs a scan of the
//! parameters, which most of their callers do not want. The prechecks
//! ([`crate::Request::check`], [`crate::Response::validate`]) parse both values in full
//! anyway and note their tags on the way.

use std::cell::Cell;

use crate::error::ParseError;
use crate::header::NameAddr;
use crate::headers::Headers;
use crate::name::HeaderName;

/// What is known of the tag of one From or To value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum TagMemo {
    /// Not parsed yet (or the headers changed since).
    #[default]
    Unknown,
    /// The value parses and has no tag.
    Absent,
    /// The value parses; its tag is these bytes of the value.
    At {
        /// Offset of the tag in the (trimmed) header value.
        start: u16,
        /// Its length.
        len: u16,
    },
}

/// The memos of From (`0`) and To (`1`). A message is handled by one thread at a time;
/// `Cell` keeps reads and the first fill free of synchronisation.
#[derive(Debug, Clone, Default)]
pub(crate) struct TagMemos(Cell<[TagMemo; 2]>);

impl TagMemos {
    /// Forgets both tags (the headers changed).
    pub(crate) fn clear(&self) {
        self.0.set([TagMemo::Unknown; 2]);
    }

    fn slot(name: &HeaderName) -> Option<usize> {
        match name {
            HeaderName::From => Some(0),
            HeaderName::To => Some(1),
            _ => None,
        }
    }

    fn get(&self, name: &HeaderName) -> TagMemo {
        Self::slot(name)
            .and_then(|i| self.0.get().get(i).copied())
            .unwrap_or_default()
    }

    fn set(&self, name: &HeaderName, memo: TagMemo) {
        if let Some(i) = Self::slot(name) {
            let mut all = self.0.get();
            if let Some(m) = all.get_mut(i) {
                *m = memo;
            }
            self.0.set(all);
        }
    }
}

impl Headers {
    /// The `tag` parameter of From (RFC 3261 §19.3): as `self.from()?.tag()`, the value
    /// parsed once per message.
    ///
    /// # Errors
    /// As [`Headers::from`].
    pub fn from_tag(&self) -> Result<Option<&str>, ParseError> {
        self.memo_tag(HeaderName::From)
    }

    /// The `tag` parameter of To: as `self.to()?.tag()`, the value parsed once per message.
    ///
    /// # Errors
    /// As [`Headers::to`].
    pub fn to_tag(&self) -> Result<Option<&str>, ParseError> {
        self.memo_tag(HeaderName::To)
    }

    fn memo_tag(&self, name: HeaderName) -> Result<Option<&str>, ParseError> {
        match self.memos.tags.get(&name) {
            TagMemo::Absent => return Ok(None),
            TagMemo::At { start, len } => {
                // The value was valid UTF-8 when the memo was made (nothing changed since):
                // only the tag's bytes are checked again, not the whole value.
                let (start, len) = (start as usize, len as usize);
                let tag = self
                    .get(&name)
                    .and_then(|v| v.get(start..start.checked_add(len)?))
                    .and_then(|t| std::str::from_utf8(t).ok());
                if let Some(tag) = tag {
                    return Ok(Some(tag));
                }
            }
            TagMemo::Unknown => {}
        }
        let v = self.required_str(name.clone())?;
        Ok(self.parse_noting_tag(v, &name)?.tag())
    }

    /// Notes the From and To tags of this message, a response, from `request`, the
    /// request it answers, where the values show that the full parser would find them
    /// there; later [`Headers::from_tag`] / [`Headers::to_tag`] of the response are then
    /// slices. An INVITE's client transaction sees several responses (`1xx`, `2xx`) whose
    /// tags the dialog layer and the TU read: the request's values are parsed once (their
    /// tags remembered on `request`) instead of each response's.
    ///
    /// A response copies From and To from the request (RFC 3261 §8.2.6.2), the UAS adding
    /// a tag to To. So:
    /// - a value byte for byte equal to the request's parses as the request's does (the
    ///   same input to the same parser): its tag, or its absence, is the request's; a
    ///   request's value that does not parse notes nothing;
    /// - a To value that is the request's To, ending in `>` and without a tag, followed by
    ///   `;tag=` and a token is the request's name-addr with one more header parameter:
    ///   the URI ends at the same (first) `>`, nothing but parameters can follow it, and
    ///   after the request's `>` there were none (a header parameter cannot end in `>`:
    ///   its value is a token, a host or a quoted string), so the parameters are exactly
    ///   `tag=TOKEN`, which `check_header_params` accepts.
    ///
    /// Anything else is left to the full parse (the memo stays unknown). What is noted is
    /// what `from()?.tag()` / `to()?.tag()` give (`tests/tag_memo.rs` checks it over the
    /// RFC 4475 corpus).
    pub fn note_tags_from_request(&self, request: &Headers) {
        for name in [HeaderName::From, HeaderName::To] {
            if self.memos.tags.get(&name) != TagMemo::Unknown {
                continue;
            }
            let (Ok(mine), Ok(theirs)) = (
                self.required_str(name.clone()),
                request.required_str(name.clone()),
            ) else {
                continue;
            };
            if mine == theirs {
                if request.memo_tag(name.clone()).is_ok() {
                    self.memos.tags.set(&name, request.memos.tags.get(&name));
                }
                continue;
            }
            if name != HeaderName::To || !theirs.ends_with('>') {
                continue;
            }
            let Some(tag) = mine
                .strip_prefix(theirs)
                .and_then(|rest| rest.strip_prefix(";tag="))
            else {
                continue;
            };
            if tag.is_empty() || !tag.bytes().all(crate::parse::is_token_char) {
                continue;
            }
            if request.memo_tag(HeaderName::To) != Ok(None) {
                continue;
            }
            let start = theirs.len() + ";tag=".len();
            if let (Ok(s), Ok(l)) = (u16::try_from(start), u16::try_from(tag.len())) {
                self.memos.tags.set(&name, TagMemo::At { start: s, len: l });
            }
        }
    }

    /// The From or To value, parsed as [`Headers::from`] / [`Headers::to`] parse it (same
    /// result, same errors), remembering where its tag is: the prechecks parse both values
    /// in full anyway, so every later [`Headers::from_tag`] / [`Headers::to_tag`] of the
    /// message is a slice instead of a second parse.
    pub(crate) fn name_addr_noting_tag(
        &self,
        name: HeaderName,
    ) -> Result<NameAddr<'_>, ParseError> {
        let v = self.required_str(name.clone())?;
        self.parse_noting_tag(v, &name)
    }

    /// Parses the From or To value `v` (the trimmed value of `name`) and remembers where
    /// its tag is.
    fn parse_noting_tag<'a>(
        &self,
        v: &'a str,
        name: &HeaderName,
    ) -> Result<NameAddr<'a>, ParseError> {
        let addr = NameAddr::parse(v, name)?;
        let memo = match addr.tag() {
            None => TagMemo::Absent,
            Some(tag) => {
                // The tag borrows from `v` (a parameter value is a slice of it).
                let start = (tag.as_ptr() as usize).wrapping_sub(v.as_ptr() as usize);
                match (u16::try_from(start), u16::try_from(tag.len())) {
                    (Ok(s), Ok(l)) if start + tag.len() <= v.len() => {
                        TagMemo::At { start: s, len: l }
                    }
                    _ => TagMemo::Unknown,
                }
            }
        };
        self.memos.tags.set(name, memo);
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lookup_fills_the_memo_and_a_change_clears_it() {
        let mut h = Headers::new();
        h.push(HeaderName::From, "\"A\" <sip:a@example.com>;tag=abc");
        h.push(HeaderName::To, "<sip:b@example.com>");
        assert_eq!(h.memos.tags.get(&HeaderName::From), TagMemo::Unknown);
        assert_eq!(h.from_tag(), Ok(Some("abc")));
        assert_eq!(
            h.memos.tags.get(&HeaderName::From),
            TagMemo::At { start: 28, len: 3 }
        );
        assert_eq!(h.from_tag(), Ok(Some("abc")));
        assert_eq!(h.to_tag(), Ok(None));
        assert_eq!(h.memos.tags.get(&HeaderName::To), TagMemo::Absent);
        h.replace(HeaderName::To, "<sip:b@example.com>;tag=x");
        assert_eq!(h.memos.tags.get(&HeaderName::From), TagMemo::Unknown);
        assert_eq!(h.to_tag(), Ok(Some("x")));
    }

    #[test]
    fn a_response_takes_the_tags_of_the_request_it_answers() {
        let mut req = Headers::new();
        req.push(HeaderName::From, "\"A\" <sip:a@example.com>;tag=abc");
        req.push(HeaderName::To, "<sip:b@example.com>");
        let mut rsp = Headers::new();
        rsp.push(HeaderName::From, "\"A\" <sip:a@example.com>;tag=abc");
        rsp.push(HeaderName::To, "<sip:b@example.com>;tag=x-9");
        rsp.note_tags_from_request(&req);
        assert_eq!(
            rsp.memos.tags.get(&HeaderName::From),
            TagMemo::At { start: 28, len: 3 }
        );
        assert_eq!(
            rsp.memos.tags.get(&HeaderName::To),
            TagMemo::At { start: 24, len: 3 }
        );
        assert_eq!(rsp.from_tag(), Ok(Some("abc")));
        assert_eq!(rsp.to_tag(), Ok(Some("x-9")));
        // Untagged To copied as is; a From that differs is left to the parser.
        let mut rsp = Headers::new();
        rsp.push(HeaderName::From, "<sip:a@example.com>;tag=abc");
        rsp.push(HeaderName::To, "<sip:b@example.com>");
        rsp.note_tags_from_request(&req);
        assert_eq!(rsp.memos.tags.get(&HeaderName::From), TagMemo::Unknown);
        assert_eq!(rsp.memos.tags.get(&HeaderName::To), TagMemo::Absent);
        // A To whose appended tag is not a token, or a request To not ending in `>`.
        let mut rsp = Headers::new();
        rsp.push(HeaderName::To, "<sip:b@example.com>;tag=a b");
        rsp.note_tags_from_request(&req);
        assert_eq!(rsp.memos.tags.get(&HeaderName::To), TagMemo::Unknown);
        let mut bare = Headers::new();
        bare.push(HeaderName::To, "sip:b@example.com");
        let mut rsp = Headers::new();
        rsp.push(HeaderName::To, "sip:b@example.com;tag=x");
        rsp.note_tags_from_request(&bare);
        assert_eq!(rsp.memos.tags.get(&HeaderName::To), TagMemo::Unknown);
    }

    #[test]
    fn the_prechecks_fill_the_memo() {
        let msg = crate::framing::parse_datagram(bytes::Bytes::from_static(
            b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=abc\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n",
        ))
        .unwrap();
        let crate::Message::Request(req) = msg else {
            panic!("a request")
        };
        let h = req.headers();
        assert_eq!(h.memos.tags.get(&HeaderName::From), TagMemo::Unknown);
        assert!(req.check().is_ok());
        assert_eq!(
            h.memos.tags.get(&HeaderName::From),
            TagMemo::At { start: 24, len: 3 }
        );
        assert_eq!(h.memos.tags.get(&HeaderName::To), TagMemo::Absent);
        assert_eq!(h.from_tag(), Ok(Some("abc")));
        assert_eq!(h.to_tag(), Ok(None));
    }
}
