//! The header index of a message: spans into the received buffer, in arrival order.
//!
//! Parsing a message allocates one `Vec` of entries for all its headers; each entry holds
//! the header's name and the spans of its raw line and of its value in the received
//! [`Bytes`]. Untouched headers serialize byte for byte from those spans; headers added or
//! replaced by a service carry their own [`Bytes`] value.

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::memo::Memos;
use crate::name::HeaderName;

pub(crate) use crate::list::{top_level_comma, trim_lws, ListValues};

/// A byte range `[start, start + len)` of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Message sizes are bounded far below 4 GiB by framing limits; saturate anyway.
        let s = u32::try_from(start).unwrap_or(u32::MAX);
        let e = u32::try_from(end).unwrap_or(u32::MAX);
        Span {
            start: s,
            len: e.saturating_sub(s),
        }
    }

    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        let start = self.start as usize;
        let end = start.saturating_add(self.len as usize);
        buf.get(start..end).unwrap_or(&[])
    }
}

#[derive(Debug, Clone)]
enum Value {
    Span(Span),
    Owned(Bytes),
}

#[derive(Debug, Clone)]
struct Entry {
    name: HeaderName,
    /// The whole received line (name, colon, value, folding), without the final CRLF.
    /// `None` for headers added after parsing.
    raw: Option<Span>,
    value: Value,
}

/// The headers of a message, in order, as an index into the received bytes.
///
/// Lookups compare names the SIP way (ignoring case, compact forms equal to full names).
/// A value returned by [`Headers::get`] is the raw value of one header line with leading
/// and trailing whitespace removed; a folded value (RFC 3261 §7.3.1) still holds its CRLF
/// and leading whitespace, which every typed parser treats as plain whitespace.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    buf: Bytes,
    entries: Vec<Entry>,
    /// What was learnt once parsed: the From and To tags, the CSeq, the Call-ID's line
    /// (`header::memo`); cleared by every change.
    pub(crate) memos: Memos,
}

impl Headers {
    /// An empty header list (for building messages).
    pub fn new() -> Headers {
        Headers::default()
    }

    pub(crate) fn with_buffer(buf: Bytes, capacity: usize) -> Headers {
        Headers {
            buf,
            entries: Vec::with_capacity(capacity),
            memos: Memos::default(),
        }
    }

    /// Appends a line of the message being parsed. Nothing has read the list yet, so there
    /// is no memo to forget.
    pub(crate) fn push_parsed(&mut self, name: HeaderName, raw: Span, value: Span) {
        self.entries.push(Entry {
            name,
            raw: Some(raw),
            value: Value::Span(value),
        });
    }

    /// The number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no header at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn value_of<'a>(&'a self, e: &'a Entry) -> &'a [u8] {
        match &e.value {
            Value::Span(s) => s.get(&self.buf),
            Value::Owned(b) => b,
        }
    }

    /// The value of line `index` (in order, from 0), if there is one.
    pub(crate) fn value_at(&self, index: usize) -> Option<&[u8]> {
        self.entries.get(index).map(|e| self.value_of(e))
    }

    /// The index and value of the first header line named `name`.
    pub(crate) fn find(&self, name: &HeaderName) -> Option<(usize, &[u8])> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| &e.name == name)
            .map(|(i, e)| (i, self.value_of(e)))
    }

    /// The value of the first header line named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        self.find(name).map(|(_, v)| v)
    }

    /// The values of every header line named `name`, in order (one per line, not split).
    pub fn get_all<'a, 'n>(&'a self, name: &'n HeaderName) -> GetAll<'a, 'n> {
        GetAll {
            headers: self,
            name,
            idx: 0,
        }
    }

    /// The values of `name`: for list headers ([`HeaderName::is_list`]) each line is split
    /// at commas that are outside quoted strings and `<>`; other headers give one value per
    /// line. Empty list elements are skipped.
    pub fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let split = name.is_list();
        let name = name.clone();
        self.entries
            .iter()
            .filter(move |e| e.name == name)
            .flat_map(move |e| {
                let v = self.value_of(e);
                if split {
                    ListValues::new(v)
                } else {
                    ListValues::whole(v)
                }
            })
    }

    /// How many header lines are named `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.entries.iter().filter(|e| &e.name == name).count()
    }

    /// True when at least one header line is named `name`.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.entries.iter().any(|e| &e.name == name)
    }

    /// Every header line as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &[u8])> + '_ {
        self.entries.iter().map(|e| (&e.name, self.value_of(e)))
    }

    /// Appends a header line. The value is written as given: it must not hold a CRLF
    /// that is not followed by whitespace (that would start a new header line).
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.memos.clear();
        self.entries.push(Entry {
            name,
            raw: None,
            value: Value::Owned(value.into()),
        });
    }

    /// Inserts a header line before every other one (a proxy adds its Via this way,
    /// RFC 3261 §16.6 step 8).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.memos.clear();
        self.entries.insert(
            0,
            Entry {
                name,
                raw: None,
                value: Value::Owned(value.into()),
            },
        );
    }

    /// Removes every line named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        self.memos.clear();
        let before = self.entries.len();
        self.entries.retain(|e| &e.name != name);
        before - self.entries.len()
    }

    /// Removes the first line named `name` (e.g. the top Via of a response, RFC 3261
    /// §16.7 step 3). Returns true if one was removed.
    pub fn remove_first(&mut self, name: &HeaderName) -> bool {
        self.memos.clear();
        match self.entries.iter().position(|e| &e.name == name) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Replaces the first line named `name` by one with `value` (in the same place), and
    /// removes the other lines of that name; appends it if there was none.
    pub fn replace(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.memos.clear();
        let value = Value::Owned(value.into());
        match self.entries.iter().position(|e| e.name == name) {
            Some(i) => {
                let mut j = 0usize;
                self.entries.retain(|e| {
                    let keep = j <= i || e.name != name;
                    j += 1;
                    keep
                });
                if let Some(e) = self.entries.get_mut(i) {
                    e.raw = None;
                    e.value = value;
                }
            }
            None => self.entries.push(Entry {
                name,
                raw: None,
                value,
            }),
        }
    }

    /// Replaces the value of the first line named `name` only, keeping the other lines of
    /// that name (e.g. the top Via). Returns false when there is no such line.
    pub fn set_first(&mut self, name: &HeaderName, value: impl Into<Bytes>) -> bool {
        self.memos.clear();
        match self.entries.iter_mut().find(|e| &e.name == name) {
            Some(e) => {
                e.raw = None;
                e.value = Value::Owned(value.into());
                true
            }
            None => false,
        }
    }

    /// Copies every line named `name` from `other`, in order, to the end of `self`.
    /// Lines keep their exact bytes when both share the same buffer (see
    /// `Response::for_request`).
    pub fn copy_from(&mut self, other: &Headers, name: &HeaderName) {
        self.memos.clear();
        let same = self.same_buffer(other);
        for e in other.entries.iter().filter(|e| &e.name == name) {
            if same {
                self.entries.push(e.clone());
            } else {
                let v = other.value_of(e);
                let value = match &e.value {
                    Value::Owned(b) => b.clone(),
                    Value::Span(_) => other.buf.slice_ref(v),
                };
                self.push(e.name.clone(), value);
            }
        }
    }

    /// Copies the lines a response repeats from its request (RFC 3261 §8.2.6.2), in one
    /// pass over `other`: every Via in order, then From, To, Call-ID and CSeq, and
    /// Timestamp when `timestamp` is set; `to_value` may give a new value for the To line.
    /// `self` must be empty and share `other`'s buffer ([`Headers::empty_sharing`]).
    ///
    /// Returns false, having copied nothing, when From, To, Call-ID, CSeq or Timestamp
    /// appears more than once (a malformed request): the caller then copies name by name.
    pub(crate) fn copy_response_core(
        &mut self,
        other: &Headers,
        timestamp: bool,
        to_value: impl FnOnce(&[u8]) -> Option<Bytes>,
    ) -> bool {
        self.memos.clear();
        // The line of From, To, Call-ID, CSeq and Timestamp, in that order.
        let mut to_value = Some(to_value);
        let mut single: [Option<&Entry>; 5] = [None; 5];
        let mut vias = 0usize;
        for e in &other.entries {
            let slot = match e.name {
                HeaderName::Via => {
                    vias += 1;
                    continue;
                }
                HeaderName::From => 0,
                HeaderName::To => 1,
                HeaderName::CallId => 2,
                HeaderName::CSeq => 3,
                HeaderName::Timestamp if timestamp => 4,
                _ => continue,
            };
            match single.get_mut(slot) {
                Some(s @ None) => *s = Some(e),
                _ => return false,
            }
        }
        self.entries.reserve(vias + 5);
        if vias > 0 {
            let via = other.entries.iter().filter(|e| e.name == HeaderName::Via);
            self.entries.extend(via.cloned());
        }
        for (i, e) in single.into_iter().enumerate() {
            let Some(e) = e else { continue };
            let new_to = if i == 1 {
                to_value.take().and_then(|f| f(other.value_of(e)))
            } else {
                None
            };
            match new_to {
                Some(value) => self.entries.push(Entry {
                    name: HeaderName::To,
                    raw: None,
                    value: Value::Owned(value),
                }),
                None => self.entries.push(e.clone()),
            }
        }
        true
    }

    /// A `Bytes` for `sub`, sharing this list's buffer when `sub` lies inside it.
    pub(crate) fn share(&self, sub: &[u8]) -> Bytes {
        let base = self.buf.as_ptr() as usize;
        let p = sub.as_ptr() as usize;
        if p >= base && p + sub.len() <= base + self.buf.len() {
            self.buf.slice_ref(sub)
        } else {
            Bytes::copy_from_slice(sub)
        }
    }

    fn same_buffer(&self, other: &Headers) -> bool {
        self.buf.as_ptr() == other.buf.as_ptr() && self.buf.len() == other.buf.len()
    }

    /// Copies the first value of the first line named `name` from `other` (for the top
    /// Via of a CANCEL or ACK, RFC 3261 §9.1, §17.1.1.3). Returns false when absent.
    pub(crate) fn copy_first_value(&mut self, other: &Headers, name: &HeaderName) -> bool {
        self.memos.clear();
        let Some(e) = other.entries.iter().find(|e| &e.name == name) else {
            return false;
        };
        let v = other.value_of(e);
        match top_level_comma(v) {
            None if self.same_buffer(other) => self.entries.push(e.clone()),
            None => {
                let value = other.share(v);
                self.push(name.clone(), value);
            }
            Some(i) => {
                let first = trim_lws(v.get(..i).unwrap_or(&[]));
                let value = other.share(first);
                self.push(name.clone(), value);
            }
        }
        true
    }

    /// A new, empty header list sharing this list's buffer, so that
    /// [`Headers::copy_from`] keeps lines byte for byte without copying.
    pub(crate) fn empty_sharing(&self, capacity: usize) -> Headers {
        Headers::with_buffer(self.buf.clone(), capacity)
    }

    /// Writes every header line (`Name: value CRLF`), skipping those for which `skip`
    /// returns true. Received lines are written exactly as they came.
    pub(crate) fn encode_filtered(&self, out: &mut BytesMut, skip: impl Fn(&HeaderName) -> bool) {
        for e in &self.entries {
            if skip(&e.name) {
                continue;
            }
            match (&e.raw, &e.value) {
                (Some(raw), _) => {
                    // A received line is followed by its CRLF in the buffer (a bare LF
                    // ends it otherwise): one copy for both when it is there.
                    let with_crlf = Span {
                        start: raw.start,
                        len: raw.len.saturating_add(2),
                    };
                    match with_crlf.get(&self.buf) {
                        line if line.ends_with(b"\r\n") => out.put_slice(line),
                        _ => {
                            out.put_slice(raw.get(&self.buf));
                            out.put_slice(b"\r\n");
                        }
                    }
                }
                (None, v) => {
                    out.put_slice(e.name.as_bytes());
                    out.put_slice(b": ");
                    match v {
                        Value::Owned(b) => out.put_slice(b),
                        Value::Span(s) => out.put_slice(s.get(&self.buf)),
                    }
                    out.put_slice(b"\r\n");
                }
            }
        }
    }

    /// In one pass: an upper bound of the encoded size of the header lines, and the value
    /// of the Content-Length line when there is exactly one (`None` for none or several).
    pub(crate) fn encode_plan(&self) -> (usize, Option<&[u8]>) {
        let mut len = 0usize;
        let mut content_length = None;
        let mut content_lengths = 0usize;
        for e in &self.entries {
            len += match (&e.raw, &e.value) {
                (Some(raw), _) => raw.len as usize + 2,
                (None, v) => {
                    let vl = match v {
                        Value::Owned(b) => b.len(),
                        Value::Span(s) => s.len as usize,
                    };
                    e.name.as_bytes().len() + 4 + vl
                }
            };
            if let HeaderName::ContentLength = e.name {
                content_lengths += 1;
                content_length = Some(self.value_of(e));
            }
        }
        (len, content_length.filter(|_| content_lengths == 1))
    }

    /// Writes every header line (`Name: value` CRLF); received lines come out exactly as
    /// they were received.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_filtered(out, |_| false);
    }
}

/// Iterator over the values of the header lines with one name; see [`Headers::get_all`].
#[derive(Debug, Clone)]
pub struct GetAll<'a, 'n> {
    headers: &'a Headers,
    name: &'n HeaderName,
    idx: usize,
}

impl<'a> Iterator for GetAll<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let headers = self.headers;
        while let Some(e) = headers.entries.get(self.idx) {
            self.idx += 1;
            if &e.name == self.name {
                return Some(headers.value_of(e));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Headers {
        let mut h = Headers::new();
        h.push(
            HeaderName::Via,
            "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b",
        );
        h.push(HeaderName::Contact, "\"a, b\" <sip:x@y;p=1,2>, <sip:z@w>");
        h.push(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"a\", nonce=\"b\"",
        );
        h.push(HeaderName::from_static("X-Foo"), "1, 2");
        h
    }

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let h = sample();
        let vias: Vec<_> = h.values(&HeaderName::Via).collect();
        assert_eq!(
            vias,
            vec![&b"SIP/2.0/UDP a;branch=z9hG4bK1"[..], b"SIP/2.0/UDP b"]
        );
        let c: Vec<_> = h.values(&HeaderName::Contact).collect();
        assert_eq!(c, vec![&b"\"a, b\" <sip:x@y;p=1,2>"[..], b"<sip:z@w>"]);
        assert_eq!(h.values(&HeaderName::WwwAuthenticate).count(), 1);
        assert_eq!(h.values(&HeaderName::from_static("x-foo")).count(), 1);
    }

    #[test]
    fn edit_operations() {
        let mut h = sample();
        h.push_front(HeaderName::Via, "SIP/2.0/TCP me");
        assert_eq!(h.get(&HeaderName::Via), Some(&b"SIP/2.0/TCP me"[..]));
        assert_eq!(h.count(&HeaderName::Via), 2);
        h.replace(HeaderName::Via, "SIP/2.0/UDP only");
        assert_eq!(h.count(&HeaderName::Via), 1);
        assert_eq!(h.get(&HeaderName::Via), Some(&b"SIP/2.0/UDP only"[..]));
        assert!(h.remove_first(&HeaderName::Via));
        assert_eq!(h.remove(&HeaderName::Contact), 1);
        h.replace(HeaderName::CallId, "abc");
        assert_eq!(h.get(&HeaderName::CallId), Some(&b"abc"[..]));
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert!(out.starts_with(b"WWW-Authenticate: Digest"));
        assert!(out.ends_with(b"Call-ID: abc\r\n"));
    }
}
