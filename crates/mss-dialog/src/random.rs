//! Random identifiers from the caller's generator: tags, Call-IDs, Via branches.

use rand::RngCore;

/// Lower-case hex of `N` random bytes.
fn random_hex<const N: usize>(rng: &mut dyn RngCore) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    let mut out = String::with_capacity(2 * N);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A tag for a From or To header: 64 random bits in hex (RFC 3261 §19.3 asks for at least
/// 32).
pub fn new_tag(rng: &mut dyn RngCore) -> String {
    random_hex::<8>(rng)
}

/// A Call-ID: 128 random bits in hex (RFC 3261 §8.1.1.4), with no host part, so that no
/// local address leaks.
pub fn new_call_id(rng: &mut dyn RngCore) -> String {
    random_hex::<16>(rng)
}

/// A Via branch: the RFC 3261 magic cookie `z9hG4bK` and 96 random bits (§8.1.1.7).
pub fn new_branch(rng: &mut dyn RngCore) -> String {
    let mut out = String::from("z9hG4bK");
    out.push_str(&random_hex::<12>(rng));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn lengths_and_alphabet() {
        let mut rng = StdRng::seed_from_u64(7);
        let tag = new_tag(&mut rng);
        assert_eq!(tag.len(), 16);
        assert!(tag
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(new_call_id(&mut rng).len(), 32);
        let branch = new_branch(&mut rng);
        assert!(branch.starts_with("z9hG4bK"));
        assert_eq!(branch.len(), 7 + 24);
        assert_ne!(new_tag(&mut rng), tag);
    }
}
