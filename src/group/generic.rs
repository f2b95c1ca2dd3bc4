//! Portable SWAR group: the 8 tophash bytes as one little-endian `u64`.

use super::BitMask;

const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

#[derive(Clone, Copy)]
pub struct Group(u64);

impl Group {
    pub const NAME: &'static str = "generic";

    #[inline(always)]
    pub fn load(tophash: &[u8; 8]) -> Group {
        Group(u64::from_le_bytes(*tophash))
    }

    /// High bit of each byte set exactly where `x` has a zero byte (no false
    /// positives: the low 7 bits are added without carries between bytes).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        let y = (x & LO7).wrapping_add(LO7);
        !(y | x | LO7)
    }

    /// Gathers the high bit of every byte into one byte (bit i from byte i).
    #[inline(always)]
    fn compress(hi: u64) -> BitMask {
        BitMask(((hi >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8)
    }

    #[inline(always)]
    pub fn match_byte(self, b: u8) -> BitMask {
        Self::compress(Self::zero_bytes(self.0 ^ (ONES * b as u64)))
    }

    /// Slots whose tophash is `EMPTY_REST` (0) or `EMPTY_ONE` (1).
    #[inline(always)]
    pub fn match_empty(self) -> BitMask {
        Self::compress(Self::zero_bytes(self.0 & !ONES))
    }
}
