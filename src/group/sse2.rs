//! SSE2 group: the 8 tophash bytes in the low half of an XMM register.

use super::BitMask;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub struct Group(__m128i);

impl Group {
    pub const NAME: &'static str = "sse2";

    #[inline(always)]
    pub fn load(tophash: &[u8; 8]) -> Group {
        // SAFETY: SSE2 is enabled (cfg) and `_mm_loadl_epi64` reads exactly 8 bytes,
        // which `tophash` provides; it has no alignment requirement.
        Group(unsafe { _mm_loadl_epi64(tophash.as_ptr().cast()) })
    }

    #[inline(always)]
    pub fn match_byte(self, b: u8) -> BitMask {
        // SAFETY: SSE2 is enabled (cfg); these intrinsics only touch registers.
        let m = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8))) };
        BitMask(m as u8)
    }

    /// Slots whose tophash is `EMPTY_REST` (0) or `EMPTY_ONE` (1): `max(x, 1) == 1`.
    #[inline(always)]
    pub fn match_empty(self) -> BitMask {
        // SAFETY: as above.
        let m = unsafe {
            let one = _mm_set1_epi8(1);
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(self.0, one), one))
        };
        BitMask(m as u8)
    }
}
