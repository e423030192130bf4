//! The workspace's one hash: FNV-1a 64, for ids that must be the same in
//! every execution and process (the standard hasher is seeded per process),
//! and a cheap [`FastHasher`] built on it for maps keyed by addresses or by
//! ids that are already hashes.

/// FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`, continuing from `state`.
#[must_use]
pub fn fnv_from(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// FNV-1a 64 of `bytes`.
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv_from(FNV_OFFSET, bytes)
}

/// A hasher for maps whose keys are addresses or hashes already (SipHash's
/// resistance to chosen keys buys nothing there).
#[derive(Default, Clone, Copy, Debug)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv_from(self.0 ^ FNV_OFFSET, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci multiplication spreads aligned addresses over the buckets.
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv_from(fnv1a(b"foo"), b"bar"), fnv1a(b"foobar"));
    }

    #[test]
    fn aligned_addresses_spread_over_the_low_bits() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let low: std::collections::HashSet<u64> = (0..64usize)
            .map(|i| b.hash_one(0x7f00_0000_0000 + i * 16) & 63)
            .collect();
        assert!(low.len() > 32, "{} buckets of 64", low.len());
    }
}
