//! Go's `sync.Map` (`src/sync/map.go` of Go 1.19–1.23) over gomap hmaps, function
//! by function with Go's names.
//!
//! # State
//!
//! ```text
//!   read: ArcSwap<ReadOnly>     published atomically; never mutated once published
//!         ReadOnly { m: nil | Go map[any]*entry, amended }
//!   mu:   a mutex, guarding
//!         dirty: nil | Go map[any]*entry    (every non-expunged entry of read.m, plus new keys)
//!         misses: lookups that needed the mutex since the last promotion
//!   entry.p: nil (deleted) | expunged (deleted, and absent from dirty) | value
//! ```
//!
//! Both maps are [`HMap`]s of [`Iface<K>`] keys — Go's `map[any]*entry`: keys hash as
//! Go hashes an interface (`nilinterhash`), buckets hold a 16-byte key and an
//! 8-byte elem — so that, given `hashkey` and the draws, the bucket layout of both
//! maps and the order `Range` visits are Go's. An entry is shared between the two
//! maps (`Arc<Entry>`), as Go shares the `*entry`.
//!
//! # Concurrency
//!
//! * Loads are lock-free: one atomic load of `read` (arc-swap), a lookup in an
//!   immutable hmap, one atomic load of `entry.p` (arc-swap again: a storer that
//!   replaces a value while a loader reads it can never free it under the loader).
//!   On GIL builds a load whose key hashes and compares in Rust reads both cells
//!   through plain mirrors instead, with no guard (see `published.rs`).
//! * `mu` is a real mutex (parking_lot). A thread that must wait for it detaches
//!   from the interpreter while it waits, so a holder that needs the GIL (or a
//!   stop-the-world GC on free-threaded builds) can always proceed. The holder's
//!   thread is recorded: re-entering the map from the thread that holds the mutex
//!   (a key's `__eq__`, a `rand=` source, a finalizer) raises
//!   `ConcurrentMapError` instead of deadlocking.
//! * **No Python object is released while the mutex is held.** Every locked
//!   section gets a [`Trash`] and moves into it whatever it lets go of (the
//!   previous read map, removed entries, values loaded while checking an entry);
//!   the trash is dropped after the unlock. Python objects handed back to the
//!   caller are built after the unlock too.
//! * Python code that can still run under the mutex is the user's own: `__eq__`
//!   of `object` keys during lookups in the dirty map (Go compares keys under the
//!   mutex there too) and a `rand=` source when a draw falls inside a locked
//!   section. Value `__eq__` of `compare_and_swap`/`compare_and_delete` runs
//!   with no lock held, except for `compare_and_swap` of a key only the dirty map
//!   has, which compares under the mutex as Go does.

use super::published::Published;
use crate::flags::FlagWord;
use crate::hash::FallbackKey;
use crate::hash::{C0, C1};
use crate::hmap::{HMap, Table};
use crate::kinds::{MapKey, MapValue};
use crate::python::convert::{PyKey, PyVal};
use crate::python::ConcurrentMapError;
use crate::rand::{ExternalDraws, FastRand};
use crate::release::GoRelease;
use arc_swap::Guard;
use parking_lot::lock_api::RawMutex as _;
use parking_lot::RawMutex;
use pyo3::prelude::*;
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The inner maps follow Go 1.19's runtime map, as Go 1.19's `sync.Map` does
/// (1.20-1.23 share its algorithm; their map differences are in `crate::release`).
const SYNC_MAP_RELEASE: GoRelease = GoRelease::Go119;

/// A key of Go's `map[any]*entry`: `K` in an interface. Hashed as
/// `nilinterhash` does: `c1 * typehash(t, p, h ^ c0)`, where `typehash` of the
/// dynamic type is the hasher of `K`'s kind (memhash64/memhash32, f64hash/f32hash,
/// strhash).
pub struct Iface<K>(pub K);

impl<K: MapKey> MapKey for Iface<K> {
    type Error = K::Error;
    const NAME: &'static str = "interface {}";
    const GO_SIZE: usize = 16; // eface: type word + data word
    const GO_POINTERS: bool = true;
    // Go's `reflexivekey` is false for interfaces; every use of it is followed by
    // `key.equal(k, k)`, which `self_equal` answers, so K's own value is equivalent.
    const REFLEXIVE: bool = K::REFLEXIVE;
    const NEED_KEY_UPDATE: bool = K::NEED_KEY_UPDATE;
    #[inline(always)]
    fn hash(&self, seed: u64, key: &FallbackKey, rand: &FastRand) -> u64 {
        C1.wrapping_mul(self.0.hash(seed ^ C0, key, rand))
    }
    #[inline(always)]
    fn equal(&self, other: &Self) -> Result<bool, K::Error> {
        self.0.equal(&other.0)
    }
    fn self_equal(&self) -> bool {
        self.0.self_equal()
    }
    fn clone_key(&self) -> Self {
        Iface(self.0.clone_key())
    }
}

/// What `entry.p` points to when it is not nil.
pub enum Slot<V> {
    Expunged,
    Val(V),
}

/// `entry.p`: nil (`None`), expunged, or a value.
pub type P<V> = Option<Arc<Slot<V>>>;

/// Go's `entry`.
pub struct Entry<V> {
    p: Published<P<V>>,
}

impl<V: Send + Sync + 'static> MapValue for Arc<Entry<V>> {
    const NAME: &'static str = "*entry";
    const GO_SIZE: usize = 8;
    const GO_POINTERS: bool = true;
}

fn same<V>(a: &P<V>, b: &P<V>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

fn is_expunged<V>(p: &P<V>) -> bool {
    matches!(p.as_deref(), Some(Slot::Expunged))
}

/// What `tryLoadOrStore` found.
pub enum LoadOrStore<V> {
    Loaded(Arc<Slot<V>>),
    Stored,
    Expunged,
}

impl<V> Entry<V> {
    /// `newEntry(i)`.
    pub fn new(v: Arc<Slot<V>>) -> Entry<V> {
        Entry::with(Some(v))
    }

    fn with(p: P<V>) -> Entry<V> {
        Entry { p: Published::new(p) }
    }

    /// `e.load()`, for a caller that does something with the value while the
    /// guard keeps it alive (no mutex may be held: dropping the guard may
    /// release the value).
    #[inline]
    pub fn load(&self) -> Guard<P<V>> {
        self.p.load()
    }

    /// `e.load()` as an owned pointer (the value or `None`).
    pub fn load_full(&self) -> Option<Arc<Slot<V>>> {
        self.p.load_full().filter(|s| matches!(**s, Slot::Val(_)))
    }

    /// `trySwap`: swaps in `new` unless the entry is expunged (then `new` comes
    /// back as the error). The previous `p` (nil or a value) on success.
    pub fn try_swap(&self, new: Arc<Slot<V>>) -> Result<P<V>, Arc<Slot<V>>> {
        loop {
            let p = self.p.load();
            if is_expunged(&p) {
                return Err(new);
            }
            let prev = self.p.compare_and_swap(&p, Some(new.clone()));
            if same(&prev, &p) {
                return Ok(Guard::into_inner(prev));
            }
        }
    }

    /// Whether the entry is expunged; mutex held (only the holder expunges or
    /// unexpunges, so the answer stays true until it acts). A value loaded on
    /// the way goes to the trash.
    pub fn is_expunged_locked(&self, trash: &mut Vec<Arc<Slot<V>>>) -> bool {
        let p = self.p.load_full();
        let r = is_expunged(&p);
        trash.extend(p);
        r
    }

    /// `unexpungeLocked` for an entry known to be expunged (mutex held, so it
    /// still is): expunged -> nil.
    pub fn unexpunge_locked(&self, expunged: &Arc<Slot<V>>) -> bool {
        let prev = self.p.compare_and_swap(expunged, None);
        is_expunged(&prev)
    }

    /// `swapLocked`: unconditional swap (the entry is known not to be expunged).
    pub fn swap_locked(&self, new: Arc<Slot<V>>) -> P<V> {
        self.p.swap(Some(new))
    }

    /// `tryLoadOrStore`. One compare-and-swap suffices: when it fails, what it
    /// returns is the value to load, or expunged.
    pub fn try_load_or_store(&self, new: &Arc<Slot<V>>) -> LoadOrStore<V> {
        let p = self.p.load_full();
        match p.as_deref() {
            Some(Slot::Expunged) => return LoadOrStore::Expunged,
            Some(Slot::Val(_)) => return LoadOrStore::Loaded(p.unwrap()),
            None => {}
        }
        let prev = self.p.compare_and_swap(ptr::null::<Slot<V>>(), Some(new.clone()));
        match Guard::into_inner(prev) {
            None => LoadOrStore::Stored,
            Some(s) if matches!(*s, Slot::Expunged) => LoadOrStore::Expunged,
            Some(s) => LoadOrStore::Loaded(s),
        }
    }

    /// `delete`: the deleted value, if the entry held one.
    pub fn delete(&self) -> Option<Arc<Slot<V>>> {
        loop {
            let p = self.p.load();
            if !matches!(p.as_deref(), Some(Slot::Val(_))) {
                return None;
            }
            let prev = self.p.compare_and_swap(&p, None);
            if same(&prev, &p) {
                return Guard::into_inner(prev);
            }
        }
    }

    /// `tryExpungeLocked`: nil -> expunged. `Some(true)` if this call expunged
    /// it, `Some(false)` if it was already expunged, `None` if it holds a value.
    pub fn try_expunge_locked(&self, expunged: &Arc<Slot<V>>, trash: &mut Vec<Arc<Slot<V>>>) -> Option<bool> {
        let prev = self.p.compare_and_swap(ptr::null::<Slot<V>>(), Some(expunged.clone()));
        match Guard::into_inner(prev) {
            None => Some(true),
            Some(s) if matches!(*s, Slot::Expunged) => Some(false),
            Some(s) => {
                trash.push(s);
                None
            }
        }
    }

    /// The entry's state for `_debug_state`: 0 nil, 1 expunged, 2 value.
    pub fn state(&self) -> u8 {
        match self.p.load().as_deref() {
            None => 0,
            Some(Slot::Expunged) => 1,
            Some(Slot::Val(_)) => 2,
        }
    }
}

impl<V: PyVal> Entry<V> {
    /// `tryCompareAndSwap` (`new` = `None`: the loop of `CompareAndDelete`).
    /// The swap succeeds only if `p` still holds the value that was compared.
    /// Every value loaded is kept in `keep`, for a caller holding the mutex.
    pub fn try_compare_and_swap(
        &self,
        py: Python<'_>,
        old: &V,
        new: P<V>,
        keep: &mut Vec<Arc<Slot<V>>>,
    ) -> PyResult<bool> {
        loop {
            let p = self.p.load_full();
            let Some(Slot::Val(cur)) = p.as_deref() else { return Ok(false) };
            let equal = cur.eq_val(old, py);
            let p = p.unwrap();
            if !equal? {
                keep.push(p);
                return Ok(false);
            }
            let prev = self.p.compare_and_swap(&p, new.clone());
            let swapped = Arc::as_ptr(&p) == prev.as_ref().map_or(ptr::null(), Arc::as_ptr);
            keep.push(p);
            keep.extend(Guard::into_inner(prev));
            if swapped {
                return Ok(true);
            }
        }
    }
}

/// One of Go's maps and the flag word its growth state lives in.
pub struct GoMap<K, V> {
    pub h: HMap<Iface<K>, Arc<Entry<V>>>,
    pub fl: FlagWord,
}

/// Go's `readOnly`. `m` is shared (`Arc`) as Go shares `read.m` between the
/// `readOnly` values it publishes.
pub struct ReadOnly<K, V> {
    pub m: Option<Arc<GoMap<K, V>>>,
    pub amended: bool,
}

/// The slow path of a compare-and-*: the entry to compare outside the mutex,
/// or the answer already found under it.
type CasSlow<V> = (Option<Arc<Entry<V>>>, Option<bool>);

/// A bucket array of one of the inner maps.
pub type MapTable<K, V> = Table<Iface<K>, Arc<Entry<V>>>;
/// A key (if asked for) and its entry, copied out of a map.
pub type EntryCopy<K, V> = (Option<Iface<K>>, Arc<Entry<V>>);

/// What the mutex guards.
pub struct Locked<K, V> {
    pub dirty: Option<GoMap<K, V>>,
    pub misses: usize,
}

/// What a locked section lets go of, dropped after the unlock.
pub struct Trash<K, V> {
    pub slots: Vec<Arc<Slot<V>>>,
    pub reads: Vec<Arc<ReadOnly<K, V>>>,
    pub entries: Vec<(Iface<K>, Arc<Entry<V>>)>,
    pub keys: Vec<Iface<K>>,
    pub maps: Vec<GoMap<K, V>>,
    pub tables: Vec<Arc<MapTable<K, V>>>,
}

impl<K, V> Default for Trash<K, V> {
    fn default() -> Self {
        Trash {
            slots: Vec::new(),
            reads: Vec::new(),
            entries: Vec::new(),
            keys: Vec::new(),
            maps: Vec::new(),
            tables: Vec::new(),
        }
    }
}

/// Every map of one SyncMap draws from the SyncMap's one source, in Go's order.
struct SharedDraws(Arc<FastRand>);

impl ExternalDraws for SharedDraws {
    fn next_draw(&mut self) -> Option<u64> {
        Some(self.0.fastrand64())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

thread_local! {
    static THREAD_TOKEN: u8 = const { 0 };
}

/// A nonzero number unique to the calling thread while it lives.
fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| t as *const u8 as usize)
}

/// Holds `mu`; unlocking clears the owner.
struct MuGuard<'a> {
    mu: &'a RawMutex,
    owner: &'a AtomicUsize,
}

impl Drop for MuGuard<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Relaxed);
        // SAFETY: a MuGuard exists only while this thread holds `mu` (see `lock`).
        unsafe { self.mu.unlock() }
    }
}

/// Go's `sync.Map` for one key kind and value kind.
pub struct SyncCore<K: 'static, V: 'static> {
    pub read: Published<Arc<ReadOnly<K, V>>>,
    mu: RawMutex,
    /// The thread token of the thread holding `mu` (0: none).
    owner: AtomicUsize,
    st: UnsafeCell<Locked<K, V>>,
    pub rand: Arc<FastRand>,
    pub hashkey: [u64; 4],
    expunged: Arc<Slot<V>>,
}

thread_local! {
    /// How many `SyncCore`s this thread is dropping, and what nested drops left.
    static DROP_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static DROP_PENDING: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Dropping a map drops its values, which may be maps holding maps: a chain
/// 100,000 deep would recurse as deep and overflow the C stack. The outermost
/// drop on a thread releases the contents and then, in a loop, whatever the
/// nested drops left in `DROP_PENDING` instead of recursing (a work list, as
/// CPython's trashcan does for its containers).
impl<K: 'static, V: 'static> Drop for SyncCore<K, V> {
    fn drop(&mut self) {
        let contents: Box<dyn std::any::Any> =
            Box::new((self.read.swap(Arc::new(ReadOnly { m: None, amended: false })), self.st.get_mut().dirty.take()));
        if DROP_DEPTH.with(|d| d.get()) > 0 {
            DROP_PENDING.with(|p| p.borrow_mut().push(contents));
            return;
        }
        DROP_DEPTH.with(|d| d.set(1));
        drop(contents);
        while let Some(next) = DROP_PENDING.with(|p| p.borrow_mut().pop()) {
            drop(next);
        }
        DROP_DEPTH.with(|d| d.set(0));
    }
}

// SAFETY: `st` is only accessed with `mu` held (`locked`, `try_locked`); every
// other field is Sync by itself.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for SyncCore<K, V> {}

pub type Lookup<'m, V> = Option<&'m Arc<Entry<V>>>;

impl<K: PyKey, V: PyVal> SyncCore<K, V> {
    pub fn new(hashkey: [u64; 4], external: Option<Box<dyn ExternalDraws>>) -> Self {
        SyncCore {
            read: Published::new(Arc::new(ReadOnly { m: None, amended: false })),
            mu: RawMutex::INIT,
            owner: AtomicUsize::new(0),
            st: UnsafeCell::new(Locked { dirty: None, misses: 0 }),
            rand: Arc::new(FastRand::from_os(external)),
            hashkey,
            expunged: Arc::new(Slot::Expunged),
        }
    }

    /// A generator for one inner map: its draws come from the shared source.
    fn map_rand(&self) -> FastRand {
        FastRand::from_os(Some(Box::new(SharedDraws(self.rand.clone()))))
    }

    /// A structural copy (for the cross-check's trials, not API): the same read
    /// and dirty maps bucket for bucket, entries shared between them as in the
    /// original, the same misses; it draws from `external`.
    pub fn fork(&self, py: Python<'_>, external: Option<Box<dyn ExternalDraws>>) -> PyResult<Self> {
        let new = SyncCore::new(self.hashkey, external);
        let (read, dirty, misses) = self.locked(py, |st, read, _| {
            let clones: std::cell::RefCell<std::collections::HashMap<*const Entry<V>, Arc<Entry<V>>>> =
                Default::default();
            let clone_entry = |e: &Arc<Entry<V>>| -> Arc<Entry<V>> {
                clones
                    .borrow_mut()
                    .entry(Arc::as_ptr(e))
                    .or_insert_with(|| {
                        let p = e.p.load_full();
                        let p = if is_expunged(&p) { Some(new.expunged.clone()) } else { p };
                        Arc::new(Entry::with(p))
                    })
                    .clone()
            };
            let clone_map = |g: &GoMap<K, V>| -> GoMap<K, V> {
                let mut h = g.h.clone_with(&clone_entry);
                h.rand = new.map_rand();
                let fl = FlagWord::new();
                fl.set(g.fl.go_flags() as u32 & crate::flags::SAME_SIZE_GROW);
                GoMap { h, fl }
            };
            let r = ReadOnly { m: read.m.as_deref().map(|g| Arc::new(clone_map(g))), amended: read.amended };
            (r, st.dirty.as_ref().map(clone_map), st.misses)
        })?;
        drop(new.read.swap(Arc::new(read)));
        // SAFETY: `new` is not shared yet.
        unsafe { *new.st.get() = Locked { dirty, misses } };
        Ok(new)
    }

    /// `make(map[any]*entry, hint)`: draws hash0 from the shared source.
    pub fn make_map(&self, hint: usize) -> GoMap<K, V> {
        GoMap { h: HMap::makemap(hint, self.hashkey, self.map_rand(), SYNC_MAP_RELEASE), fl: FlagWord::new() }
    }

    fn lock(&self, py: Python<'_>) -> PyResult<MuGuard<'_>> {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            return Err(ConcurrentMapError::new_err(
                "SyncMap used from inside one of its own operations on the same thread (a key's __eq__, a rand \
                 source or a finalizer called back into the map while it held its mutex)",
            ));
        }
        if !self.mu.try_lock() {
            let mu = &self.mu;
            py.detach(|| mu.lock());
        }
        self.owner.store(me, Ordering::Relaxed);
        Ok(MuGuard { mu: &self.mu, owner: &self.owner })
    }

    /// Runs `f` with the mutex held, on the dirty state and the current read
    /// map; what `f` puts in the trash (and the read map it was given) is
    /// dropped after the unlock.
    pub fn locked<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Locked<K, V>, &Arc<ReadOnly<K, V>>, &mut Trash<K, V>) -> R,
    ) -> PyResult<R> {
        let mut trash = Trash::default();
        let read;
        let r = {
            let _g = self.lock(py)?;
            read = self.read.load_full();
            // SAFETY: the mutex is held until `_g` drops.
            let st = unsafe { &mut *self.st.get() };
            f(st, &read, &mut trash)
        };
        // After the unlock: `read` may be the last owner of a replaced read map.
        drop(trash);
        drop(read);
        Ok(r)
    }

    /// As [`SyncCore::locked`] but never waits (for the GC): `None` if busy.
    pub fn try_locked<R>(&self, f: impl FnOnce(&mut Locked<K, V>, &Arc<ReadOnly<K, V>>) -> R) -> Option<R> {
        if !self.mu.try_lock() {
            return None;
        }
        let _g = MuGuard { mu: &self.mu, owner: &self.owner };
        self.owner.store(thread_token(), Ordering::Relaxed);
        let read = self.read.load_full();
        // SAFETY: the mutex is held until `_g` drops.
        let st = unsafe { &mut *self.st.get() };
        Some(f(st, &read))
    }

    /// `m[key]` on a map that may be nil, as `mapaccess` does: an empty or nil
    /// map still hashes the key (`hashMightPanic` is true for interface keys),
    /// which draws for a NaN.
    #[inline]
    pub fn access<'m>(&self, m: Option<&'m GoMap<K, V>>, key: &Iface<K>) -> PyResult<Lookup<'m, V>> {
        match m {
            Some(g) if g.h.count > 0 => g.h.mapaccess(&g.fl, key).map_err(K::raise),
            _ => {
                if !key.self_equal() {
                    key.hash(0, &FallbackKey::new(self.hashkey, SYNC_MAP_RELEASE), &self.rand);
                }
                Ok(None)
            }
        }
    }

    /// `delete(m, key)`, as `mapdelete` does (see [`SyncCore::access`]).
    fn go_delete(&self, g: &mut GoMap<K, V>, key: &Iface<K>, trash: &mut Trash<K, V>) -> PyResult<()> {
        if g.h.count == 0 {
            if !key.self_equal() {
                key.hash(0, &FallbackKey::new(self.hashkey, SYNC_MAP_RELEASE), &self.rand);
            }
            return Ok(());
        }
        trash.entries.extend(g.h.mapdelete(&g.fl, key).map_err(K::raise)?);
        Ok(())
    }

    /// `m.dirty[key] = e` for a key the dirty map lacks.
    fn dirty_put(&self, st: &mut Locked<K, V>, key: Iface<K>, e: Arc<Entry<V>>) -> PyResult<()> {
        let d = st.dirty.as_mut().expect("sync.Map invariant: dirty exists here");
        if let Some(old) = d.h.mapassign(&d.fl, key, e).map_err(K::raise)? {
            drop(old); // an Arc<Entry> the read map shares: never the last owner
        }
        Ok(())
    }

    /// `missLocked`.
    pub fn miss_locked(&self, st: &mut Locked<K, V>, trash: &mut Trash<K, V>) {
        st.misses += 1;
        if st.misses < st.dirty.as_ref().map_or(0, |d| d.h.count) {
            return;
        }
        let m = st.dirty.take().map(Arc::new);
        trash.reads.push(self.read.swap(Arc::new(ReadOnly { m, amended: false })));
        st.misses = 0;
    }

    /// `dirtyLocked`: copies the read map into a new dirty map, expunging its
    /// nil entries. If a key's `__eq__` raises midway, the entries it expunged
    /// are restored and nothing is installed.
    pub fn dirty_locked(&self, st: &mut Locked<K, V>, read: &ReadOnly<K, V>, trash: &mut Trash<K, V>) -> PyResult<()> {
        if st.dirty.is_some() {
            return Ok(());
        }
        let rm = read.m.as_deref();
        let mut d = self.make_map(rm.map_or(0, |m| m.h.count));
        if let Some(rm) = rm {
            let mut newly_expunged = Vec::new();
            let mut copy = || -> PyResult<()> {
                let mut it = rm.h.mapiterinit(&rm.fl);
                while let Some((k, e)) = rm.h.mapiternext(&rm.fl, &mut it).map_err(K::raise)? {
                    match e.try_expunge_locked(&self.expunged, &mut trash.slots) {
                        Some(true) => newly_expunged.push(e.clone()),
                        Some(false) => {}
                        None => {
                            d.h.mapassign(&d.fl, k.clone_key(), e.clone()).map_err(K::raise)?;
                        }
                    }
                }
                Ok(())
            };
            if let Err(err) = copy() {
                for e in newly_expunged {
                    e.unexpunge_locked(&self.expunged);
                }
                trash.maps.push(d);
                return Err(err);
            }
        }
        st.dirty = Some(d);
        Ok(())
    }

    /// The tail of `Swap`/`LoadOrStore` for a key in neither map: make sure the
    /// dirty map exists, mark the read map amended, add the entry.
    fn add_new_locked(
        &self,
        st: &mut Locked<K, V>,
        read: &ReadOnly<K, V>,
        key: Iface<K>,
        e: Arc<Entry<V>>,
        trash: &mut Trash<K, V>,
    ) -> PyResult<()> {
        if !read.amended {
            // We're adding the first new key to the dirty map. Make sure it is
            // allocated and mark the read-only map as incomplete.
            if let Err(err) = self.dirty_locked(st, read, trash) {
                trash.keys.push(key);
                return Err(err);
            }
            // The dirty map exists from here on even if the assignment below
            // fails: a state Go also passes through.
            trash.reads.push(self.read.swap(Arc::new(ReadOnly { m: read.m.clone(), amended: true })));
        }
        self.dirty_put(st, key, e)
    }

    /// `Load`.
    pub fn load(&self, py: Python<'_>, key: &Iface<K>) -> PyResult<Option<Py<PyAny>>> {
        {
            // A pure key (hashed and compared in Rust) on a GIL build peeks at
            // the read map; an `object` key's `==` may run anything, so its
            // lookup holds a guard.
            #[cfg(not(Py_GIL_DISABLED))]
            // SAFETY: attached (`py`), and until the value is referenced nothing
            // runs Python code or releases an object: the key is pure, the read
            // map is never written once published, and `load_py` only makes an
            // untracked object or increfs one.
            let peeked = key.0.pure_lookup().then(|| unsafe { &*self.read.peek(py) });
            #[cfg(Py_GIL_DISABLED)]
            let peeked: Option<&ReadOnly<K, V>> = None;
            let guard;
            let read = match peeked {
                Some(r) => r,
                None => {
                    guard = self.read.load();
                    &**guard
                }
            };
            match self.access(read.m.as_deref(), key)? {
                Some(e) => return load_py(py, e),
                None if !read.amended => return Ok(None),
                None => {}
            }
        }
        let e = self.locked(py, |st, read, trash| -> PyResult<Option<Arc<Entry<V>>>> {
            if let Some(e) = self.access(read.m.as_deref(), key)? {
                return Ok(Some(e.clone()));
            }
            if !read.amended {
                return Ok(None);
            }
            let e = self.access(st.dirty.as_ref(), key)?.cloned();
            // Regardless of whether the entry was present, record a miss: this
            // key will take the slow path until the dirty map is promoted.
            self.miss_locked(st, trash);
            Ok(e)
        })??;
        match e {
            Some(e) => load_py(py, &e),
            None => Ok(None),
        }
    }

    /// `Swap` (and `Store`, which is `Swap` since Go 1.20; Go 1.19's `Store`
    /// makes the same map operations). The previous value, `None` if absent.
    pub fn swap(&self, py: Python<'_>, key: Iface<K>, new: Arc<Slot<V>>) -> PyResult<P<V>> {
        let mut new = new;
        {
            let read = self.read.load();
            if let Some(e) = self.access(read.m.as_deref(), &key)? {
                match e.try_swap(new) {
                    Ok(prev) => return Ok(prev),
                    Err(back) => new = back,
                }
            }
        }
        let (prev, _key) = self.locked(py, |st, read, trash| -> PyResult<_> {
            if let Some(e) = self.access(read.m.as_deref(), &key)? {
                if e.is_expunged_locked(&mut trash.slots) {
                    // The entry was previously expunged, which implies that
                    // there is a non-nil dirty map and this entry is not in it.
                    // (Added before unexpunging, so that a raising `__eq__`
                    // leaves everything as it was.)
                    self.dirty_put(st, key, e.clone())?;
                    e.unexpunge_locked(&self.expunged);
                    return Ok((e.swap_locked(new), None));
                }
                return Ok((e.swap_locked(new), Some(key)));
            }
            if let Some(e) = self.access(st.dirty.as_ref(), &key)? {
                return Ok((e.swap_locked(new), Some(key)));
            }
            self.add_new_locked(st, read, key, Arc::new(Entry::new(new)), trash)?;
            Ok((None, None))
        })??;
        Ok(prev)
    }

    /// `LoadOrStore`: `(actual, loaded)`.
    pub fn load_or_store(&self, py: Python<'_>, key: Iface<K>, new: Arc<Slot<V>>) -> PyResult<(Arc<Slot<V>>, bool)> {
        {
            let read = self.read.load();
            if let Some(e) = self.access(read.m.as_deref(), &key)? {
                match e.try_load_or_store(&new) {
                    LoadOrStore::Loaded(v) => return Ok((v, true)),
                    LoadOrStore::Stored => return Ok((new, false)),
                    LoadOrStore::Expunged => {}
                }
            }
        }
        let out = self.locked(py, |st, read, trash| -> PyResult<(P<V>, Option<Iface<K>>)> {
            let got = |e: &Entry<V>| match e.try_load_or_store(&new) {
                LoadOrStore::Loaded(v) => Some(v),
                _ => None, // stored (an entry under the mutex is never expunged here)
            };
            if let Some(e) = self.access(read.m.as_deref(), &key)? {
                if e.is_expunged_locked(&mut trash.slots) {
                    self.dirty_put(st, key, e.clone())?;
                    e.unexpunge_locked(&self.expunged);
                    return Ok((got(e), None));
                }
                return Ok((got(e), Some(key)));
            }
            if let Some(e) = self.access(st.dirty.as_ref(), &key)?.cloned() {
                let r = got(&e);
                self.miss_locked(st, trash);
                return Ok((r, Some(key)));
            }
            self.add_new_locked(st, read, key, Arc::new(Entry::new(new.clone())), trash)?;
            Ok((None, None))
        })??;
        Ok(match out.0 {
            Some(v) => (v, true),
            None => (new, false),
        })
    }

    /// `LoadAndDelete`: the deleted value, `None` if absent.
    pub fn load_and_delete(&self, py: Python<'_>, key: &Iface<K>) -> PyResult<Option<Arc<Slot<V>>>> {
        let e = {
            let read = self.read.load();
            match self.access(read.m.as_deref(), key)? {
                Some(e) => return Ok(e.delete()),
                None if !read.amended => return Ok(None),
                None => {}
            }
            drop(read);
            self.locked(py, |st, read, trash| -> PyResult<Option<Arc<Entry<V>>>> {
                if let Some(e) = self.access(read.m.as_deref(), key)? {
                    return Ok(Some(e.clone()));
                }
                if !read.amended {
                    return Ok(None);
                }
                let e = self.access(st.dirty.as_ref(), key)?.cloned();
                if let Some(d) = st.dirty.as_mut() {
                    self.go_delete(d, key, trash)?;
                }
                self.miss_locked(st, trash);
                Ok(e)
            })??
        };
        Ok(e.and_then(|e| e.delete()))
    }

    /// `CompareAndSwap` (`new` = `None`: `CompareAndDelete`, which differs in
    /// its slow path).
    ///
    /// For a key only the dirty map has, `CompareAndSwap` compares with the
    /// mutex held, as Go does (so a raising `__eq__` leaves no miss behind, as
    /// Go's panic does); everywhere else the compare runs with no lock held.
    pub fn compare_and_swap(&self, py: Python<'_>, key: &Iface<K>, old: &V, new: P<V>) -> PyResult<bool> {
        let deleting = new.is_none();
        let mut keep = Vec::new();
        {
            let read = self.read.load();
            match self.access(read.m.as_deref(), key)? {
                Some(e) => return e.try_compare_and_swap(py, old, new, &mut keep),
                None if !read.amended => return Ok(false),
                None => {}
            }
        }
        let (e, done) = self.locked(py, |st, read, trash| -> PyResult<CasSlow<V>> {
            if let Some(e) = self.access(read.m.as_deref(), key)? {
                return Ok((Some(e.clone()), None));
            }
            if deleting {
                if !read.amended {
                    return Ok((None, None));
                }
                // Don't delete key from dirty: the compare is still to come.
                // Regardless of whether an entry was present, record a miss.
                let e = self.access(st.dirty.as_ref(), key)?.cloned();
                self.miss_locked(st, trash);
                return Ok((e, None));
            }
            let Some(e) = self.access(st.dirty.as_ref(), key)?.cloned() else { return Ok((None, Some(false))) };
            let swapped = e.try_compare_and_swap(py, old, new.clone(), &mut trash.slots)?;
            // We needed to lock mu in order to load the entry for key, and the
            // operation didn't change the set of keys in the map (so it would be
            // made more efficient by promoting the dirty map to read-only).
            // Count it as a miss so that we will eventually switch to the more
            // efficient steady state.
            self.miss_locked(st, trash);
            Ok((Some(e), Some(swapped)))
        })??;
        if let Some(done) = done {
            return Ok(done);
        }
        match e {
            Some(e) => e.try_compare_and_swap(py, old, new, &mut keep),
            None => Ok(false),
        }
    }

    /// `Clear` (Go 1.23).
    pub fn clear(&self, py: Python<'_>) -> PyResult<()> {
        {
            let read = self.read.load();
            if read.m.as_ref().is_none_or(|m| m.h.count == 0) && !read.amended {
                // Avoid allocating a new readOnly when the map is already clear.
                return Ok(());
            }
        }
        self.locked(py, |st, read, trash| {
            if read.m.as_ref().is_some_and(|m| m.h.count > 0) || read.amended {
                trash.reads.push(self.read.swap(Arc::new(ReadOnly { m: None, amended: false })));
            }
            if let Some(d) = st.dirty.as_mut() {
                trash.tables.extend(d.h.mapclear(&d.fl));
            }
            // Don't immediately promote the newly-cleared dirty map on the next operation.
            st.misses = 0;
        })
    }

    /// Range's prologue: promote the dirty map if the read map is amended, and
    /// return the read map to iterate.
    pub fn range_read(&self, py: Python<'_>) -> PyResult<Arc<ReadOnly<K, V>>> {
        let read = self.read.load_full();
        if !read.amended {
            return Ok(read);
        }
        drop(read);
        self.locked(py, |st, read, trash| {
            if !read.amended {
                return read.clone();
            }
            let m = st.dirty.take().map(Arc::new);
            let new = Arc::new(ReadOnly { m, amended: false });
            trash.reads.push(self.read.swap(new.clone()));
            st.misses = 0;
            new
        })
    }

    /// Every entry, without a draw and without changing the state (for `len`,
    /// `repr`, `==`, pickling): the dirty map when amended (under the mutex),
    /// else the read map. Key clones and entries, dropped by the caller.
    pub fn entries_nodraw(&self, py: Python<'_>, keys: bool) -> PyResult<Vec<EntryCopy<K, V>>> {
        let collect = |g: &GoMap<K, V>| -> PyResult<Vec<EntryCopy<K, V>>> {
            let mut out = Vec::with_capacity(g.h.count);
            let mut it = g.h.mapiterinit_nodraw();
            while let Some((k, e)) = g.h.mapiternext(&g.fl, &mut it).map_err(K::raise)? {
                out.push((keys.then(|| k.clone_key()), e.clone()));
            }
            Ok(out)
        };
        let read = self.read.load_full();
        if !read.amended {
            return match read.m.as_deref() {
                Some(m) => collect(m),
                None => Ok(Vec::new()),
            };
        }
        drop(read);
        self.locked(py, |st, read, _| match (read.amended, st.dirty.as_ref(), read.m.as_deref()) {
            (true, Some(d), _) => collect(d),
            (false, _, Some(m)) => collect(m),
            _ => Ok(Vec::new()),
        })?
    }
}

/// A value loaded from an entry, as Python (`None`: nil or expunged).
#[inline]
pub fn load_py<V: PyVal>(py: Python<'_>, e: &Entry<V>) -> PyResult<Option<Py<PyAny>>> {
    // On GIL builds `entry.p` is peeked: from the peek to the end of `to_py`
    // (an int or a float made, or an object incref'd) nothing runs Python code
    // or releases an object, and the caller keeps `e` alive.
    #[cfg(not(Py_GIL_DISABLED))]
    // SAFETY: attached (`py`), and see above.
    let slot = unsafe { e.p.peek(py).as_ref() };
    #[cfg(Py_GIL_DISABLED)]
    let guard = e.load();
    #[cfg(Py_GIL_DISABLED)]
    let slot = guard.as_deref();
    match slot {
        Some(Slot::Val(v)) => Ok(Some(v.to_py(py)?)),
        _ => Ok(None),
    }
}

/// A loaded slot as Python.
pub fn slot_py<V: PyVal>(py: Python<'_>, s: &Slot<V>) -> PyResult<Py<PyAny>> {
    match s {
        Slot::Val(v) => v.to_py(py),
        Slot::Expunged => Ok(py.None()),
    }
}
