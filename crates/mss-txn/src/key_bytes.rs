//! The owned byte string inside a [`crate::TransactionKey`]: stored inline when short (the
//! usual branch + sent-by fits), on the heap otherwise.
//!
//! Inline storage saves an allocation per lookup and, more importantly, a pointer chase
//! (a cache miss) per key comparison inside a table of 100,000 transactions.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Bytes kept inline; `KeyBytes` is then 64 bytes, one cache line.
const INLINE: usize = 62;

/// A short owned byte string; equality and hashing see only the bytes.
#[derive(Clone)]
pub(crate) enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    /// Builds a string of exactly `len` bytes, filled by `fill`.
    pub(crate) fn build(len: usize, fill: impl FnOnce(&mut PartsWriter<'_>)) -> KeyBytes {
        match u8::try_from(len) {
            Ok(short) if len <= INLINE => {
                let mut buf = [0u8; INLINE];
                if let Some(out) = buf.get_mut(..len) {
                    fill(&mut PartsWriter { out, at: 0 });
                }
                KeyBytes::Inline { len: short, buf }
            }
            _ => {
                let mut out = vec![0u8; len].into_boxed_slice();
                fill(&mut PartsWriter {
                    out: &mut out,
                    at: 0,
                });
                KeyBytes::Heap(out)
            }
        }
    }

    /// The bytes on the heap: none when inline.
    pub(crate) fn heap_len(&self) -> usize {
        match self {
            KeyBytes::Inline { .. } => 0,
            KeyBytes::Heap(b) => b.len(),
        }
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(&[]),
            KeyBytes::Heap(b) => b,
        }
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for KeyBytes {}

impl Hash for KeyBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

/// Writes length-prefixed parts into a buffer of the exact size.
pub(crate) struct PartsWriter<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl PartsWriter<'_> {
    /// The bytes a part of `len` bytes takes, prefix included.
    pub(crate) const fn size(len: usize) -> usize {
        len + 4
    }

    /// Appends a 4-byte little-endian length and the part; returns the part's copy, for
    /// in-place edits (lower-casing). A buffer sized too small truncates (a bug caught by
    /// the key tests), it never panics.
    pub(crate) fn push(&mut self, part: &[u8]) -> &mut [u8] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        let start = self.at;
        let end = start + PartsWriter::size(part.len());
        debug_assert!(end <= self.out.len(), "key buffer sized too small");
        if let Some(prefix) = self.out.get_mut(start..start + 4) {
            prefix.copy_from_slice(&len.to_le_bytes());
        }
        self.at = end.min(self.out.len());
        match self.out.get_mut(start + 4..end) {
            Some(dst) => {
                dst.copy_from_slice(part);
                dst
            }
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(parts: &[&[u8]]) -> KeyBytes {
        let len = parts.iter().map(|p| PartsWriter::size(p.len())).sum();
        KeyBytes::build(len, |w| {
            for p in parts {
                w.push(p);
            }
        })
    }

    #[test]
    fn inline_and_heap_compare_by_bytes() {
        let short = build(&[b"z9hG4bK1", b"host"]);
        assert!(matches!(short, KeyBytes::Inline { .. }));
        assert_eq!(short.as_slice(), b"\x08\0\0\0z9hG4bK1\x04\0\0\0host");
        let long = build(&[&[b'x'; 100]]);
        assert!(matches!(long, KeyBytes::Heap(_)));
        assert_eq!(long.as_slice().len(), 104);
        assert_eq!(short.clone(), short);
        assert_ne!(short, long);
        // Prefixes keep part boundaries apart.
        assert_ne!(build(&[b"ab", b"c"]), build(&[b"a", b"bc"]));
    }

    #[test]
    fn push_returns_the_copy_for_in_place_edits() {
        let k = KeyBytes::build(PartsWriter::size(4), |w| {
            w.push(b"HoSt").make_ascii_lowercase()
        });
        assert_eq!(k.as_slice(), b"\x04\0\0\0host");
    }
}
