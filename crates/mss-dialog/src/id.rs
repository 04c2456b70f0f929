//! The identifier of a dialog (RFC 3261 §12): Call-ID, local tag, remote tag.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// What tells one dialog from every other (RFC 3261 §12): the Call-ID and the two tags, seen
/// from mss's side.
///
/// For a dialog in which mss is the UAS of the dialog-creating INVITE, the local tag is the
/// To tag of its responses and the remote tag the From tag of the INVITE; as UAC it is the
/// other way round. In a request received within the dialog, the local tag is the To tag and
/// the remote tag the From tag (§12.2.2). Call-ID and tags are compared byte for byte.
///
/// A peer that follows RFC 2543 may leave its tag out: the remote tag is then empty.
///
/// An id is a key of several maps of the dialog and call layers and is looked up for every
/// message of a dialog, so it is cheap to copy and to hash: the three parts live in one
/// shared, immutable string (a clone is a reference count), with their hash computed once
/// (a lookup hashes 8 bytes, not three strings, and two ids with different hashes differ
/// without their bytes being read).
#[derive(Clone)]
pub struct DialogId(Arc<Parts>);

/// The parts of a [`DialogId`], one after the other in `text`.
struct Parts {
    /// The hash of the three parts, by the process's [`id_hasher`].
    hash: u64,
    /// Call-ID, local tag and remote tag, concatenated.
    text: Box<str>,
    /// Where the local tag starts in `text`.
    local_at: usize,
    /// Where the remote tag starts in `text`.
    remote_at: usize,
}

/// The keyed hash of dialog ids: its keys are random for each process, so that a peer that
/// chooses Call-IDs and tags cannot make ids collide in the maps they key.
fn id_hasher() -> &'static ahash::RandomState {
    static HASHER: OnceLock<ahash::RandomState> = OnceLock::new();
    HASHER.get_or_init(ahash::RandomState::new)
}

impl DialogId {
    /// A dialog id from its three parts.
    pub fn new(
        call_id: impl AsRef<str>,
        local_tag: impl AsRef<str>,
        remote_tag: impl AsRef<str>,
    ) -> DialogId {
        let (call_id, local_tag, remote_tag) =
            (call_id.as_ref(), local_tag.as_ref(), remote_tag.as_ref());
        let mut text = String::with_capacity(call_id.len() + local_tag.len() + remote_tag.len());
        text.push_str(call_id);
        text.push_str(local_tag);
        text.push_str(remote_tag);
        DialogId(Arc::new(Parts {
            hash: id_hasher().hash_one((call_id, local_tag, remote_tag)),
            text: text.into_boxed_str(),
            local_at: call_id.len(),
            remote_at: call_id.len() + local_tag.len(),
        }))
    }

    /// The Call-ID of every message of the dialog.
    pub fn call_id(&self) -> &str {
        self.0.text.get(..self.0.local_at).unwrap_or_default()
    }

    /// The tag mss chose.
    pub fn local_tag(&self) -> &str {
        self.0
            .text
            .get(self.0.local_at..self.0.remote_at)
            .unwrap_or_default()
    }

    /// The tag the peer chose (empty when it sent none).
    pub fn remote_tag(&self) -> &str {
        self.0.text.get(self.0.remote_at..).unwrap_or_default()
    }

    /// True when this is the dialog of `call_id`, `local_tag` and `remote_tag`.
    pub fn is(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        self.call_id() == call_id
            && self.local_tag() == local_tag
            && self.remote_tag() == remote_tag
    }
}

impl PartialEq for DialogId {
    fn eq(&self, other: &DialogId) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        Arc::ptr_eq(&self.0, &other.0)
            || (a.hash == b.hash
                && a.local_at == b.local_at
                && a.remote_at == b.remote_at
                && a.text == b.text)
    }
}

impl Eq for DialogId {}

impl Hash for DialogId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl PartialOrd for DialogId {
    fn partial_cmp(&self, other: &DialogId) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DialogId {
    /// By Call-ID, then local tag, then remote tag.
    fn cmp(&self, other: &DialogId) -> Ordering {
        (self.call_id(), self.local_tag(), self.remote_tag()).cmp(&(
            other.call_id(),
            other.local_tag(),
            other.remote_tag(),
        ))
    }
}

impl fmt::Debug for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialogId")
            .field("call_id", &self.call_id())
            .field("local_tag", &self.local_tag())
            .field("remote_tag", &self.remote_tag())
            .finish()
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};local-tag={};remote-tag={}",
            self.call_id(),
            self.local_tag(),
            self.remote_tag()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parts_come_back_and_the_boundaries_count() {
        let id = DialogId::new("c@h", "lt", "rt");
        assert_eq!(
            (id.call_id(), id.local_tag(), id.remote_tag()),
            ("c@h", "lt", "rt")
        );
        assert!(id.is("c@h", "lt", "rt"));
        // The same bytes cut elsewhere are another dialog.
        let moved = DialogId::new("c@hl", "t", "rt");
        assert_ne!(id, moved);
        let empty_remote = DialogId::new("c@h", "ltrt", "");
        assert_ne!(id, empty_remote);
        assert_eq!(empty_remote.remote_tag(), "");
    }

    #[test]
    fn equal_parts_are_equal_ids_with_equal_hashes() {
        let a = DialogId::new("c@h", "lt", "rt");
        let b = DialogId::new(String::from("c@h"), "lt", "rt");
        assert_eq!(a, b);
        let set: HashSet<DialogId> = [a.clone(), b.clone()].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains(&DialogId::new("c@h", "lt", "rt")));
        assert!(!set.contains(&DialogId::new("c@h", "rt", "lt")));
        assert_eq!(format!("{a}"), "c@h;local-tag=lt;remote-tag=rt");
        assert_eq!(
            format!("{a:?}"),
            r#"DialogId { call_id: "c@h", local_tag: "lt", remote_tag: "rt" }"#
        );
    }

    #[test]
    fn ordered_by_call_id_then_tags() {
        let mut ids = [
            DialogId::new("b", "a", "a"),
            DialogId::new("a", "b", "a"),
            DialogId::new("a", "a", "b"),
        ];
        ids.sort();
        let order: Vec<_> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            order,
            [
                "a;local-tag=a;remote-tag=b",
                "a;local-tag=b;remote-tag=a",
                "b;local-tag=a;remote-tag=a"
            ]
        );
    }
}
