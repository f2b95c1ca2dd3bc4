//! The map's source of Go's `fastrand()` draws.
//!
//! gomap draws exactly where Go's runtime calls `fastrand()`/`fastrand64()` for a
//! map (see `../shared/spec/go-fidelity.md`, items 1–6). Draws come first from an
//! injectable external source (the Python `rand=` argument) and, once that runs
//! out, from the map's own generator: Go's wyrand step, kept in an atomic so that
//! readers (iteration start, NaN lookups) can draw without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A source of draws supplied from outside (tests, the Python `rand=` argument).
/// `None` means the source is exhausted; the map then uses its own generator.
pub trait ExternalDraws: Send {
    fn next_draw(&mut self) -> Option<u64>;
    /// The source itself, so that its owner can reach it (the Python layer
    /// shows a Python source to the garbage collector).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<I: Iterator<Item = u64> + Send + 'static> ExternalDraws for I {
    fn next_draw(&mut self) -> Option<u64> {
        self.next()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub struct FastRand {
    state: AtomicU64,
    has_external: AtomicBool,
    external: Mutex<Option<Box<dyn ExternalDraws>>>,
}

impl FastRand {
    pub fn new(seed: u64, external: Option<Box<dyn ExternalDraws>>) -> FastRand {
        FastRand {
            state: AtomicU64::new(seed),
            has_external: AtomicBool::new(external.is_some()),
            external: Mutex::new(external),
        }
    }

    /// A generator seeded from the operating system (std's per-process random keys
    /// mixed with a global counter, so two maps never share a sequence).
    pub fn from_os(external: Option<Box<dyn ExternalDraws>>) -> FastRand {
        use std::hash::{BuildHasher, Hasher};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        FastRand::new(h.finish(), external)
    }

    /// A draw from the own generator only, never from the external source (for
    /// work that is not a Go operation, such as `shrink`).
    pub fn fastrand_own(&self) -> u32 {
        self.own() as u32
    }

    /// Go's wyrand step (`runtime.fastrand64` on 64-bit platforms).
    fn own(&self) -> u64 {
        let s = self.state.fetch_add(0xa0761d6478bd642f, Ordering::Relaxed).wrapping_add(0xa0761d6478bd642f);
        let r = (s as u128) * ((s ^ 0xe7037ed1a0b428db) as u128);
        ((r >> 64) as u64) ^ (r as u64)
    }

    fn draw(&self) -> u64 {
        if self.has_external.load(Ordering::Relaxed) {
            // try_lock: a draw never blocks. Two readers starting iterations at the
            // same instant race anyway; the loser draws from the own generator.
            if let Ok(mut ext) = self.external.try_lock() {
                if let Some(src) = ext.as_mut() {
                    if let Some(v) = src.next_draw() {
                        return v;
                    }
                }
                *ext = None;
                self.has_external.store(false, Ordering::Relaxed);
            }
        }
        self.own()
    }

    /// Calls `f` on the external source if there is one and it is not busy
    /// (never blocks: used by the garbage collector).
    pub fn with_external(&self, f: impl FnOnce(&dyn ExternalDraws)) {
        if let Ok(ext) = self.external.try_lock() {
            if let Some(src) = ext.as_deref() {
                f(src);
            }
        }
    }

    /// Drops the external source; draws continue from the own generator.
    pub fn drop_external(&self) -> Option<Box<dyn ExternalDraws>> {
        let taken = self.external.try_lock().ok().and_then(|mut e| e.take());
        self.has_external.store(false, Ordering::Relaxed);
        taken
    }

    /// `fastrand()`: the low 32 bits of a draw.
    pub fn fastrand(&self) -> u32 {
        self.draw() as u32
    }

    /// `fastrand64()`.
    pub fn fastrand64(&self) -> u64 {
        self.draw()
    }

    /// A fresh OS-seeded generator for a copy of a map: a copy never consumes the
    /// original's external draws.
    pub fn fork(&self) -> FastRand {
        FastRand::from_os(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_first_then_own() {
        let r = FastRand::new(1, Some(Box::new(vec![5u64, 1 << 40 | 9].into_iter())));
        assert_eq!(r.fastrand(), 5);
        assert_eq!(r.fastrand64(), 1 << 40 | 9);
        let a = r.fastrand64();
        let b = r.fastrand64();
        assert_ne!(a, b);
    }
}
