//! Matching one byte against a bucket's 8 tophash bytes at once.
//!
//! A Go bucket has exactly 8 tophash bytes, so a "group" here is 8 bytes (not
//! hashbrown's 16): SSE2 on x86-64 compares the low 64 bits of an XMM register,
//! NEON on aarch64 a `uint8x8_t`, and the portable fallback works on a `u64`
//! (SWAR). The implementation is chosen at compile time by `cfg`; the
//! `portable-group` feature forces the fallback so that it is tested (and
//! cross-checked against Go) on x86-64 as well.
//!
//! Every mask is exact — unlike hashbrown's SWAR `match_byte`, which may report
//! false positives — because gomap also uses masks for `EMPTY_REST` and empty
//! slots, where a false positive would change Go's behaviour.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(feature = "portable-group")))]
mod sse2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(feature = "portable-group")))]
pub use sse2::Group;

#[cfg(all(target_arch = "aarch64", target_feature = "neon", not(feature = "portable-group")))]
mod neon;
#[cfg(all(target_arch = "aarch64", target_feature = "neon", not(feature = "portable-group")))]
pub use neon::Group;

/// Always compiled: the portable group is tested (and benchmarked) against the
/// native one on every target.
pub mod generic;
#[cfg(not(any(
    all(target_arch = "x86_64", target_feature = "sse2", not(feature = "portable-group")),
    all(target_arch = "aarch64", target_feature = "neon", not(feature = "portable-group"))
)))]
pub use generic::Group;

/// Bit `i` is set when slot `i` matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BitMask(pub u8);

impl BitMask {
    #[inline(always)]
    pub fn any(self) -> bool {
        self.0 != 0
    }
    /// The lowest matching slot.
    #[inline(always)]
    pub fn lowest(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as usize)
        }
    }
    /// Keeps only the slots below `n` (0..=8).
    #[inline(always)]
    pub fn below(self, n: usize) -> BitMask {
        BitMask(if n >= 8 { self.0 } else { self.0 & ((1u8 << n) - 1) })
    }
}

impl Iterator for BitMask {
    type Item = usize;
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let i = self.lowest()?;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// The name of the implementation compiled in, for `gomap.build_info()`.
pub const GROUP_IMPL: &str = Group::NAME;

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: [u8; 8], f: impl Fn(u8) -> bool) -> u8 {
        (0..8).filter(|&i| f(bytes[i])).fold(0, |m, i| m | 1 << i)
    }

    #[test]
    fn native_and_portable_agree_with_a_byte_loop() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..20000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut bytes = seed.to_le_bytes();
            // Bias towards the special values 0..=4 and repeats.
            for b in bytes.iter_mut() {
                if *b % 3 == 0 {
                    *b %= 6;
                }
            }
            let target = bytes[(seed >> 61) as usize];
            for g in [Group::load(&bytes).match_byte(target), generic::Group::load(&bytes).match_byte(target)] {
                assert_eq!(g.0, reference(bytes, |b| b == target), "{bytes:?}");
            }
            for g in [Group::load(&bytes).match_empty(), generic::Group::load(&bytes).match_empty()] {
                assert_eq!(g.0, reference(bytes, |b| b <= 1), "{bytes:?}");
            }
        }
    }
}
