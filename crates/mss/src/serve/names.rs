//! A compact, read-only set of user names for the admin API.
//!
//! With 100,000 configured users a `HashSet<String>` costs ~9 MB (a `String` and a heap
//! block per name, and the table's spare buckets); the names sorted into one string with
//! their end offsets take ~1 MB, and a lookup is a binary search (17 comparisons).

/// Names sorted and concatenated; `ends[i]` is where name `i` ends in `text`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NameSet {
    text: String,
    ends: Vec<u32>,
}

impl NameSet {
    /// The set of `names` (duplicates kept once).
    pub(crate) fn new(names: impl IntoIterator<Item = String>) -> NameSet {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut set = NameSet {
            text: String::with_capacity(names.iter().map(String::len).sum()),
            ends: Vec::with_capacity(names.len()),
        };
        for name in names {
            set.text.push_str(&name);
            // A configuration file under 4 GiB cannot overflow this.
            set.ends
                .push(u32::try_from(set.text.len()).unwrap_or(u32::MAX));
        }
        set
    }

    /// Name number `i` in sorted order.
    fn name(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(prev) => self.ends.get(prev).map_or(0, |e| *e as usize),
            None => 0,
        };
        let end = self.ends.get(i).map_or(start, |e| *e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    /// Whether `name` is in the set.
    pub(crate) fn contains(&self, name: &str) -> bool {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_names_given() {
        let s = NameSet::new(["101", "100", "alice", "10", "100"].map(String::from));
        assert_eq!(s.len(), 4);
        for n in ["10", "100", "101", "alice"] {
            assert!(s.contains(n), "{n}");
        }
        for n in ["", "1", "1000", "102", "alic", "alicea", "bob", "0"] {
            assert!(!s.contains(n), "{n}");
        }
    }

    #[test]
    fn empty_set_contains_nothing() {
        let s = NameSet::new(Vec::new());
        assert_eq!(s.len(), 0);
        assert!(!s.contains(""));
        assert!(!s.contains("100"));
    }

    #[test]
    fn many_names() {
        let s = NameSet::new((100_000..101_000).map(|i| format!("u{i}")));
        assert!((100_000..101_000).all(|i| s.contains(&format!("u{i}"))));
        assert!(!s.contains("u99999"));
        assert!(!s.contains("u101000"));
    }
}
