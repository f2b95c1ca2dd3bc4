//! The flag word: Go's `hmap.flags` byte, made atomic, plus a count of readers.
//!
//! Go detects misuse on a best-effort basis: a write sets `hashWriting`, and a
//! reader or writer that sees it set calls `fatal`. gomap makes the detection
//! exact and turns it into an exception instead of a crash: a write claims the
//! word only when no write and no read is in progress, and a read (lookup,
//! iteration step, snapshot) only when no write is. Nobody ever waits, so no
//! lock can deadlock against the GIL; and because the claim is exact, a `&mut`
//! to the map never coexists with a `&` — misuse from threads is an error, not
//! undefined behaviour.

use std::sync::atomic::{AtomicU32, Ordering};

/// There is an iterator using buckets.
pub const ITERATOR: u32 = 1;
/// There is an iterator using oldbuckets.
pub const OLD_ITERATOR: u32 = 2;
/// A goroutine (here: a thread, or re-entrant Python code) is writing to the map.
pub const HASH_WRITING: u32 = 4;
/// The current map growth is to a new map of the same size.
pub const SAME_SIZE_GROW: u32 = 8;
/// Go's flag bits, as `snapshot()["flags"]` shows them.
pub const GO_FLAGS: u32 = 0xff;
const READER: u32 = 1 << 8;

/// What a refused claim means, in Go's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misuse {
    ConcurrentWrites,
    ReadAndWrite,
    IterationAndWrite,
}

impl Misuse {
    pub fn message(self) -> &'static str {
        match self {
            Misuse::ConcurrentWrites => "concurrent map writes",
            Misuse::ReadAndWrite => "concurrent map read and map write",
            Misuse::IterationAndWrite => "concurrent map iteration and map write",
        }
    }
}

#[derive(Default)]
pub struct FlagWord(AtomicU32);

impl FlagWord {
    pub fn new() -> FlagWord {
        FlagWord(AtomicU32::new(0))
    }

    #[inline]
    pub fn has(&self, bits: u32) -> bool {
        self.0.load(Ordering::Relaxed) & bits != 0
    }

    #[inline]
    pub fn set(&self, bits: u32) {
        self.0.fetch_or(bits, Ordering::AcqRel);
    }

    #[inline]
    pub fn clear(&self, bits: u32) {
        self.0.fetch_and(!bits, Ordering::AcqRel);
    }

    /// Go's flag byte without `HASH_WRITING` (which a snapshot never shows).
    pub fn go_flags(&self) -> u8 {
        (self.0.load(Ordering::Acquire) & GO_FLAGS & !HASH_WRITING) as u8
    }

    /// Sets `HASH_WRITING` if no write and no read is in progress.
    #[inline]
    pub fn begin_write(&self) -> Result<(), Misuse> {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & HASH_WRITING != 0 {
                return Err(Misuse::ConcurrentWrites);
            }
            if cur >= READER {
                return Err(Misuse::ReadAndWrite);
            }
            match self.0.compare_exchange_weak(cur, cur | HASH_WRITING, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Ends the write claim. No read-modify-write is needed: while
    /// `HASH_WRITING` is set nobody else changes the word (a refused claim leaves
    /// it as it was, and only the writer sets or clears the other flag bits), so a
    /// plain store of the word without the bit is exact.
    #[inline]
    pub fn end_write(&self) {
        let cur = self.0.load(Ordering::Relaxed);
        debug_assert!(cur & HASH_WRITING != 0);
        self.0.store(cur & !HASH_WRITING, Ordering::Release);
    }

    /// The check of a read made while attached to the interpreter, with the GIL
    /// held, that runs no Python code, allocates no GC-tracked object and
    /// releases no object until it ends (see `Shared::read_attached`): refuses
    /// if a write is in progress, and counts nothing.
    #[inline]
    pub fn check_no_writer(&self, iterating: bool) -> Result<(), Misuse> {
        if self.0.load(Ordering::Acquire) & HASH_WRITING != 0 {
            return Err(if iterating { Misuse::IterationAndWrite } else { Misuse::ReadAndWrite });
        }
        Ok(())
    }

    /// Counts a reader in if no write is in progress.
    #[inline]
    pub fn begin_read(&self, iterating: bool) -> Result<(), Misuse> {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & HASH_WRITING != 0 {
                return Err(if iterating { Misuse::IterationAndWrite } else { Misuse::ReadAndWrite });
            }
            if cur >= u32::MAX - READER {
                // 2^24 simultaneous readers: refuse rather than overflow.
                return Err(Misuse::ReadAndWrite);
            }
            match self.0.compare_exchange_weak(cur, cur + READER, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    #[inline]
    pub fn end_read(&self) {
        self.0.fetch_sub(READER, Ordering::Release);
    }
}

/// Releases a claim on drop, so an early return or an unwinding panic never
/// leaves the map marked as being written or read.
pub struct WriteClaim<'a>(&'a FlagWord);
pub struct ReadClaim<'a>(&'a FlagWord);

impl FlagWord {
    pub fn write(&self) -> Result<WriteClaim<'_>, Misuse> {
        self.begin_write().map(|_| WriteClaim(self))
    }
    pub fn read(&self, iterating: bool) -> Result<ReadClaim<'_>, Misuse> {
        self.begin_read(iterating).map(|_| ReadClaim(self))
    }
}

impl Drop for WriteClaim<'_> {
    fn drop(&mut self) {
        self.0.end_write();
    }
}

impl Drop for ReadClaim<'_> {
    fn drop(&mut self) {
        self.0.end_read();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_exclude_each_other() {
        let f = FlagWord::new();
        let r1 = f.read(false).unwrap();
        let r2 = f.read(true).unwrap();
        assert_eq!(f.write().err(), Some(Misuse::ReadAndWrite));
        drop(r1);
        drop(r2);
        let w = f.write().unwrap();
        assert_eq!(f.write().err(), Some(Misuse::ConcurrentWrites));
        assert_eq!(f.read(false).err(), Some(Misuse::ReadAndWrite));
        assert_eq!(f.read(true).err(), Some(Misuse::IterationAndWrite));
        f.set(ITERATOR | SAME_SIZE_GROW);
        assert_eq!(f.go_flags(), 9);
        assert_eq!(f.check_no_writer(true).err(), Some(Misuse::IterationAndWrite));
        drop(w);
        assert!(f.check_no_writer(false).is_ok());
        assert!(f.read(false).is_ok());
        assert!(f.has(SAME_SIZE_GROW));
        assert!(f.has(ITERATOR));
    }
}
