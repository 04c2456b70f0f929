//! The RFC 4475 torture messages in `testdata/sip-torture/` (see its README for where the
//! bytes come from) and their index, `INDEX.tsv`, which says which must be accepted.
//!
//! ```
//! let cases = mss_testdata::torture::cases();
//! assert_eq!(cases.len(), 50);
//! let wsinv = mss_testdata::torture::bytes("wsinv");
//! assert!(wsinv.starts_with(b"INVITE"));
//! ```
//!
//! Every function panics with the file it could not read: this crate serves tests only,
//! where a missing corpus must fail loudly.

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// What RFC 4475 expects a receiver to do with a message (`INDEX.tsv`'s `expected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Well-formed SIP: the parser must accept it (the server may still refuse it for
    /// application reasons, e.g. `416` for an unknown URI scheme).
    Valid,
    /// Malformed, or a request the RFC says must be refused.
    Invalid,
}

/// One message of the corpus: a row of `INDEX.tsv` with its bytes.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file's stem (`wsinv` for `wsinv.dat`).
    pub name: String,
    /// The RFC 4475 section that describes it (`3.1.1.1`).
    pub section: String,
    /// Whether it must be accepted.
    pub expected: Expected,
    /// What the RFC says a receiver should do, paraphrased.
    pub note: String,
    /// The message, byte for byte.
    pub bytes: Bytes,
}

impl Case {
    /// Whether the message is a request (responses start with `SIP/`).
    pub fn is_request(&self) -> bool {
        !self.bytes.starts_with(b"SIP/")
    }
}

/// The folder that holds the corpus: `testdata/sip-torture/` at the repository's root.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sip-torture")
}

/// The bytes of `NAME.dat`.
///
/// # Panics
/// When the file cannot be read.
pub fn bytes(name: &str) -> Bytes {
    let path = dir().join(format!("{name}.dat"));
    match std::fs::read(&path) {
        Ok(b) => Bytes::from(b),
        Err(e) => panic!("torture message {}: {e}", path.display()),
    }
}

/// Every message of the index, in the index's order (the order of RFC 4475 §3).
///
/// # Panics
/// When `INDEX.tsv` or one of the files it names cannot be read, or a row is malformed.
pub fn cases() -> Vec<Case> {
    let path = dir().join("INDEX.tsv");
    let index = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => panic!("torture index {}: {e}", path.display()),
    };
    index
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            parse_row(l).unwrap_or_else(|| panic!("{}:{}: bad row", path.display(), n + 1))
        })
        .collect()
}

/// The names of every message, in the index's order.
pub fn names() -> Vec<String> {
    cases().into_iter().map(|c| c.name).collect()
}

fn parse_row(line: &str) -> Option<Case> {
    let mut cols = line.splitn(4, '\t');
    let name = cols.next()?.to_string();
    let section = cols.next()?.to_string();
    let expected = match cols.next()? {
        "valid" => Expected::Valid,
        "invalid" => Expected::Invalid,
        _ => return None,
    };
    let note = cols.next().unwrap_or_default().to_string();
    let bytes = bytes(&name);
    Some(Case {
        name,
        section,
        expected,
        note,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use sha2::{Digest, Sha256};

    use super::*;

    /// The index names every `.dat` file of the folder and nothing else.
    #[test]
    fn index_and_folder_agree() {
        let listed: BTreeSet<String> = names().into_iter().collect();
        let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dat"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, on_disk);
        assert_eq!(listed.len(), 50);
        let valid = cases()
            .iter()
            .filter(|c| c.expected == Expected::Valid)
            .count();
        assert_eq!(valid, 27);
    }

    /// Every file still has the bytes RFC 4475 gives it (`SHA256SUMS`): no editor or
    /// line-ending conversion has touched them.
    #[test]
    fn files_match_their_checksums() {
        let sums = std::fs::read_to_string(dir().join("SHA256SUMS")).unwrap();
        let mut checked = 0;
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, file) = line.split_once("  ").unwrap();
            let data = std::fs::read(dir().join(file)).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&data)), sum, "{file}");
            checked += 1;
        }
        assert!(checked >= 50, "{checked}");
    }

    #[test]
    fn requests_and_responses_are_told_apart() {
        let cases = cases();
        let by_name = |n: &str| cases.iter().find(|c| c.name == n).unwrap();
        assert!(by_name("wsinv").is_request());
        assert!(!by_name("unreason").is_request());
    }
}
