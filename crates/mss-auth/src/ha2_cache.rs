//! The last HA2 the server computed (`H(method ":" uri)`, RFC 7616 §3.4.3). The
//! REGISTERs a registrar checks all digest the same method and Request-URI, so the hash
//! is reused instead of computed per request. HA2 covers only what the request shows in
//! clear, so whether it was reused tells a peer nothing it does not know.

use crate::algorithm::Ha2Hex;
use crate::Algorithm;

/// Longest `method` plus `uri` remembered; longer pairs are hashed every time.
const KEY_MAX: usize = 128;

/// A one-entry cache of HA2 values.
#[derive(Clone, Default)]
pub(crate) struct Ha2Cache {
    last: Option<Entry>,
}

#[derive(Clone)]
struct Entry {
    algorithm: Algorithm,
    /// `method` then `uri`, without a separator (`method_len` tells them apart).
    key: [u8; KEY_MAX],
    method_len: usize,
    key_len: usize,
    ha2: Ha2Hex,
}

impl Entry {
    fn matches(&self, algorithm: Algorithm, method: &str, uri: &str) -> bool {
        self.algorithm == algorithm
            && self.method_len == method.len()
            && self.key_len == method.len() + uri.len()
            && self.key.get(..self.method_len) == Some(method.as_bytes())
            && self.key.get(self.method_len..self.key_len) == Some(uri.as_bytes())
    }
}

impl Ha2Cache {
    /// HA2 of `method` and `uri` with `algorithm`, from the cache when it is the last one.
    pub(crate) fn get(&mut self, algorithm: Algorithm, method: &str, uri: &str) -> Ha2Hex {
        if let Some(entry) = &self.last {
            if entry.matches(algorithm, method, uri) {
                return entry.ha2;
            }
        }
        let ha2 = Ha2Hex::compute(algorithm, method, uri);
        let key_len = method.len() + uri.len();
        if key_len <= KEY_MAX {
            let mut key = [0u8; KEY_MAX];
            for (k, b) in key.iter_mut().zip(method.bytes().chain(uri.bytes())) {
                *k = b;
            }
            self.last = Some(Entry {
                algorithm,
                key,
                method_len: method.len(),
                key_len,
                ha2,
            });
        }
        ha2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: Ha2Hex, b: Ha2Hex) -> bool {
        a.as_bytes() == b.as_bytes()
    }

    #[test]
    fn reuses_only_the_same_method_uri_and_algorithm() {
        let mut c = Ha2Cache::default();
        let cases = [
            (Algorithm::Md5, "REGISTER", "sip:a"),
            (Algorithm::Md5, "REGISTER", "sip:a"),
            (Algorithm::Sha256, "REGISTER", "sip:a"),
            (Algorithm::Md5, "REGISTE", "Rsip:a"),
            (Algorithm::Md5, "REGISTER", "sip:b"),
            (Algorithm::Md5, "MESSAGE", "sip:a"),
            (Algorithm::Md5, "REGISTER", "sip:a"),
        ];
        for (alg, method, uri) in cases {
            assert!(same(
                c.get(alg, method, uri),
                Ha2Hex::compute(alg, method, uri)
            ));
        }
        let long = format!("sip:{}", "x".repeat(KEY_MAX));
        assert!(same(
            c.get(Algorithm::Md5, "REGISTER", &long),
            Ha2Hex::compute(Algorithm::Md5, "REGISTER", &long)
        ));
        // The long pair was not kept; the previous entry still answers.
        assert!(c
            .last
            .as_ref()
            .is_some_and(|e| e.matches(Algorithm::Md5, "REGISTER", "sip:a")));
    }
}
