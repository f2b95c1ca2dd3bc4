//! Go's classic runtime map (`runtime/map.go` of Go 1.19–1.24), ported function by
//! function with Go's names so the two can be read side by side. What differs
//! between releases is a field of the map (`HMap::go`, see `crate::release`).
//!
//! # Layout
//!
//! A map is an array of 2^B buckets. Each bucket holds up to 8 key/elem pairs,
//! stored inline (`tophash[8]`, then `keys[8]`, then `elems[8]`, then the
//! `overflow` link — Go's `bmap` layout, which packs without padding). The low-order
//! bits of the hash select a bucket; the high-order byte, the *tophash*, tells the
//! entries of a bucket apart without comparing keys. A bucket that fills up gets
//! overflow buckets chained behind it. For B >= 4, `makeBucketArray` allocates
//! 2^(B-4) extra buckets (rounded up to Go's allocation size class) behind the
//! array; `newoverflow` hands those out first, then allocates.
//!
//! When the average load exceeds 6.5 entries per bucket (`over_load_factor`; 6.0
//! in Go 1.21: the release is a field of the map, see `crate::release`), the
//! table doubles. When it has too many overflow buckets for its size
//! (`too_many_overflow_buckets`, noverflow >= 2^min(B, 15)) it is rebuilt at the
//! same size (`SAME_SIZE_GROW`), which packs out the holes that deletes left.
//! Growth is incremental: `hash_grow` only installs the new array and keeps the
//! old one in `oldbuckets`; every later assign and delete evacuates the old bucket
//! it touches plus the `nevacuate`-th one (`grow_work`), so no single insert pays
//! for copying the table. Reads look in the old bucket while it is not evacuated.
//! When `advance_evacuation_mark` has passed every old bucket, the old array is
//! dropped. An old bucket i evacuates to new bucket i ("X") or i + 2^oldB ("Y").
//!
//! # Tophash states
//!
//! ```text
//!   EMPTY_REST (0)       empty, and so is every later slot and overflow bucket
//!   EMPTY_ONE (1)        empty
//!   EVACUATED_X (2)      (old array) entry moved to the first half of the new array
//!   EVACUATED_Y (3)      (old array) entry moved to the second half
//!   EVACUATED_EMPTY (4)  (old array) slot was empty when its bucket was evacuated
//!   MIN_TOP_HASH (5)..   a live entry; a hash whose top byte is < 5 gets +5
//!
//!   insert:  EMPTY_* -> top          delete: top -> EMPTY_ONE, and a run of
//!   evacuate: top -> EVACUATED_X|Y            EMPTY_ONE reaching the end of the
//!             EMPTY_* -> EVACUATED_EMPTY      chain -> EMPTY_REST
//! ```
//!
//! An old bucket counts as evacuated when its first tophash is 2, 3 or 4.
//!
//! # Iterators
//!
//! An iterator walks the bucket array it started on from a random bucket and a
//! random slot offset. If the map grows under it, it keeps walking its own
//! (now old) array; entries there that were evacuated are looked up again in the
//! current table (`mapaccess_k`), so deletes and updates are seen. Started in the
//! middle of a grow, it reads not-yet-evacuated old buckets and keeps only the
//! keys that belong to the new bucket it is on (`check_bucket`).
//!
//! # Ownership in Rust
//!
//! Go leaves stale bytes in evacuated and deleted slots and lets the GC sort it
//! out; here a slot owns its key and elem exactly when its tophash is >=
//! `MIN_TOP_HASH`. Evacuation moves both out of the old slot. The one exception
//! is Go's `OLD_ITERATOR` case: an iterator may still read an evacuated old slot's
//! key, so evacuation leaves a clone there (for kinds that own memory) and marks
//! the old bucket in `Table::retained`, so that dropping the table frees it.
//! Tables are shared (`Arc`) between the map and its iterators, so an iterator
//! keeps its array alive after the map has let it go, as Go's GC does.
//!
//! The `hashWriting` flag lives outside `HMap`, in the [`FlagWord`] that guards
//! it (see `crate::flags`): the caller holds the right guard before calling in.

use crate::flags::{FlagWord, ITERATOR, OLD_ITERATOR, SAME_SIZE_GROW};
use crate::group::Group;
use crate::hash::FallbackKey;
use crate::kinds::{MapKey, MapValue};
use crate::rand::FastRand;
use crate::release::GoRelease;
use std::alloc::{alloc_zeroed, Layout};
use std::cell::UnsafeCell;
use std::mem::{needs_drop, MaybeUninit};
use std::ptr;
use std::sync::Arc;

pub const BUCKET_CNT_BITS: u8 = 3;
pub const BUCKET_CNT: usize = 1 << BUCKET_CNT_BITS;
/// `loadFactorDen`; `loadFactorNum` depends on the release
/// ([`GoRelease::load_factor_num`]: 13, or 12 in Go 1.21).
pub const LOAD_FACTOR_DEN: usize = 2;

pub const EMPTY_REST: u8 = 0;
pub const EMPTY_ONE: u8 = 1;
pub const EVACUATED_X: u8 = 2;
pub const EVACUATED_Y: u8 = 3;
pub const EVACUATED_EMPTY: u8 = 4;
pub const MIN_TOP_HASH: u8 = 5;

const NO_CHECK: usize = 1 << (usize::BITS - 1);

/// Go's `maxAlloc` on 64-bit platforms: `makemap` treats a hint whose buckets
/// would need more than this as 0.
const MAX_ALLOC: usize = 1 << 48;

/// Memory for a bucket array or an overflow bucket could not be allocated. Every
/// operation that reports it leaves the map holding the same entries as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

/// Why a write failed: the key's equality test failed (`object` keys), or memory
/// ran out. Either way the map holds the same entries as before.
#[derive(Debug)]
pub enum MapError<E> {
    Key(E),
    Alloc,
}

impl<E> From<E> for MapError<E> {
    fn from(e: E) -> Self {
        MapError::Key(e)
    }
}

impl<E> MapError<E> {
    fn alloc(_: AllocError) -> Self {
        MapError::Alloc
    }
}

/// A zeroed heap block for `n` values of `T` (all-zero must be a valid `T`).
fn alloc_zeroed_array<T>(n: usize) -> Result<*mut T, AllocError> {
    let layout = Layout::array::<T>(n).map_err(|_| AllocError)?;
    if layout.size() == 0 {
        return Err(AllocError);
    }
    // SAFETY: the layout has a non-zero size (checked above).
    let p = unsafe { alloc_zeroed(layout) } as *mut T;
    if p.is_null() {
        Err(AllocError)
    } else {
        Ok(p)
    }
}

#[inline(always)]
pub fn is_empty(x: u8) -> bool {
    x <= EMPTY_ONE
}

#[inline(always)]
pub fn tophash(hash: u64) -> u8 {
    let top = (hash >> 56) as u8;
    if top < MIN_TOP_HASH {
        top + MIN_TOP_HASH
    } else {
        top
    }
}

#[inline(always)]
fn bucket_shift(b: u8) -> usize {
    1usize << (b & (usize::BITS as u8 - 1))
}

#[inline(always)]
fn bucket_mask(b: u8) -> usize {
    bucket_shift(b) - 1
}

pub fn over_load_factor(count: usize, b: u8, go: GoRelease) -> bool {
    count > BUCKET_CNT && count > go.load_factor_num() * (bucket_shift(b) / LOAD_FACTOR_DEN)
}

pub fn too_many_overflow_buckets(noverflow: u16, b: u8) -> bool {
    let b = b.min(15);
    noverflow >= 1u16 << (b & 15)
}

/// Go's bucket size for this key/elem kind (`t.bucketsize`).
pub const fn go_bucket_size(keysize: usize, elemsize: usize) -> usize {
    BUCKET_CNT + BUCKET_CNT * keysize + BUCKET_CNT * elemsize + 8
}

/// Go 1.19's `roundupsize`: the allocation size class (`sizeclasses.go`) or, for
/// large objects, whole 8 KiB pages.
pub fn roundupsize(size: usize) -> usize {
    const CLASS_TO_SIZE: [usize; 68] = [
        0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416,
        448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456,
        4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432,
        19072, 20480, 21760, 24576, 27264, 28672, 32768,
    ];
    if size < 32768 {
        CLASS_TO_SIZE.iter().copied().find(|&c| c >= size).unwrap_or(32768)
    } else {
        size.div_ceil(8192) * 8192
    }
}

#[repr(C)]
pub struct Bucket<K, V> {
    pub tophash: [u8; BUCKET_CNT],
    keys: [MaybeUninit<K>; BUCKET_CNT],
    elems: [MaybeUninit<V>; BUCKET_CNT],
    overflow: *mut Bucket<K, V>,
}

impl<K, V> Bucket<K, V> {
    /// # Safety
    /// `b` points to a live bucket whose slot `i` holds a key (tophash >=
    /// `MIN_TOP_HASH`, or a retained evacuated key), and no `&mut` to it exists for `'a`.
    #[inline(always)]
    unsafe fn key<'a>(b: *const Self, i: usize) -> &'a K {
        // SAFETY: per the contract above.
        unsafe { (*ptr::addr_of!((*b).keys[i])).assume_init_ref() }
    }

    /// # Safety
    /// As [`Bucket::key`], for the elem.
    #[inline(always)]
    unsafe fn elem<'a>(b: *const Self, i: usize) -> &'a V {
        // SAFETY: per the contract above.
        unsafe { (*ptr::addr_of!((*b).elems[i])).assume_init_ref() }
    }

    /// # Safety
    /// `b` points to a live bucket and slot `i` is in range.
    #[inline(always)]
    unsafe fn key_ptr(b: *mut Self, i: usize) -> *mut K {
        // SAFETY: in-bounds field projection of a live bucket.
        unsafe { ptr::addr_of_mut!((*b).keys[i]).cast() }
    }

    /// # Safety
    /// `b` points to a live bucket and slot `i` is in range.
    #[inline(always)]
    unsafe fn elem_ptr(b: *mut Self, i: usize) -> *mut V {
        // SAFETY: in-bounds field projection of a live bucket.
        unsafe { ptr::addr_of_mut!((*b).elems[i]).cast() }
    }

    /// # Safety
    /// `b` points to a live bucket.
    #[inline(always)]
    unsafe fn overflow(b: *const Self) -> *mut Self {
        // SAFETY: reading a field of a live bucket.
        unsafe { (*b).overflow }
    }

    /// # Safety
    /// `b` points to a live bucket.
    #[inline(always)]
    unsafe fn tophash<'a>(b: *const Self) -> &'a [u8; BUCKET_CNT] {
        // SAFETY: reading a field of a live bucket.
        unsafe { &(*b).tophash }
    }

    /// # Safety
    /// `b` points to a live bucket that nobody else is reading or writing.
    #[inline(always)]
    unsafe fn set_tophash(b: *mut Self, i: usize, v: u8) {
        // SAFETY: per the contract above.
        unsafe { (*b).tophash[i] = v }
    }
}

/// A hint to start loading every cache line of the bucket at `b` (a no-op where
/// the target has no stable prefetch instruction). Never faults, whatever `b` is.
#[inline(always)]
fn prefetch_bucket<K, V>(b: *const Bucket<K, V>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = b as *const i8;
        let size = std::mem::size_of::<Bucket<K, V>>();
        let mut off = 0;
        while off < size {
            // SAFETY: a prefetch is only a hint: it never faults and reads nothing
            // the program can observe, for any address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
        // The last line, when the bucket straddles one more line than size/64.
        // SAFETY: as above.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(size - 1)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// Lets go of the old array at the end of a grow. Freeing a large array
/// returns its pages to the OS (munmap), which took ~17 ms of CPU for the
/// 160 MB array left behind by the grow to 2^21 buckets: the slowest single
/// insert on the way to 10M entries. So an array of at least 32 MiB (whose
/// release costs milliseconds) that holds nothing to drop (plain keys and
/// values: its drop is only deallocation) and that no iterator still holds is
/// freed on a short-lived helper thread; anything else is dropped here, as
/// before. The cost: such memory goes back to the OS a moment later than the
/// insert that ended the grow (a process under a hard address-space limit can
/// see the old and the next array coexist a little longer).
fn retire<K: 'static, V: 'static>(t: Option<Arc<Table<K, V>>>) {
    let Some(t) = t else { return };
    let big = t.slab.len() * std::mem::size_of::<Bucket<K, V>>() >= 32 << 20;
    if needs_drop::<K>() || needs_drop::<V>() || !big || Arc::strong_count(&t) != 1 {
        return; // dropped here
    }
    /// The last reference to an array of plain data.
    struct Plain<K, V>(#[allow(dead_code)] Arc<Table<K, V>>);
    // SAFETY: K and V have no drop glue (checked above) and this is the only
    // reference to the table, so the other thread only frees its allocations
    // (global allocator) and never touches a key or a value.
    unsafe impl<K, V> Send for Plain<K, V> {}
    let plain = Plain(t);
    // If no thread can be started, the closure (and so the array) is dropped
    // here by `spawn`'s error path.
    let _ = std::thread::Builder::new().name("gomap-free".into()).spawn(move || drop(plain));
}

/// `evacuated(b)`.
///
/// # Safety
/// `b` points to a live bucket.
#[inline(always)]
unsafe fn evacuated<K, V>(b: *const Bucket<K, V>) -> bool {
    // SAFETY: per the contract above.
    let h = unsafe { (*b).tophash[0] };
    h > EMPTY_ONE && h < MIN_TOP_HASH
}

/// One bucket array, with the overflow buckets that were chained into it.
pub struct Table<K, V> {
    /// 2^B buckets, then the preallocated overflow buckets.
    slab: Box<[UnsafeCell<Bucket<K, V>>]>,
    nbase: usize,
    /// Overflow buckets allocated one by one (Go's `newobject(t.bucket)`).
    extra: UnsafeCell<Vec<Box<UnsafeCell<Bucket<K, V>>>>>,
    /// Zeroed overflow buckets allocated ahead by [`Table::reserve_overflow`], so
    /// that an evacuation or a rebuild, once started, cannot run out of memory
    /// half-way. Not yet part of the table (Go never sees them).
    spare: UnsafeCell<Vec<Box<UnsafeCell<Bucket<K, V>>>>>,
    /// One bit per bucket of this array: set when it was evacuated while an
    /// iterator could still read it, so its evacuated slots still own their keys.
    retained: UnsafeCell<Vec<u64>>,
}

// SAFETY: a Table is only reached through an `HMap` (or an iterator of one) under
// the map's `FlagWord` discipline: one writer or any number of readers at a time.
// Keys and values are Send + Sync where the map is shared.
unsafe impl<K: Send, V: Send> Send for Table<K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Table<K, V> {}

impl<K, V> Table<K, V> {
    /// `makeBucketArray(t, b, nil)`: the array and the index of its first
    /// preallocated overflow bucket (== slab length when there is none).
    /// Fails, allocating nothing, when the array does not fit in memory.
    fn make_bucket_array(b: u8, go_bucketsize: usize) -> Result<(Arc<Table<K, V>>, usize), AllocError> {
        if b as u32 >= usize::BITS - 1 {
            return Err(AllocError);
        }
        let base = bucket_shift(b);
        let mut nbuckets = base;
        if b >= 4 {
            nbuckets += bucket_shift(b - 4);
            let sz = go_bucketsize.checked_mul(nbuckets).filter(|&s| s <= isize::MAX as usize).ok_or(AllocError)?;
            let up = roundupsize(sz);
            if up != sz {
                nbuckets = up / go_bucketsize;
            }
        }
        // All-zero is a valid empty bucket: tophash EMPTY_REST, uninitialised
        // slots, a null overflow link.
        let p = alloc_zeroed_array::<UnsafeCell<Bucket<K, V>>>(nbuckets)?;
        // SAFETY: `p` is a zeroed block from the global allocator with the layout
        // of `[UnsafeCell<Bucket>; nbuckets]`; every field of `Bucket` is valid
        // when zeroed (u8s, MaybeUninit and a raw pointer), and UnsafeCell is
        // repr(transparent).
        let slab: Box<[UnsafeCell<Bucket<K, V>>]> =
            unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, nbuckets)) };
        let table = Table {
            slab,
            nbase: base,
            extra: UnsafeCell::new(Vec::new()),
            spare: UnsafeCell::new(Vec::new()),
            retained: UnsafeCell::new(Vec::new()),
        };
        Ok((Arc::new(table), base))
    }

    #[inline(always)]
    fn bucket(&self, i: usize) -> *mut Bucket<K, V> {
        self.slab[i].get()
    }

    /// Allocates one overflow bucket (Go's `newobject(t.bucket)`), owned by this
    /// table. The pointer is taken after the box is stored: moving a `Box`
    /// invalidates pointers derived from it earlier (found by Miri).
    ///
    /// # Safety
    /// The caller has exclusive access to the table (write claim, or a table
    /// nobody else can see yet).
    unsafe fn alloc_overflow(&self) -> Result<*mut Bucket<K, V>, AllocError> {
        // SAFETY: exclusive access per the contract.
        let (extra, spare) = unsafe { (&mut *self.extra.get(), &mut *self.spare.get()) };
        extra.try_reserve(1).map_err(|_| AllocError)?;
        let bx = match spare.pop() {
            Some(bx) => bx,
            None => Self::zeroed_bucket()?,
        };
        extra.push(bx);
        Ok(extra.last().unwrap().get())
    }

    fn zeroed_bucket() -> Result<Box<UnsafeCell<Bucket<K, V>>>, AllocError> {
        let p = alloc_zeroed_array::<UnsafeCell<Bucket<K, V>>>(1)?;
        // SAFETY: a zeroed block with the layout of one bucket, which is valid
        // when zeroed (see make_bucket_array).
        Ok(unsafe { Box::from_raw(p) })
    }

    /// Makes sure the next `n` overflow buckets handed out from this table
    /// (preallocated ones from `next_overflow` on first, then one by one) need no
    /// allocation that could fail.
    ///
    /// # Safety
    /// The caller has exclusive access to the table.
    unsafe fn reserve_overflow(&self, n: usize, next_overflow: usize) -> Result<(), AllocError> {
        let n = n.saturating_sub(self.slab.len().saturating_sub(next_overflow));
        // SAFETY: exclusive access per the contract.
        let (extra, spare) = unsafe { (&mut *self.extra.get(), &mut *self.spare.get()) };
        extra.try_reserve(n).map_err(|_| AllocError)?;
        spare.try_reserve(n.saturating_sub(spare.len())).map_err(|_| AllocError)?;
        while spare.len() < n {
            spare.push(Self::zeroed_bucket()?);
        }
        Ok(())
    }

    pub fn nbase(&self) -> usize {
        self.nbase
    }

    /// Buckets allocated for this array in Go: the array and every overflow
    /// bucket allocated one by one.
    fn allocated(&self) -> (usize, usize) {
        // SAFETY: reading the length under the map's guard.
        (self.slab.len(), unsafe { (*self.extra.get()).len() })
    }

    fn is_retained(&self, i: usize) -> bool {
        // SAFETY: the bitmap is only written by evacuate under the write guard.
        let r = unsafe { &*self.retained.get() };
        r.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// # Safety
    /// The caller has exclusive access to the table.
    unsafe fn set_retained(&self, i: usize) -> Result<(), AllocError> {
        // SAFETY: exclusive access per the contract.
        let r = unsafe { &mut *self.retained.get() };
        if r.len() <= i / 64 {
            let words = self.nbase.div_ceil(64);
            r.try_reserve_exact(words - r.len()).map_err(|_| AllocError)?;
            r.resize(words, 0);
        }
        r[i / 64] |= 1 << (i % 64);
        Ok(())
    }

    /// Calls `f` on every key and elem this array owns: live slots and retained
    /// evacuated keys (for the GC's `__traverse__`).
    ///
    /// # Safety
    /// Nobody writes the table meanwhile (the map's read claim, or a table the
    /// map no longer reaches).
    pub unsafe fn for_each_owned(&self, f: &mut impl FnMut(Option<&K>, Option<&V>)) {
        // SAFETY: forwarded contract; the slots visited hold what they own.
        unsafe {
            self.for_each_owned_slot(|b, i, elem_owned| {
                f(Some(Bucket::key(b, i)), if elem_owned { Some(Bucket::elem(b, i)) } else { None })
            })
        }
    }

    /// Calls `f(bucket, slot, elem_owned)` on every slot that owns its key: live
    /// slots (which own their elem too) and, in retained buckets, evacuated slots
    /// (key only). The one walk behind `Drop` and [`Table::for_each_owned`].
    ///
    /// # Safety
    /// Nobody else writes the table meanwhile; `f` may drop what a slot owns but
    /// must not touch the tophash bytes or the overflow links.
    unsafe fn for_each_owned_slot(&self, mut f: impl FnMut(*mut Bucket<K, V>, usize, bool)) {
        for j in 0..self.nbase {
            let retained = self.is_retained(j);
            let mut b = self.bucket(j);
            while !b.is_null() {
                // SAFETY: live buckets of this table, per the contract; chains only
                // link buckets this table owns; ownership per tophash as
                // documented on `Table`.
                unsafe {
                    for i in 0..BUCKET_CNT {
                        let top = (*b).tophash[i];
                        if top >= MIN_TOP_HASH {
                            f(b, i, true);
                        } else if retained && (top == EVACUATED_X || top == EVACUATED_Y) {
                            f(b, i, false);
                        }
                    }
                    b = Bucket::overflow(b);
                }
            }
        }
    }
}

impl<K, V> Drop for Table<K, V> {
    fn drop(&mut self) {
        if !needs_drop::<K>() && !needs_drop::<V>() {
            return;
        }
        // SAFETY: `&mut self` gives exclusive access; each owned key and elem is
        // dropped exactly once, and the walk reads only tophash bytes and links.
        unsafe {
            self.for_each_owned_slot(|b, i, elem_owned| {
                ptr::drop_in_place(Bucket::key_ptr(b, i));
                if elem_owned {
                    ptr::drop_in_place(Bucket::elem_ptr(b, i));
                }
            })
        }
    }
}

/// Go's `hmap` header (flags excepted: see [`FlagWord`]).
pub struct HMap<K, V> {
    pub count: usize,
    pub b: u8,
    pub noverflow: u16,
    pub hash0: u32,
    buckets: Option<Arc<Table<K, V>>>,
    oldbuckets: Option<Arc<Table<K, V>>>,
    pub nevacuate: usize,
    /// `extra.nextOverflow`, as an index into `buckets`' slab.
    next_overflow: usize,
    pub hashkey: [u64; 4],
    /// The release this map follows (load factor, hash, draw widths).
    pub go: GoRelease,
    /// What the fallback hash mixes in: `hashkey` as `go` uses it.
    hkey: FallbackKey,
    pub rand: FastRand,
    /// Bumped by `mapclear`; an iterator from an earlier epoch produces nothing more.
    epoch: u64,
}

/// Go's `hiter`.
pub struct HIter<K, V> {
    buckets: Option<Arc<Table<K, V>>>,
    /// Keeps the old array alive while `bptr` walks one of its chains.
    old_hold: Option<Arc<Table<K, V>>>,
    /// The array `old_hold` let go of during the last step, if that was its last
    /// reference: the caller drops it after the read (dropping an array drops
    /// its entries, which may be Python objects). See [`HIter::take_released`].
    released: Option<Arc<Table<K, V>>>,
    b: u8,
    start_bucket: usize,
    offset: u8,
    wrapped: bool,
    bucket: usize,
    bptr: *mut Bucket<K, V>,
    i: usize,
    check_bucket: usize,
    epoch: u64,
    done: bool,
}

// SAFETY: `bptr` points into a table the iterator keeps alive through `buckets` or
// `old_hold`; it is only dereferenced under the map's read guard.
unsafe impl<K: Send, V: Send> Send for HIter<K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for HIter<K, V> {}

impl<K, V> HIter<K, V> {
    pub fn finished(&self) -> bool {
        self.done
    }
    /// The arrays this iterator keeps alive.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table<K, V>>> {
        self.buckets.iter().chain(self.old_hold.iter())
    }
    /// Lets go of the arrays (and ends the iteration).
    pub fn take_tables(&mut self) -> [Option<Arc<Table<K, V>>>; 2] {
        self.done = true;
        [self.buckets.take(), self.old_hold.take()]
    }
    pub fn start(&self) -> (usize, u8) {
        (self.start_bucket, self.offset)
    }

    /// The array the last `mapiternext` stopped holding, to be dropped by the
    /// caller once its read is over (usually `None`: no atomic operation).
    pub fn take_released(&mut self) -> Option<Arc<Table<K, V>>> {
        self.released.take()
    }

    /// Replaces `old_hold` without dropping an array inside the step: the value
    /// held before the step goes to `released`. Any other value replaced in the
    /// same step was cloned from the map's `oldbuckets` during this step, and the
    /// map still holds that array, so dropping it only decrements a count.
    #[inline]
    fn set_old_hold(&mut self, to: Option<Arc<Table<K, V>>>) {
        let prev = std::mem::replace(&mut self.old_hold, to);
        if prev.is_some() && self.released.is_none() {
            self.released = prev;
        }
    }
}

pub struct Stats {
    pub count: usize,
    pub b: u8,
    pub buckets: usize,
    pub overflow_buckets: usize,
    pub old_buckets: usize,
    pub old_overflow_buckets: usize,
    pub noverflow: u16,
    pub growing: bool,
    pub nevacuate: usize,
    pub bytes: usize,
}

/// A snapshot of one bucket (`None` for an empty or evacuated slot).
pub struct BucketView<'a, K, V> {
    pub tophash: [u8; BUCKET_CNT],
    pub entries: [Option<(&'a K, &'a V)>; BUCKET_CNT],
}

pub enum OldView<'a, K, V> {
    Chain(Vec<BucketView<'a, K, V>>),
    Evacuated([u8; BUCKET_CNT]),
}

impl<K, V> HMap<K, V> {
    /// Lets go of both arrays, leaving an empty map of the same B (for a
    /// deallocation that drops the entries later, see `python::map::dispose`).
    pub fn take_tables(&mut self) -> [Option<Arc<Table<K, V>>>; 2] {
        self.count = 0;
        self.nevacuate = 0;
        self.epoch += 1;
        [self.buckets.take(), self.oldbuckets.take()]
    }

    /// Whether `t` is one of the map's current arrays (`buckets`, `oldbuckets`).
    pub fn reaches(&self, t: &Arc<Table<K, V>>) -> bool {
        self.buckets.iter().chain(self.oldbuckets.iter()).any(|m| Arc::ptr_eq(m, t))
    }
}

impl<K: MapKey, V: MapValue> HMap<K, V> {
    const GO_BUCKET_SIZE: usize = go_bucket_size(K::GO_SIZE, V::GO_SIZE);

    /// `makemap(t, hint, nil)` of Go release `go`: draws `hash0`. Panics when
    /// the bucket array cannot be allocated; see [`HMap::try_makemap`].
    pub fn makemap(hint: usize, hashkey: [u64; 4], rand: FastRand, go: GoRelease) -> HMap<K, V> {
        Self::try_makemap(hint, hashkey, rand, go).expect("makemap: out of memory")
    }

    /// `makemap(t, hint, nil)` of Go release `go`: draws `hash0`; fails when
    /// the bucket array for `hint` cannot be allocated.
    pub fn try_makemap(
        hint: usize,
        hashkey: [u64; 4],
        rand: FastRand,
        go: GoRelease,
    ) -> Result<HMap<K, V>, AllocError> {
        // As Go: a hint whose buckets would exceed maxAlloc is treated as 0.
        let hint = match hint.checked_mul(Self::GO_BUCKET_SIZE) {
            Some(mem) if mem <= MAX_ALLOC => hint,
            _ => 0,
        };
        let hash0 = rand.fastrand();
        let mut b = 0u8;
        while over_load_factor(hint, b, go) {
            b += 1;
        }
        let mut h = HMap {
            count: 0,
            b,
            noverflow: 0,
            hash0,
            buckets: None,
            oldbuckets: None,
            nevacuate: 0,
            next_overflow: 0,
            hashkey,
            go,
            hkey: FallbackKey::new(hashkey, go),
            rand,
            epoch: 0,
        };
        if b != 0 {
            let (t, next) = Table::make_bucket_array(b, Self::GO_BUCKET_SIZE)?;
            h.buckets = Some(t);
            h.next_overflow = next;
        }
        Ok(h)
    }

    /// What this map's fallback hash mixes in (its `hashkey` as its release uses it).
    pub fn fallback_key(&self) -> &FallbackKey {
        &self.hkey
    }

    #[inline(always)]
    fn hash(&self, key: &K) -> u64 {
        key.hash(self.hash0 as u64, &self.hkey, &self.rand)
    }

    #[inline(always)]
    pub fn growing(&self) -> bool {
        self.oldbuckets.is_some()
    }

    fn noldbuckets(&self, fl: &FlagWord) -> usize {
        let mut old_b = self.b;
        if !fl.has(SAME_SIZE_GROW) {
            old_b -= 1;
        }
        bucket_shift(old_b)
    }

    fn oldbucketmask(&self, fl: &FlagWord) -> usize {
        self.noldbuckets(fl) - 1
    }

    fn incrnoverflow(&mut self) {
        if self.b < 16 {
            self.noverflow = self.noverflow.wrapping_add(1);
            return;
        }
        let mask = (1u32 << (self.b - 15)) - 1;
        if self.rand.fastrand() & mask == 0 {
            self.noverflow = self.noverflow.wrapping_add(1);
        }
    }

    /// `newoverflow`: chains a fresh overflow bucket behind `b`.
    ///
    /// # Safety
    /// Write guard held; `b` is the last bucket of a chain of the current array.
    unsafe fn newoverflow(&mut self, b: *mut Bucket<K, V>) -> Result<*mut Bucket<K, V>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.newoverflow_counted(b, true) }
    }

    /// `newoverflow`; `go_draw` false counts the bucket without touching the
    /// external draw source (for `shrink`, which is not a Go operation).
    ///
    /// # Safety
    /// As [`HMap::newoverflow`].
    /// Fails (changing nothing) only when a bucket must be allocated and cannot be.
    unsafe fn newoverflow_counted(
        &mut self,
        b: *mut Bucket<K, V>,
        go_draw: bool,
    ) -> Result<*mut Bucket<K, V>, AllocError> {
        let t = self.buckets.as_ref().expect("newoverflow without buckets");
        let ovf = if self.next_overflow < t.slab.len() {
            let o = t.bucket(self.next_overflow);
            self.next_overflow += 1;
            o
        } else {
            // SAFETY: write guard held: nobody else touches `extra`.
            unsafe { t.alloc_overflow()? }
        };
        if go_draw {
            self.incrnoverflow();
        } else if self.b < 16 || self.rand.fastrand_own() & ((1u32 << (self.b - 15)) - 1) == 0 {
            self.noverflow = self.noverflow.wrapping_add(1);
        }
        // SAFETY: `b` is live and exclusively ours under the write guard.
        unsafe { (*b).overflow = ovf };
        Ok(ovf)
    }

    /// Looks `key` up as `mapaccessK` does; `(bucket, slot)` of the entry.
    #[inline]
    fn lookup(&self, fl: &FlagWord, key: &K, hash: u64) -> Result<Option<(*mut Bucket<K, V>, usize)>, K::Error> {
        self.lookup_by(fl, hash, |k| key.equal(k))
    }

    /// The lookup of `mapaccessK` for a key given by its hash and an equality
    /// test against stored keys.
    #[inline]
    fn lookup_by<E>(
        &self,
        fl: &FlagWord,
        hash: u64,
        mut eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<(*mut Bucket<K, V>, usize)>, E> {
        let Some(t) = self.buckets.as_ref() else { return Ok(None) };
        let mut m = bucket_mask(self.b);
        let mut b = t.bucket(hash as usize & m);
        // Issue every cache line of the bucket at once, so that the misses on its
        // tophash, key and elem lines overlap instead of following each other.
        prefetch_bucket(b);
        if let Some(c) = self.oldbuckets.as_ref() {
            if !fl.has(SAME_SIZE_GROW) {
                m >>= 1;
            }
            let oldb = c.bucket(hash as usize & m);
            prefetch_bucket(oldb);
            // SAFETY: oldb is a live bucket of the old array.
            if !unsafe { evacuated(oldb) } {
                b = oldb;
            }
        }
        let top = tophash(hash);
        while !b.is_null() {
            // SAFETY: read guard held; `b` is a live bucket of one of our arrays.
            let g = Group::load(unsafe { Bucket::tophash(b) });
            let stop = g.match_byte(EMPTY_REST).lowest();
            for i in g.match_byte(top).below(stop.unwrap_or(BUCKET_CNT)) {
                // SAFETY: tophash >= MIN_TOP_HASH, so slot i holds a key.
                if eq(unsafe { Bucket::key(b, i) })? {
                    return Ok(Some((b, i)));
                }
            }
            if stop.is_some() {
                break;
            }
            // SAFETY: live bucket.
            b = unsafe { Bucket::overflow(b) };
            if !b.is_null() {
                prefetch_bucket(b);
            }
        }
        Ok(None)
    }

    /// `mapaccess2`.
    #[inline]
    pub fn mapaccess(&self, fl: &FlagWord, key: &K) -> Result<Option<&V>, K::Error> {
        if self.count == 0 {
            return Ok(None);
        }
        let hash = self.hash(key);
        // SAFETY: a found slot holds a live entry, borrowed no longer than `self`.
        Ok(self.lookup(fl, key, hash)?.map(|(b, i)| unsafe { Bucket::elem(b, i) }))
    }

    /// `mapaccess2` for a key whose hash the caller computed: `hash_with(seed,
    /// fallback_key)` must return exactly what `K::hash` would for the key, and `eq`
    /// must be `K::equal` against it. Lets a lookup borrow the caller's bytes
    /// instead of building an owned key, and a batch hash its keys ahead.
    #[inline]
    pub fn mapaccess_hashed(
        &self,
        fl: &FlagWord,
        hash_with: impl FnOnce(u64, &FallbackKey) -> u64,
        eq: impl FnMut(&K) -> Result<bool, K::Error>,
    ) -> Result<Option<&V>, K::Error> {
        if self.count == 0 {
            return Ok(None);
        }
        let hash = hash_with(self.hash0 as u64, &self.hkey);
        // SAFETY: as in mapaccess.
        Ok(self.lookup_by(fl, hash, eq)?.map(|(b, i)| unsafe { Bucket::elem(b, i) }))
    }

    /// The hash `K::hash` gives `key` in this map, for a batch that hashes its keys
    /// ahead and hands them to [`HMap::mapaccess_hashed`] or [`HMap::prefetch`].
    /// Must not be called for a key whose hash draws (a NaN float).
    #[inline]
    pub fn key_hash(&self, key: &K) -> u64 {
        self.hash(key)
    }

    /// Starts loading the bucket (and during growth the old bucket) that a key
    /// of hash `hash` lives in, for a batch that looks keys up a few ahead.
    #[inline]
    pub fn prefetch(&self, fl: &FlagWord, hash: u64) {
        let Some(t) = self.buckets.as_ref() else { return };
        let mut m = bucket_mask(self.b);
        prefetch_bucket(t.bucket(hash as usize & m));
        if let Some(c) = self.oldbuckets.as_ref() {
            if !fl.has(SAME_SIZE_GROW) {
                m >>= 1;
            }
            prefetch_bucket(c.bucket(hash as usize & m));
        }
    }

    /// `mapaccessK`: the stored key and its elem.
    pub fn mapaccess_k(&self, fl: &FlagWord, key: &K) -> Result<Option<(&K, &V)>, K::Error> {
        if self.count == 0 {
            return Ok(None);
        }
        let hash = self.hash(key);
        // SAFETY: as in mapaccess.
        Ok(self.lookup(fl, key, hash)?.map(|(b, i)| unsafe { (Bucket::key(b, i), Bucket::elem(b, i)) }))
    }

    /// The elem of an existing key, to update in place: `mapassign`'s search
    /// (after its growth step) without the insert. `None` when the key is
    /// missing. For read-modify-write operations (ShardedMap's `add`), which
    /// would otherwise search twice.
    pub fn mapaccess_mut(&mut self, fl: &FlagWord, key: &K) -> Result<Option<&mut V>, MapError<K::Error>> {
        if self.count == 0 {
            return Ok(None);
        }
        let hash = self.hash(key);
        if self.growing() {
            self.grow_work(fl, hash as usize & bucket_mask(self.b)).map_err(MapError::alloc)?;
        }
        // SAFETY: a found slot holds a live entry; `&mut self` (the write guard)
        // makes it exclusively ours for the returned lifetime.
        Ok(self.lookup(fl, key, hash).map_err(MapError::Key)?.map(|(b, i)| unsafe { &mut *Bucket::elem_ptr(b, i) }))
    }

    /// `mapassign` followed by the store of `elem`. Returns the previous elem.
    /// On an error the map holds the same entries as before (and `key`, `elem`
    /// are dropped).
    pub fn mapassign(&mut self, fl: &FlagWord, key: K, elem: V) -> Result<Option<V>, MapError<K::Error>> {
        let hash = self.hash(&key);
        if self.buckets.is_none() {
            // B is 0 here unless a clear could not reallocate the array.
            let (t, next) = Table::make_bucket_array(self.b, Self::GO_BUCKET_SIZE).map_err(MapError::alloc)?;
            self.buckets = Some(t);
            self.next_overflow = next;
        }
        'again: loop {
            let bucket = hash as usize & bucket_mask(self.b);
            if self.growing() {
                self.grow_work(fl, bucket).map_err(MapError::alloc)?;
            }
            let t = self.buckets.as_ref().unwrap();
            let mut b = t.bucket(bucket);
            let top = tophash(hash);
            let mut insert: Option<(*mut Bucket<K, V>, usize)> = None;
            loop {
                // SAFETY: write guard held; `b` is a live bucket of the current array.
                let g = Group::load(unsafe { Bucket::tophash(b) });
                let stop = g.match_byte(EMPTY_REST).lowest();
                let limit = stop.unwrap_or(BUCKET_CNT);
                for i in g.match_byte(top).below(limit) {
                    // SAFETY: tophash >= MIN_TOP_HASH: slot i holds a live entry.
                    let k = unsafe { Bucket::key(b, i) };
                    if !key.equal(k)? {
                        continue;
                    }
                    // SAFETY: exclusive access under the write guard; the slot is live.
                    unsafe {
                        if K::NEED_KEY_UPDATE {
                            *Bucket::key_ptr(b, i) = key;
                        }
                        return Ok(Some(ptr::replace(Bucket::elem_ptr(b, i), elem)));
                    }
                }
                if insert.is_none() {
                    if let Some(i) = g.match_empty().lowest() {
                        insert = Some((b, i));
                    }
                }
                if stop.is_some() {
                    break;
                }
                // SAFETY: live bucket.
                let ovf = unsafe { Bucket::overflow(b) };
                if ovf.is_null() {
                    break;
                }
                b = ovf;
            }
            // Did not find the key: allocate a new cell. If we hit the max load
            // factor or have too many overflow buckets, and are not already
            // growing, start growing; that invalidates everything, so try again.
            if !self.growing()
                && (over_load_factor(self.count + 1, self.b, self.go)
                    || too_many_overflow_buckets(self.noverflow, self.b))
            {
                self.hash_grow(fl).map_err(MapError::alloc)?;
                continue 'again;
            }
            let (ib, ii) = match insert {
                Some(x) => x,
                // SAFETY: `b` is the last bucket of the chain; write guard held.
                None => (unsafe { self.newoverflow(b) }.map_err(MapError::alloc)?, 0),
            };
            // SAFETY: slot (ib, ii) is empty, so writing does not leak or alias.
            unsafe {
                Bucket::key_ptr(ib, ii).write(key);
                Bucket::elem_ptr(ib, ii).write(elem);
                Bucket::set_tophash(ib, ii, top);
            }
            self.count += 1;
            return Ok(None);
        }
    }

    /// `mapdelete`. Returns the removed entry. An error (the evacuation it
    /// helps with could not allocate, or `==` failed) removes nothing.
    pub fn mapdelete(&mut self, fl: &FlagWord, key: &K) -> Result<Option<(K, V)>, MapError<K::Error>> {
        if self.count == 0 {
            return Ok(None);
        }
        let hash = self.hash(key);
        let bucket = hash as usize & bucket_mask(self.b);
        if self.growing() {
            self.grow_work(fl, bucket).map_err(MapError::alloc)?;
        }
        let t = self.buckets.as_ref().unwrap();
        let b_orig = t.bucket(bucket);
        let mut b = b_orig;
        let top = tophash(hash);
        while !b.is_null() {
            // SAFETY: write guard held; live bucket of the current array.
            let g = Group::load(unsafe { Bucket::tophash(b) });
            let stop = g.match_byte(EMPTY_REST).lowest();
            for i in g.match_byte(top).below(stop.unwrap_or(BUCKET_CNT)) {
                // SAFETY: live slot.
                if !key.equal(unsafe { Bucket::key(b, i) })? {
                    continue;
                }
                // SAFETY: exclusive access; the slot is live and becomes empty, so
                // its key and elem are moved out exactly once.
                let removed = unsafe { (Bucket::key_ptr(b, i).read(), Bucket::elem_ptr(b, i).read()) };
                // SAFETY: the rest of this block edits tophash bytes of buckets of
                // this chain, exclusively ours under the write guard.
                unsafe {
                    Bucket::set_tophash(b, i, EMPTY_ONE);
                    // If the bucket now ends in a bunch of EMPTY_ONE states, change
                    // those to EMPTY_REST states.
                    let not_last = if i == BUCKET_CNT - 1 {
                        let o = Bucket::overflow(b);
                        !o.is_null() && (*o).tophash[0] != EMPTY_REST
                    } else {
                        (*b).tophash[i + 1] != EMPTY_REST
                    };
                    if !not_last {
                        let mut b = b;
                        let mut i = i;
                        loop {
                            Bucket::set_tophash(b, i, EMPTY_REST);
                            if i == 0 {
                                if b == b_orig {
                                    break; // beginning of initial bucket, we're done.
                                }
                                // Find previous bucket, continue at its last entry.
                                let c = b;
                                b = b_orig;
                                while Bucket::overflow(b) != c {
                                    b = Bucket::overflow(b);
                                }
                                i = BUCKET_CNT - 1;
                            } else {
                                i -= 1;
                            }
                            if (*b).tophash[i] != EMPTY_ONE {
                                break;
                            }
                        }
                    }
                }
                self.count -= 1;
                // Reset the hash seed to make it more difficult for attackers to
                // repeatedly trigger hash collisions. See golang.org/issue/25237.
                if self.count == 0 {
                    self.hash0 = self.rand.fastrand();
                }
                return Ok(Some(removed));
            }
            if stop.is_some() {
                break;
            }
            // SAFETY: live bucket.
            b = unsafe { Bucket::overflow(b) };
        }
        Ok(None)
    }

    /// `mapclear`: keeps B, empties the array, draws a new `hash0`. The arrays
    /// it lets go of are returned so the caller can drop their entries after
    /// releasing the write guard (dropping a Python value may run Python code).
    #[must_use]
    pub fn mapclear(&mut self, fl: &FlagWord) -> Vec<Arc<Table<K, V>>> {
        if self.count == 0 {
            return Vec::new();
        }
        let dropped = self.reset_tables(fl);
        // Reset the hash seed (golang.org/issue/25237).
        self.hash0 = self.rand.fastrand();
        dropped
    }

    /// The state change of `mapclear` without its draw (for the GC's `__clear__`,
    /// which must not consume the user's draws).
    #[must_use]
    pub fn reset_tables(&mut self, fl: &FlagWord) -> Vec<Arc<Table<K, V>>> {
        fl.clear(SAME_SIZE_GROW);
        let mut dropped = Vec::new();
        dropped.extend(self.oldbuckets.take());
        self.nevacuate = 0;
        self.noverflow = 0;
        self.count = 0;
        self.epoch += 1;
        if let Some(t) = self.buckets.take() {
            dropped.push(t);
            // Go clears the array in place (`makeBucketArray(t, h.B, h.buckets)`);
            // a fresh array of the same size is indistinguishable and lets open
            // iterators keep the memory they point into. Out of memory, the map
            // stays without an array and the next assignment allocates it.
            if let Ok((t, next)) = Table::make_bucket_array(self.b, Self::GO_BUCKET_SIZE) {
                self.buckets = Some(t);
                self.next_overflow = next;
            }
        }
        dropped
    }

    /// `hashGrow`. Allocates first: out of memory, nothing has changed.
    fn hash_grow(&mut self, fl: &FlagWord) -> Result<(), AllocError> {
        // If we've hit the load factor, get bigger. Otherwise, there are too many
        // overflow buckets, so keep the same number of buckets and "grow" laterally.
        let mut bigger = 1;
        if !over_load_factor(self.count + 1, self.b, self.go) {
            bigger = 0;
        }
        let (newbuckets, next) = Table::make_bucket_array(self.b + bigger, Self::GO_BUCKET_SIZE)?;
        if bigger == 0 {
            fl.set(SAME_SIZE_GROW);
        }
        // Commit the grow (atomic wrt gc).
        let had_iterator = fl.has(ITERATOR);
        fl.clear(ITERATOR | OLD_ITERATOR);
        if had_iterator {
            fl.set(OLD_ITERATOR);
        }
        self.b += bigger;
        self.oldbuckets = self.buckets.replace(newbuckets);
        self.nevacuate = 0;
        self.noverflow = 0;
        self.next_overflow = next;
        Ok(())
    }

    /// Out of memory, the grow stays where it was: every old bucket is either
    /// wholly evacuated or untouched.
    fn grow_work(&mut self, fl: &FlagWord, bucket: usize) -> Result<(), AllocError> {
        // Make sure we evacuate the oldbucket corresponding to the bucket we're
        // about to use.
        self.evacuate(fl, bucket & self.oldbucketmask(fl))?;
        // Evacuate one more oldbucket to make progress on growing.
        if self.growing() {
            self.evacuate(fl, self.nevacuate)?;
        }
        Ok(())
    }

    /// Evacuates one old bucket. Everything it could need to allocate is
    /// reserved before the first entry moves, so it fails whole or not at all.
    fn evacuate(&mut self, fl: &FlagWord, oldbucket: usize) -> Result<(), AllocError> {
        let old = self.oldbuckets.clone().unwrap();
        let newbit = self.noldbuckets(fl);
        let same_size = fl.has(SAME_SIZE_GROW);
        let mut b = old.bucket(oldbucket);
        // SAFETY: all bucket accesses below are to live buckets of the old and new
        // arrays, which the write guard gives us exclusively.
        unsafe {
            if !evacuated(b) {
                // An iterator may still read this old bucket's keys (Go keeps the
                // old bucket intact when oldIterator is set): leave them a copy.
                let retain = needs_drop::<K>() && fl.has(OLD_ITERATOR);
                let newt = self.buckets.clone().unwrap();
                // Each destination starts empty; n entries fill at most
                // (n - 1) / 8 overflow buckets behind it.
                let mut n = 0usize;
                let mut c = b;
                while !c.is_null() {
                    n += (*c).tophash.iter().filter(|&&t| !is_empty(t)).count();
                    c = Bucket::overflow(c);
                }
                let per_dst = n.saturating_sub(1) / BUCKET_CNT;
                newt.reserve_overflow(if same_size { per_dst } else { 2 * per_dst }, self.next_overflow)?;
                if retain {
                    old.set_retained(oldbucket)?;
                }
                // xy contains the x and y (low and high) evacuation destinations.
                let mut dst: [(*mut Bucket<K, V>, usize); 2] = [(newt.bucket(oldbucket), 0), (ptr::null_mut(), 0)];
                if !same_size {
                    // Only calculate y pointers if we're growing bigger.
                    dst[1] = (newt.bucket(oldbucket + newbit), 0);
                }
                while !b.is_null() {
                    for i in 0..BUCKET_CNT {
                        let mut top = (*b).tophash[i];
                        if is_empty(top) {
                            Bucket::set_tophash(b, i, EVACUATED_EMPTY);
                            continue;
                        }
                        debug_assert!(top >= MIN_TOP_HASH, "bad map state");
                        let k2 = Bucket::key(b, i);
                        let mut use_y = 0u8;
                        if !same_size {
                            // Compute hash to make our evacuation decision (whether
                            // we need to send this key/elem to bucket x or bucket y).
                            let hash = self.hash(k2);
                            if fl.has(ITERATOR) && !K::REFLEXIVE && !k2.self_equal() {
                                // NaN: the hash is not repeatable; iterators need a
                                // repeatable choice, so reuse tophash's low bit and
                                // recompute tophash (it is random anyway).
                                use_y = top & 1;
                                top = tophash(hash);
                            } else if hash as usize & newbit != 0 {
                                use_y = 1;
                            }
                        }
                        Bucket::set_tophash(b, i, EVACUATED_X + use_y);
                        let d = &mut dst[use_y as usize];
                        if d.1 == BUCKET_CNT {
                            // Cannot fail: reserved above.
                            d.0 = self.newoverflow(d.0)?;
                            d.1 = 0;
                        }
                        let (db, di) = *d;
                        Bucket::set_tophash(db, di, top);
                        let k = if retain { k2.clone_key() } else { Bucket::key_ptr(b, i).read() };
                        Bucket::key_ptr(db, di).write(k);
                        Bucket::elem_ptr(db, di).write(Bucket::elem_ptr(b, i).read());
                        d.1 += 1;
                    }
                    b = Bucket::overflow(b);
                }
            }
        }
        // Our clone of the old array goes first, so that the end of the grow can
        // tell whether the map held the last reference (see `retire`).
        drop(old);
        if oldbucket == self.nevacuate {
            self.advance_evacuation_mark(fl, newbit);
        }
        Ok(())
    }

    fn advance_evacuation_mark(&mut self, fl: &FlagWord, newbit: usize) {
        self.nevacuate += 1;
        // Experiments suggest that 1024 is overkill by at least an order of
        // magnitude. Put it in there as a safeguard anyway, to ensure O(1) behavior.
        let stop = (self.nevacuate + 1024).min(newbit);
        let old = self.oldbuckets.as_ref().unwrap();
        // SAFETY: live buckets of the old array.
        while self.nevacuate != stop && unsafe { evacuated(old.bucket(self.nevacuate)) } {
            self.nevacuate += 1;
        }
        if self.nevacuate == newbit {
            // Growing is all done. Free old main bucket array (iterators that
            // still walk it hold their own reference).
            retire(self.oldbuckets.take());
            fl.clear(SAME_SIZE_GROW);
        }
    }

    /// Finishes a grow in progress (evacuating every remaining old bucket), as
    /// repeated `grow_work` would.
    pub fn finish_growth(&mut self, fl: &FlagWord) -> Result<(), AllocError> {
        while self.growing() {
            self.evacuate(fl, self.nevacuate)?;
        }
        Ok(())
    }

    /// Goes past Go (golang/go#20135): rebuilds the table at the smallest B that
    /// holds the current entries, finishing any growth first, so the memory of
    /// deleted entries is returned. hash0 is kept; nothing is drawn from the
    /// external source. Iterators open across a shrink end, as across `clear`.
    /// Returns the arrays let go of, to be dropped after the write claim.
    /// Panics out of memory; see [`HMap::try_shrink`].
    #[must_use]
    pub fn shrink(&mut self, fl: &FlagWord) -> Vec<Arc<Table<K, V>>> {
        self.try_shrink(fl).expect("shrink: out of memory")
    }

    /// [`HMap::shrink`]; out of memory, the map keeps its entries and its array
    /// (a grow in progress may have been finished).
    pub fn try_shrink(&mut self, fl: &FlagWord) -> Result<Vec<Arc<Table<K, V>>>, AllocError> {
        self.try_rebuild_for(fl, self.count)
    }

    /// Goes past Go, for `set_many(..., presize=True)`: makes the table big
    /// enough for `extra` more entries now, so the inserts that follow never
    /// grow it. An empty map without buckets just gets the array `makemap`
    /// would give that hint; otherwise, if the table is too small, it is
    /// rebuilt at that size as [`HMap::shrink`] rebuilds (open iterators end).
    /// Draws nothing, but changes the growth history (and so the bucket layout)
    /// that Go would have: opt-in only. Returns the arrays let go of.
    pub fn try_presize(&mut self, fl: &FlagWord, extra: usize) -> Result<Vec<Arc<Table<K, V>>>, AllocError> {
        let want = self.count.saturating_add(extra);
        if !over_load_factor(want, self.b, self.go) {
            return Ok(Vec::new());
        }
        if self.buckets.is_none() {
            let mut b = self.b;
            while over_load_factor(want, b, self.go) {
                b += 1;
            }
            let (t, next) = Table::make_bucket_array(b, Self::GO_BUCKET_SIZE)?;
            self.buckets = Some(t);
            self.next_overflow = next;
            self.b = b;
            return Ok(Vec::new());
        }
        self.try_rebuild_for(fl, want)
    }

    /// Rebuilds the table at the smallest B that holds `n` entries (see
    /// [`HMap::shrink`]).
    fn try_rebuild_for(&mut self, fl: &FlagWord, n: usize) -> Result<Vec<Arc<Table<K, V>>>, AllocError> {
        self.finish_growth(fl)?;
        let Some(old) = self.buckets.as_ref() else { return Ok(Vec::new()) };
        let mut b = 0u8;
        while over_load_factor(n, b, self.go) {
            b += 1;
        }
        let (t, next) = Table::make_bucket_array(b, Self::GO_BUCKET_SIZE)?;
        let old_mask = bucket_mask(self.b) as u64;
        let new_mask = bucket_mask(b);
        // Count the entries of each new bucket first, so every overflow bucket the
        // rebuild needs is reserved before the first entry moves.
        let mut per_bucket: Vec<u32> = Vec::new();
        per_bucket.try_reserve_exact(bucket_shift(b)).map_err(|_| AllocError)?;
        per_bucket.resize(bucket_shift(b), 0);
        let rehash = |k: &K, top: u8, j: usize| -> u64 {
            // A NaN key's hash would draw; any bucket will do for an entry no
            // lookup can reach, so keep its old place.
            if K::REFLEXIVE || k.self_equal() {
                self.hash(k)
            } else {
                (top as u64) << 56 | (j as u64 & old_mask)
            }
        };
        for j in 0..old.nbase {
            let mut ob = old.bucket(j);
            while !ob.is_null() {
                // SAFETY: write claim held; live buckets; slots with tophash >=
                // MIN_TOP_HASH hold entries.
                unsafe {
                    for i in 0..BUCKET_CNT {
                        let top = (*ob).tophash[i];
                        if top >= MIN_TOP_HASH {
                            per_bucket[rehash(Bucket::key(ob, i), top, j) as usize & new_mask] += 1;
                        }
                    }
                    ob = Bucket::overflow(ob);
                }
            }
        }
        let need: usize = per_bucket.iter().map(|&c| (c as usize).saturating_sub(1) / BUCKET_CNT).sum();
        // SAFETY: `t` is new and ours alone.
        unsafe { t.reserve_overflow(need, next)? };
        drop(per_bucket);
        let old = self.buckets.take().unwrap();
        self.buckets = Some(t);
        self.next_overflow = next;
        self.b = b;
        self.noverflow = 0;
        self.nevacuate = 0;
        self.epoch += 1;
        for j in 0..old.nbase {
            let mut ob = old.bucket(j);
            while !ob.is_null() {
                // SAFETY: write claim held and iterators of `old` are retired by the
                // epoch bump, so the old table is ours; each live slot is moved out
                // once and then marked empty so the old table's Drop skips it.
                unsafe {
                    for i in 0..BUCKET_CNT {
                        let top = (*ob).tophash[i];
                        if top < MIN_TOP_HASH {
                            continue;
                        }
                        let k = Bucket::key_ptr(ob, i).read();
                        let e = Bucket::elem_ptr(ob, i).read();
                        Bucket::set_tophash(ob, i, EMPTY_ONE);
                        // The same hash as counted above (a NaN keeps its place).
                        let hash = if K::REFLEXIVE || k.self_equal() {
                            self.hash(&k)
                        } else {
                            (top as u64) << 56 | (j as u64 & old_mask)
                        };
                        self.insert_new(hash, k, e);
                    }
                    ob = Bucket::overflow(ob);
                }
            }
        }
        Ok(vec![old])
    }

    /// Places an entry known to be absent, as `mapassign`'s insert path does.
    ///
    /// # Safety
    /// Write claim held; the key is not in the map; the map is not growing; any
    /// overflow bucket the placement needs has been reserved.
    unsafe fn insert_new(&mut self, hash: u64, key: K, elem: V) {
        let t = self.buckets.as_ref().unwrap();
        let mut b = t.bucket(hash as usize & bucket_mask(self.b));
        // SAFETY: live buckets of the current array, exclusively ours.
        unsafe {
            let (ib, ii) = loop {
                if let Some(i) = Group::load(Bucket::tophash(b)).match_empty().lowest() {
                    break (b, i);
                }
                let ovf = Bucket::overflow(b);
                if ovf.is_null() {
                    match self.newoverflow_counted(b, false) {
                        Ok(o) => break (o, 0),
                        Err(AllocError) => unreachable!("shrink reserves every overflow bucket it needs"),
                    }
                }
                b = ovf;
            };
            Bucket::key_ptr(ib, ii).write(key);
            Bucket::elem_ptr(ib, ii).write(elem);
            Bucket::set_tophash(ib, ii, tophash(hash));
        }
    }

    /// `mapiterinit` up to its closing `mapiternext(it)`, which the caller makes
    /// (it needs the entry): draws the start and sets the iterator flags.
    pub fn mapiterinit(&self, fl: &FlagWord) -> HIter<K, V> {
        let mut it = HIter {
            buckets: None,
            old_hold: None,
            released: None,
            b: self.b,
            start_bucket: 0,
            offset: 0,
            wrapped: false,
            bucket: 0,
            bptr: ptr::null_mut(),
            i: 0,
            check_bucket: NO_CHECK,
            epoch: self.epoch,
            done: true,
        };
        if self.count == 0 {
            return it;
        }
        it.buckets = self.buckets.clone();
        // Decide where to start: a random bucket and a random offset in it. Go
        // 1.22+ draws `rand()` (64 bits); older releases `fastrand()`, or
        // `fastrand64()` when B is too large for 32 bits.
        let r = if self.go.rand64() || self.b > 31 - BUCKET_CNT_BITS {
            self.rand.fastrand64() as usize
        } else {
            self.rand.fastrand() as usize
        };
        it.start_bucket = r & bucket_mask(self.b);
        it.offset = ((r >> self.b) & (BUCKET_CNT - 1)) as u8;
        it.bucket = it.start_bucket;
        it.done = false;
        // Remember we have an iterator. Can run concurrently with another mapiterinit().
        fl.set(ITERATOR | OLD_ITERATOR);
        it
    }

    /// An iterator that starts at bucket 0, slot 0 and draws nothing (for
    /// `popitem` and other conveniences).
    pub fn mapiterinit_nodraw(&self) -> HIter<K, V> {
        HIter {
            buckets: self.buckets.clone(),
            old_hold: None,
            released: None,
            b: self.b,
            start_bucket: 0,
            offset: 0,
            wrapped: false,
            bucket: 0,
            bptr: ptr::null_mut(),
            i: 0,
            check_bucket: NO_CHECK,
            epoch: self.epoch,
            done: self.count == 0,
        }
    }

    /// `mapiternext`: the next entry, or `None` when the iteration is over.
    pub fn mapiternext(&self, fl: &FlagWord, it: &mut HIter<K, V>) -> Result<Option<(&K, &V)>, K::Error> {
        if it.done || it.epoch != self.epoch {
            // Cleared under the iterator: Go would read zeroed memory; stop.
            it.done = true;
            it.set_old_hold(None);
            return Ok(None);
        }
        let same_size = fl.has(SAME_SIZE_GROW);
        let mut bucket = it.bucket;
        let mut b = it.bptr;
        let mut i = it.i;
        let mut check_bucket = it.check_bucket;
        // SAFETY: read guard held; every bucket dereferenced belongs to a table kept
        // alive by `it.buckets`, `it.old_hold` or `self`.
        unsafe {
            loop {
                if b.is_null() {
                    if bucket == it.start_bucket && it.wrapped {
                        it.done = true;
                        it.set_old_hold(None);
                        return Ok(None);
                    }
                    if self.growing() && it.b == self.b {
                        // Iterator was started in the middle of a grow, and the grow
                        // isn't done yet. If the bucket we're looking at hasn't been
                        // filled in yet (i.e. the old bucket hasn't been evacuated)
                        // then we need to iterate through the old bucket and only
                        // return the ones that will be migrated to this bucket.
                        let old = self.oldbuckets.as_ref().unwrap();
                        let oldbucket = bucket & self.oldbucketmask(fl);
                        b = old.bucket(oldbucket);
                        if !evacuated(b) {
                            check_bucket = bucket;
                            if !it.old_hold.as_ref().is_some_and(|o| Arc::ptr_eq(o, old)) {
                                it.set_old_hold(Some(old.clone()));
                            }
                        } else {
                            b = it.buckets.as_ref().unwrap().bucket(bucket);
                            check_bucket = NO_CHECK;
                            it.set_old_hold(None);
                        }
                    } else {
                        b = it.buckets.as_ref().unwrap().bucket(bucket);
                        check_bucket = NO_CHECK;
                        it.set_old_hold(None);
                    }
                    bucket += 1;
                    if bucket == bucket_shift(it.b) {
                        bucket = 0;
                        it.wrapped = true;
                    }
                    i = 0;
                }
                while i < BUCKET_CNT {
                    let offi = (i + it.offset as usize) & (BUCKET_CNT - 1);
                    let top = (*b).tophash[offi];
                    if is_empty(top) || top == EVACUATED_EMPTY {
                        i += 1;
                        continue;
                    }
                    let k = Bucket::key(b, offi);
                    if check_bucket != NO_CHECK && !same_size {
                        // Special case: iterator was started during a grow to a
                        // larger size and the grow is not done yet. We're working on
                        // a bucket whose oldbucket has not been evacuated yet. So
                        // we're iterating through the oldbucket, skipping any keys
                        // that will go to the other new bucket.
                        if K::REFLEXIVE || k.self_equal() {
                            let hash = self.hash(k);
                            if hash as usize & bucket_mask(it.b) != check_bucket {
                                i += 1;
                                continue;
                            }
                        } else if check_bucket >> (it.b - 1) != (top & 1) as usize {
                            // NaNs: use the low bit of tophash to decide.
                            i += 1;
                            continue;
                        }
                    }
                    let result = if (top != EVACUATED_X && top != EVACUATED_Y) || !(K::REFLEXIVE || k.self_equal()) {
                        // This is the golden data, we can return it.
                        Some((k, Bucket::elem(b, offi)))
                    } else {
                        // The hash table has grown since the iterator was started.
                        // The golden data for this key is now somewhere else.
                        // Check the current hash table for the data; this handles
                        // the key having been deleted, updated, or re-inserted.
                        self.mapaccess_k(fl, k)?
                    };
                    i += 1;
                    let Some(entry) = result else { continue };
                    it.bucket = bucket;
                    it.bptr = b;
                    it.i = i;
                    it.check_bucket = check_bucket;
                    return Ok(Some(entry));
                }
                b = Bucket::overflow(b);
                i = 0;
            }
        }
    }

    /// Every bucket chain of an array, for `snapshot()`.
    fn chains(t: &Table<K, V>) -> Vec<Vec<BucketView<'_, K, V>>> {
        (0..t.nbase).map(|j| Self::chain(t.bucket(j))).collect()
    }

    fn chain<'a>(mut b: *mut Bucket<K, V>) -> Vec<BucketView<'a, K, V>> {
        let mut chain = Vec::new();
        while !b.is_null() {
            // SAFETY: read guard held; live bucket; slots with tophash >=
            // MIN_TOP_HASH hold entries.
            unsafe {
                let tophash = (*b).tophash;
                let mut entries = [None; BUCKET_CNT];
                for (i, e) in entries.iter_mut().enumerate() {
                    if tophash[i] >= MIN_TOP_HASH {
                        *e = Some((Bucket::key(b, i), Bucket::elem(b, i)));
                    }
                }
                chain.push(BucketView { tophash, entries });
                b = Bucket::overflow(b);
            }
        }
        chain
    }

    /// The current array as chains (`None` before the first bucket exists).
    pub fn snapshot_buckets(&self) -> Option<Vec<Vec<BucketView<'_, K, V>>>> {
        self.buckets.as_deref().map(Self::chains)
    }

    pub fn snapshot_oldbuckets(&self) -> Option<Vec<OldView<'_, K, V>>> {
        let old = self.oldbuckets.as_deref()?;
        Some(
            (0..old.nbase)
                .map(|j| {
                    let b = old.bucket(j);
                    // SAFETY: live bucket of the old array.
                    if unsafe { evacuated(b) } {
                        // SAFETY: as above.
                        OldView::Evacuated(unsafe { (*b).tophash })
                    } else {
                        OldView::Chain(Self::chain(b))
                    }
                })
                .collect(),
        )
    }

    fn count_overflow(t: &Table<K, V>) -> usize {
        let mut n = 0;
        for j in 0..t.nbase {
            // SAFETY: live buckets; read guard held.
            let mut b = unsafe { Bucket::overflow(t.bucket(j)) };
            while !b.is_null() {
                n += 1;
                // SAFETY: as above.
                b = unsafe { Bucket::overflow(b) };
            }
        }
        n
    }

    pub fn stats(&self) -> Stats {
        let size = Self::GO_BUCKET_SIZE;
        let bytes_of = |t: &Table<K, V>| {
            let (slab, extra) = t.allocated();
            roundupsize(slab * size) + extra * roundupsize(size)
        };
        let (buckets, overflow_buckets, mut bytes) = match self.buckets.as_deref() {
            Some(t) => (t.nbase, Self::count_overflow(t), bytes_of(t)),
            None => (0, 0, 0),
        };
        let (old_buckets, old_overflow_buckets) = match self.oldbuckets.as_deref() {
            Some(t) => {
                bytes += bytes_of(t);
                (t.nbase, Self::count_overflow(t))
            }
            None => (0, 0),
        };
        Stats {
            count: self.count,
            b: self.b,
            buckets,
            overflow_buckets,
            old_buckets,
            old_overflow_buckets,
            noverflow: self.noverflow,
            growing: self.growing(),
            nevacuate: self.nevacuate,
            bytes,
        }
    }

    /// Calls `fk`/`fv` on every key and elem the map owns (for the GC's
    /// `__traverse__`): live slots of both arrays and retained evacuated keys.
    pub fn for_each_owned(&self, mut f: impl FnMut(Option<&K>, Option<&V>)) {
        for t in self.buckets.iter().chain(self.oldbuckets.iter()) {
            // SAFETY: read guard held.
            unsafe { t.for_each_owned(&mut f) };
        }
    }

    /// A structural copy: same B, same hash0, same buckets and chains, same growth
    /// state; a fresh own generator. `clone_elem` copies one elem. Draws nothing.
    /// Panics out of memory; see [`HMap::try_clone_with`].
    pub fn clone_with(&self, clone_elem: impl Fn(&V) -> V) -> HMap<K, V> {
        self.try_clone_with(clone_elem).expect("clone_with: out of memory")
    }

    /// [`HMap::clone_with`]; out of memory, it fails before copying any entry.
    pub fn try_clone_with(&self, clone_elem: impl Fn(&V) -> V) -> Result<HMap<K, V>, AllocError> {
        // Every allocation first: the arrays, their overflow buckets and
        // retained-key bitmaps.
        let alloc_table = |t: &Table<K, V>| -> Result<(Arc<Table<K, V>>, usize), AllocError> {
            let (nt, next) = Table::<K, V>::make_bucket_array(t.nbase.trailing_zeros() as u8, Self::GO_BUCKET_SIZE)?;
            // SAFETY: `nt` is new and ours alone.
            unsafe {
                nt.reserve_overflow(Self::count_overflow(t), next)?;
                for j in 0..t.nbase {
                    if t.is_retained(j) {
                        nt.set_retained(j)?;
                    }
                }
            }
            Ok((nt, next))
        };
        let new_buckets = self.buckets.as_deref().map(alloc_table).transpose()?;
        let new_old = self.oldbuckets.as_deref().map(alloc_table).transpose()?;
        let copy_table = |t: &Table<K, V>, (nt, mut next): (Arc<Table<K, V>>, usize)| -> (Arc<Table<K, V>>, usize) {
            // Overflow buckets come from the preallocated region first, then one by
            // one, as in `newoverflow`; the copy ends up with the same allocation.
            // SAFETY: `t` is read under the read guard; `nt` is new and ours alone.
            unsafe {
                for j in 0..t.nbase {
                    let retained = t.is_retained(j);
                    let mut src = t.bucket(j);
                    let mut dst = nt.bucket(j);
                    loop {
                        (*dst).tophash = (*src).tophash;
                        for i in 0..BUCKET_CNT {
                            let top = (*src).tophash[i];
                            if top >= MIN_TOP_HASH {
                                Bucket::key_ptr(dst, i).write(Bucket::key(src, i).clone_key());
                                Bucket::elem_ptr(dst, i).write(clone_elem(Bucket::elem(src, i)));
                            } else if retained && (top == EVACUATED_X || top == EVACUATED_Y) {
                                Bucket::key_ptr(dst, i).write(Bucket::key(src, i).clone_key());
                            }
                        }
                        src = Bucket::overflow(src);
                        if src.is_null() {
                            break;
                        }
                        let o = if next < nt.slab.len() {
                            next += 1;
                            nt.bucket(next - 1)
                        } else {
                            match nt.alloc_overflow() {
                                Ok(o) => o,
                                Err(AllocError) => unreachable!("reserved by alloc_table"),
                            }
                        };
                        (*dst).overflow = o;
                        dst = o;
                    }
                }
            }
            (nt, next)
        };
        let (buckets, next_overflow) = match (self.buckets.as_deref(), new_buckets) {
            (Some(t), Some(n)) => {
                let (nt, next) = copy_table(t, n);
                (Some(nt), next)
            }
            _ => (None, 0),
        };
        let oldbuckets = match (self.oldbuckets.as_deref(), new_old) {
            (Some(t), Some(n)) => Some(copy_table(t, n).0),
            _ => None,
        };
        Ok(HMap {
            count: self.count,
            b: self.b,
            noverflow: self.noverflow,
            hash0: self.hash0,
            buckets,
            oldbuckets,
            nevacuate: self.nevacuate,
            next_overflow,
            hashkey: self.hashkey,
            go: self.go,
            hkey: self.hkey,
            rand: self.rand.fork(),
            epoch: 0,
        })
    }
}
