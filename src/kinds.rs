//! Key and value kinds: what a bucket stores inline and how Go hashes it.
//!
//! Each kind names the Go type whose map it reproduces (`map[int64]V`,
//! `map[string]V`, …), its size in a Go bucket (for `stats()["bytes"]`), and the
//! properties `maptype` carries in Go: `reflexivekey` (false for floats, since
//! NaN != NaN) and `needkeyupdate` (true for floats: +0.0 and -0.0 are one key and
//! an assignment stores the key it was given).

use crate::hash::{self, FallbackKey};
use crate::rand::FastRand;
use std::convert::Infallible;

pub trait MapKey: Sized + 'static {
    /// What an equality test can fail with (`Infallible` for typed kinds; a Python
    /// exception for `object` keys).
    type Error;
    const NAME: &'static str;
    /// `t.keysize` in Go's bucket layout.
    const GO_SIZE: usize;
    /// Whether Go's bucket for this key holds pointers (`t.bucket.ptrdata != 0`).
    const GO_POINTERS: bool;
    /// `t.reflexivekey()`: k == k for every k.
    const REFLEXIVE: bool;
    /// `t.needkeyupdate()`.
    const NEED_KEY_UPDATE: bool;

    /// `t.hasher(&k, seed)` under the release's fallback key; NaN floats draw from
    /// `rand` as `f64hash` does.
    fn hash(&self, seed: u64, key: &FallbackKey, rand: &FastRand) -> u64;
    /// `t.key.equal(a, b)`.
    fn equal(&self, other: &Self) -> Result<bool, Self::Error>;
    /// `t.key.equal(k, k)` (false only for NaN).
    fn self_equal(&self) -> bool {
        true
    }
    /// A second owner of the key, for an evacuation that must leave the key in the
    /// old bucket because an iterator may still read it there.
    fn clone_key(&self) -> Self;
}

pub trait MapValue: Sized + 'static {
    const NAME: &'static str;
    const GO_SIZE: usize;
    const GO_POINTERS: bool;
}

macro_rules! int_key {
    ($t:ty, $name:literal, $size:literal, $hash:expr) => {
        impl MapKey for $t {
            type Error = Infallible;
            const NAME: &'static str = $name;
            const GO_SIZE: usize = $size;
            const GO_POINTERS: bool = false;
            const REFLEXIVE: bool = true;
            const NEED_KEY_UPDATE: bool = false;
            #[inline(always)]
            fn hash(&self, seed: u64, key: &FallbackKey, _rand: &FastRand) -> u64 {
                let f: fn($t, u64, &FallbackKey) -> u64 = $hash;
                f(*self, seed, key)
            }
            #[inline(always)]
            fn equal(&self, other: &Self) -> Result<bool, Infallible> {
                Ok(self == other)
            }
            #[inline(always)]
            fn clone_key(&self) -> Self {
                *self
            }
        }
    };
}

int_key!(i64, "int64", 8, |k, s, h| hash::memhash64(k as u64, s, h));
int_key!(u64, "uint64", 8, |k, s, h| hash::memhash64(k, s, h));
int_key!(i32, "int32", 4, |k, s, h| hash::memhash32(k as u32, s, h));
int_key!(u32, "uint32", 4, |k, s, h| hash::memhash32(k, s, h));

impl MapKey for f64 {
    type Error = Infallible;
    const NAME: &'static str = "float64";
    const GO_SIZE: usize = 8;
    const GO_POINTERS: bool = false;
    const REFLEXIVE: bool = false;
    const NEED_KEY_UPDATE: bool = true;
    #[inline(always)]
    fn hash(&self, seed: u64, key: &FallbackKey, rand: &FastRand) -> u64 {
        hash::f64hash(*self, seed, key, || key.nan_draw(rand))
    }
    #[inline(always)]
    fn equal(&self, other: &Self) -> Result<bool, Infallible> {
        Ok(self == other)
    }
    fn self_equal(&self) -> bool {
        !self.is_nan()
    }
    fn clone_key(&self) -> Self {
        *self
    }
}

impl MapKey for f32 {
    type Error = Infallible;
    const NAME: &'static str = "float32";
    const GO_SIZE: usize = 4;
    const GO_POINTERS: bool = false;
    const REFLEXIVE: bool = false;
    const NEED_KEY_UPDATE: bool = true;
    #[inline(always)]
    fn hash(&self, seed: u64, key: &FallbackKey, rand: &FastRand) -> u64 {
        hash::f32hash(*self, seed, key, || key.nan_draw(rand))
    }
    #[inline(always)]
    fn equal(&self, other: &Self) -> Result<bool, Infallible> {
        Ok(self == other)
    }
    fn self_equal(&self) -> bool {
        !self.is_nan()
    }
    fn clone_key(&self) -> Self {
        *self
    }
}

/// `map[string]V`: the key is hashed as Go hashes a string, the memhash of its
/// UTF-8 bytes. Stored as a 16-byte fat pointer, like Go's string header. Go's
/// `needkeyupdate` is true for strings, but equal strings are byte-identical, so
/// the update is skipped as unobservable.
impl MapKey for Box<str> {
    type Error = Infallible;
    const NAME: &'static str = "string";
    const GO_SIZE: usize = 16;
    const GO_POINTERS: bool = true;
    const REFLEXIVE: bool = true;
    const NEED_KEY_UPDATE: bool = false;
    #[inline(always)]
    fn hash(&self, seed: u64, key: &FallbackKey, _rand: &FastRand) -> u64 {
        hash::memhash(self.as_bytes(), seed, key)
    }
    #[inline(always)]
    fn equal(&self, other: &Self) -> Result<bool, Infallible> {
        Ok(self == other)
    }
    fn clone_key(&self) -> Self {
        self.clone()
    }
}

/// `bytes` keys: hashed like a Go string of the same bytes (Go has no `[]byte` keys).
impl MapKey for Box<[u8]> {
    type Error = Infallible;
    const NAME: &'static str = "bytes";
    const GO_SIZE: usize = 16;
    const GO_POINTERS: bool = true;
    const REFLEXIVE: bool = true;
    const NEED_KEY_UPDATE: bool = false;
    #[inline(always)]
    fn hash(&self, seed: u64, key: &FallbackKey, _rand: &FastRand) -> u64 {
        hash::memhash(self, seed, key)
    }
    #[inline(always)]
    fn equal(&self, other: &Self) -> Result<bool, Infallible> {
        Ok(self == other)
    }
    fn clone_key(&self) -> Self {
        self.clone()
    }
}

impl MapValue for i64 {
    const NAME: &'static str = "int64";
    const GO_SIZE: usize = 8;
    const GO_POINTERS: bool = false;
}

impl MapValue for f64 {
    const NAME: &'static str = "float64";
    const GO_SIZE: usize = 8;
    const GO_POINTERS: bool = false;
}
