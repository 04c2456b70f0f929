//! The bench users: names `t0000`, `t0001`, … and their passwords, by the rule of
//! `bench/lib/gen_users.py` and `bench/lib/tls_probe.py` (the first 16 hex digits of
//! SHA-256 over `mss-bench:` and the name).

use sha2::{Digest, Sha256};

/// One user: its name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user part of its address of record (`t0042`).
    pub name: String,
    /// Its password.
    pub password: String,
}

impl User {
    /// User number `i` (`t` and four digits, more when `i` ≥ 10,000).
    pub fn numbered(i: usize) -> User {
        let name = format!("t{i:04}");
        let password = password(&name);
        User { name, password }
    }
}

/// The bench password of `name`.
pub fn password(name: &str) -> String {
    let hash = Sha256::digest(format!("mss-bench:{name}").as_bytes());
    let mut hex = hex::encode(hash);
    hex.truncate(16);
    hex
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_follow_the_bench_rule() {
        let u = User::numbered(7);
        assert_eq!(u.name, "t0007");
        assert_eq!(u.password.len(), 16);
        // python3 -c 'import hashlib;print(hashlib.sha256(b"mss-bench:t0007").hexdigest()[:16])'
        assert_eq!(u.password, "1409e7cee91cb945");
        assert_ne!(User::numbered(8).password, u.password);
    }
}
