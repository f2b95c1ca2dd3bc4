//! Go's portable hash functions (`runtime/hash64.go`, `runtime/alg.go`), the ones
//! Go uses when the CPU has no AES instructions or when started with
//! `GODEBUG=cpu.aes=off`. Reproducing them bit for bit is what makes every bucket
//! index and tophash byte of gomap equal to Go's, given Go's `hashkey` and `hash0`.
//!
//! Up to Go 1.22 only `hashkey[0]` takes part in the fallback hashes, mixed with
//! the constants `m1..m4`; from Go 1.23 `hashkey[0]` alone seeds them and
//! `hashkey[1..3]` take the place of `m2..m4`. [`FallbackKey`] holds the four
//! words one release mixes in, so both shapes run the same code.

use crate::rand::FastRand;
use crate::release::GoRelease;

const M1: u64 = 0xa0761d6478bd642f;
const M2: u64 = 0xe7037ed1a0b428db;
const M3: u64 = 0x8ebc6af09c88c6e3;
const M4: u64 = 0x589965cc75374cc3;
const M5: u64 = 0x1d8e4e27c47d124f;

/// `c0` and `c1` of `alg.go` on a 64-bit platform (the ±0 and NaN float hashes).
pub const C0: u64 = 33054211828000289;
pub const C1: u64 = 23344194077549503;

/// The words Go's fallback hash mixes in, for one release: `k0` is XORed into
/// the seed, `k1..k3` into the data words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackKey {
    k0: u64,
    k1: u64,
    k2: u64,
    k3: u64,
    /// NaN keys draw 64 bits (`rand()`, Go 1.22+) rather than 32 (`fastrand()`).
    rand64: bool,
}

impl FallbackKey {
    pub fn new(hashkey: [u64; 4], go: GoRelease) -> FallbackKey {
        let [h0, h1, h2, h3] = hashkey;
        let rand64 = go.rand64();
        if go.keyed_fallback_hash() {
            // Go 1.23+ `hash64.go`: `seed ^= hashkey[0]`, `r8(p)^hashkey[1]`, ...
            FallbackKey { k0: h0, k1: h1, k2: h2, k3: h3, rand64 }
        } else {
            // Go 1.19-1.22: `seed ^= hashkey[0] ^ m1`, `r8(p)^m2`, ...
            FallbackKey { k0: h0 ^ M1, k1: M2, k2: M3, k3: M4, rand64 }
        }
    }

    /// The draw `f64hash`/`f32hash` mix into the hash of a NaN.
    #[inline]
    pub fn nan_draw(&self, rand: &FastRand) -> u64 {
        if self.rand64 {
            rand.fastrand64() // uintptr(rand())
        } else {
            rand.fastrand() as u64 // uintptr(fastrand())
        }
    }
}

#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let r = (a as u128) * (b as u128);
    ((r >> 64) as u64) ^ (r as u64)
}

#[inline(always)]
fn r4(p: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(p[at..at + 4].try_into().unwrap()) as u64
}

#[inline(always)]
fn r8(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().unwrap())
}

/// `memhashFallback(p, seed, len(p))`.
pub fn memhash(p: &[u8], seed: u64, key: &FallbackKey) -> u64 {
    let s = p.len();
    let mut seed = seed ^ key.k0;
    let (a, b);
    if s == 0 {
        return seed;
    } else if s < 4 {
        let mut x = p[0] as u64;
        x |= (p[s >> 1] as u64) << 8;
        x |= (p[s - 1] as u64) << 16;
        a = x;
        b = 0;
    } else if s == 4 {
        a = r4(p, 0);
        b = a;
    } else if s < 8 {
        a = r4(p, 0);
        b = r4(p, s - 4);
    } else if s == 8 {
        a = r8(p, 0);
        b = a;
    } else if s <= 16 {
        a = r8(p, 0);
        b = r8(p, s - 8);
    } else {
        let mut l = s;
        let mut off = 0;
        if l > 48 {
            let mut seed1 = seed;
            let mut seed2 = seed;
            while l > 48 {
                seed = mix(r8(p, off) ^ key.k1, r8(p, off + 8) ^ seed);
                seed1 = mix(r8(p, off + 16) ^ key.k2, r8(p, off + 24) ^ seed1);
                seed2 = mix(r8(p, off + 32) ^ key.k3, r8(p, off + 40) ^ seed2);
                off += 48;
                l -= 48;
            }
            seed ^= seed1 ^ seed2;
        }
        while l > 16 {
            seed = mix(r8(p, off) ^ key.k1, r8(p, off + 8) ^ seed);
            off += 16;
            l -= 16;
        }
        a = r8(p, off + l - 16);
        b = r8(p, off + l - 8);
    }
    mix(M5 ^ s as u64, mix(a ^ key.k1, b ^ seed))
}

/// `memhash32Fallback`: the hasher of 4-byte keys (int32, uint32).
#[inline(always)]
pub fn memhash32(v: u32, seed: u64, key: &FallbackKey) -> u64 {
    let a = v as u64;
    mix(M5 ^ 4, mix(a ^ key.k1, a ^ seed ^ key.k0))
}

/// `memhash64Fallback`: the hasher of 8-byte keys (int64, uint64).
#[inline(always)]
pub fn memhash64(v: u64, seed: u64, key: &FallbackKey) -> u64 {
    mix(M5 ^ 8, mix(v ^ key.k1, v ^ seed ^ key.k0))
}

/// `f64hash`. `nan_draw` is called only for a NaN, where Go calls `fastrand()`
/// (`rand()` from Go 1.22: see [`FallbackKey::nan_draw`]).
#[inline]
pub fn f64hash(f: f64, seed: u64, key: &FallbackKey, nan_draw: impl FnOnce() -> u64) -> u64 {
    if f == 0.0 {
        C1.wrapping_mul(C0 ^ seed) // +0, -0
    } else if f.is_nan() {
        C1.wrapping_mul(C0 ^ seed ^ nan_draw()) // any kind of NaN
    } else {
        memhash64(f.to_bits(), seed, key)
    }
}

/// `f32hash`, as [`f64hash`].
#[inline]
pub fn f32hash(f: f32, seed: u64, key: &FallbackKey, nan_draw: impl FnOnce() -> u64) -> u64 {
    if f == 0.0 {
        C1.wrapping_mul(C0 ^ seed)
    } else if f.is_nan() {
        C1.wrapping_mul(C0 ^ seed ^ nan_draw())
    } else {
        memhash32(f.to_bits(), seed, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_hashes_agree_with_memhash() {
        for go in GoRelease::ALL {
            let hk = &FallbackKey::new([0x1234_5678_9abc_def1, 3, 5, 7], go);
            for &v in &[0u64, 1, 0xdead_beef, u64::MAX] {
                assert_eq!(memhash64(v, 77, hk), memhash(&v.to_le_bytes(), 77, hk));
                let w = v as u32;
                assert_eq!(memhash32(w, 77, hk), memhash(&w.to_le_bytes(), 77, hk));
            }
        }
    }

    #[test]
    fn go123_keys_the_hash_with_all_four_words() {
        // Before 1.23 hashkey[1..3] take no part; from 1.23 each changes every hash,
        // and a 1.23 key whose words equal m1^h0, m2, m3, m4 hashes as 1.19 does.
        let hk = [0x1234_5678_9abc_def1, 0x1111, 0x2223, 0x3335];
        let data: Vec<u8> = (0..100u8).collect();
        let old = FallbackKey::new(hk, GoRelease::Go122);
        let new = FallbackKey::new(hk, GoRelease::Go123);
        for w in 1..4 {
            let mut other = hk;
            other[w] ^= 0x40;
            assert_eq!(memhash(&data, 9, &FallbackKey::new(other, GoRelease::Go119)), memhash(&data, 9, &old));
            assert_ne!(memhash(&data, 9, &FallbackKey::new(other, GoRelease::Go124)), memhash(&data, 9, &new));
        }
        assert_ne!(memhash64(5, 9, &old), memhash64(5, 9, &new));
        let as_old = FallbackKey::new([hk[0] ^ M1, M2, M3, M4], GoRelease::Go123);
        assert_eq!(memhash(&data, 9, &as_old), memhash(&data, 9, &old));
        assert_eq!(memhash32(5, 9, &as_old), memhash32(5, 9, &old));
    }

    #[test]
    fn every_length_branch_depends_on_every_byte() {
        // Lengths cover s<4, ==4, <8, ==8, <=16, <=48 and >48 (the three-lane loop).
        for len in [1usize, 3, 4, 7, 8, 15, 16, 17, 33, 48, 49, 97, 200] {
            let base: Vec<u8> = (0..len as u8).collect();
            let hk = &FallbackKey::new([3, 5, 7, 9], GoRelease::Go119);
            let h0 = memhash(&base, 5, hk);
            // s<4 reads only bytes 0, s/2 and s-1, as Go does.
            let probes: Vec<usize> = if len < 4 { vec![0, len >> 1, len - 1] } else { (0..len).collect() };
            for i in probes {
                let mut m = base.clone();
                m[i] ^= 0x40;
                assert_ne!(memhash(&m, 5, hk), h0, "len {len} byte {i}");
            }
        }
    }

    #[test]
    fn zero_floats_hash_alike_and_nan_draws() {
        let mut draws = 0;
        let k = &FallbackKey::new([1, 3, 5, 7], GoRelease::Go119);
        assert_eq!(f64hash(0.0, 9, k, || unreachable!()), f64hash(-0.0, 9, k, || unreachable!()));
        assert_eq!(f32hash(0.0, 9, k, || unreachable!()), f32hash(-0.0, 9, k, || unreachable!()));
        let a = f64hash(f64::NAN, 9, k, || {
            draws += 1;
            7
        });
        let b = f64hash(f64::NAN, 9, k, || {
            draws += 1;
            8
        });
        assert_ne!(a, b);
        assert_eq!(draws, 2);
    }

    #[test]
    fn nan_draw_width_follows_the_release() {
        let wide = 0xdead_beef_0000_0007u64;
        for go in GoRelease::ALL {
            let r = FastRand::new(1, Some(Box::new(vec![wide].into_iter())));
            let want = if go >= GoRelease::Go122 { wide } else { 7 };
            assert_eq!(FallbackKey::new([1, 3, 5, 7], go).nan_draw(&r), want, "{go:?}");
        }
    }
}
