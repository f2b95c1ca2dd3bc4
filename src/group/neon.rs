//! NEON group: the 8 tophash bytes as a `uint8x8_t`.

use super::BitMask;
use core::arch::aarch64::*;

#[derive(Clone, Copy)]
pub struct Group(uint8x8_t);

impl Group {
    pub const NAME: &'static str = "neon";

    #[inline(always)]
    pub fn load(tophash: &[u8; 8]) -> Group {
        // SAFETY: NEON is enabled (cfg) and `vld1_u8` reads exactly the 8 bytes of `tophash`.
        Group(unsafe { vld1_u8(tophash.as_ptr()) })
    }

    /// Each lane of `cmp` is 0xff or 0; gather one bit per lane.
    #[inline(always)]
    fn compress(cmp: uint8x8_t) -> BitMask {
        // SAFETY: NEON is enabled (cfg); register-only operations.
        let lanes = unsafe { vget_lane_u64::<0>(vreinterpret_u64_u8(cmp)) };
        BitMask(((lanes & 0x8080_8080_8080_8080) >> 7).wrapping_mul(0x0102_0408_1020_4080).wrapping_shr(56) as u8)
    }

    #[inline(always)]
    pub fn match_byte(self, b: u8) -> BitMask {
        // SAFETY: NEON is enabled (cfg); register-only operations.
        Self::compress(unsafe { vceq_u8(self.0, vdup_n_u8(b)) })
    }

    /// Slots whose tophash is `EMPTY_REST` (0) or `EMPTY_ONE` (1).
    #[inline(always)]
    pub fn match_empty(self) -> BitMask {
        // SAFETY: NEON is enabled (cfg); register-only operations.
        Self::compress(unsafe { vcle_u8(self.0, vdup_n_u8(1)) })
    }
}
