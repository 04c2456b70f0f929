//! What a message remembers of its headers once parsed: the From and To tags
//! (`tag_memo.rs`), the CSeq, and where its valid Call-ID is.
//!
//! Every layer that handles a message reads its CSeq and Call-ID again: the prechecks, the
//! transaction key and matching, the dialog lookup, the call service, the builders of the
//! answers. A B2BUA call reads the CSeq of its messages ~27 times and their Call-ID ~19
//! times; each read was a scan of the header list, a UTF-8 check and a parse.
//! [`Headers::cseq`] now parses once and keeps the number and the method (a method mss
//! knows: an extension method is parsed each time, it keeps its own bytes), and
//! [`Headers::call_id`] remembers which line holds the Call-ID once that line passed its
//! check. Like the tags, any change to the headers forgets all of it (`Memos::clear`, called
//! by every method of [`Headers`] that changes a line), so a memo never outlives the line
//! it describes.

use std::cell::Cell;

use crate::header::tag_memo::TagMemos;
use crate::header::CSeq;
use crate::method::Method;

/// The method index of a CSeq memo that holds nothing.
const NO_CSEQ: u8 = u8::MAX;

/// The memos of one header list. A message is handled by one thread at a time; `Cell`
/// keeps reads and the first fill free of synchronisation.
#[derive(Debug, Clone)]
pub(crate) struct Memos {
    /// Where the From and To tags are.
    pub(crate) tags: TagMemos,
    /// The CSeq number and the index of its method in [`Method::KNOWN`]; [`NO_CSEQ`] as the index
    /// when nothing is remembered (an `Option` would take four more bytes).
    cseq: Cell<(u32, u8)>,
    /// The index (in the header list) of the Call-ID line, which passed its check. (A
    /// `u16`, and the tags' offsets too, so that the memos take no more room in every
    /// message than the tag memos alone did: a list of more lines is not remembered.)
    call_id: Cell<Option<u16>>,
}

impl Default for Memos {
    fn default() -> Memos {
        Memos {
            tags: TagMemos::default(),
            cseq: Cell::new((0, NO_CSEQ)),
            call_id: Cell::new(None),
        }
    }
}

impl Memos {
    /// Forgets everything (the headers changed).
    pub(crate) fn clear(&self) {
        self.tags.clear();
        self.cseq.set((0, NO_CSEQ));
        self.call_id.set(None);
    }

    /// The remembered CSeq.
    pub(crate) fn cseq(&self) -> Option<CSeq> {
        let (seq, i) = self.cseq.get();
        let method = Method::KNOWN.get(usize::from(i))?.clone();
        Some(CSeq { seq, method })
    }

    /// Remembers `cseq` (not when its method is an extension method).
    pub(crate) fn set_cseq(&self, cseq: &CSeq) {
        if let Some(i) = cseq.method.known_index() {
            self.cseq.set((cseq.seq, i));
        }
    }

    /// The index of the Call-ID line, once it passed its check.
    pub(crate) fn call_id_line(&self) -> Option<usize> {
        self.call_id.get().map(usize::from)
    }

    /// Remembers that line `index` holds the Call-ID and that it passed its check.
    pub(crate) fn set_call_id_line(&self, index: usize) {
        if let Ok(i) = u16::try_from(index) {
            self.call_id.set(Some(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memos_take_no_more_room_than_the_tag_memos_did() {
        // Two tag memos of 12 bytes each before; every message carries one `Memos`.
        assert!(
            std::mem::size_of::<Memos>() <= 24,
            "{}",
            std::mem::size_of::<Memos>()
        );
    }

    #[test]
    fn every_known_method_comes_back_as_itself() {
        for m in &Method::KNOWN {
            let memos = Memos::default();
            memos.set_cseq(&CSeq {
                seq: 7,
                method: m.clone(),
            });
            assert_eq!(
                memos.cseq(),
                Some(CSeq {
                    seq: 7,
                    method: m.clone()
                })
            );
            memos.clear();
            assert_eq!(memos.cseq(), None);
        }
    }

    #[test]
    fn an_extension_method_is_not_remembered() {
        let memos = Memos::default();
        memos.set_cseq(&CSeq {
            seq: 1,
            method: Method::Other(bytes::Bytes::from_static(b"FOO")),
        });
        assert_eq!(memos.cseq(), None);
    }
}
