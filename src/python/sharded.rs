//! `gomap._core.ShardedMap`: power-of-two many typed [`HMap`]s ("shards"), each
//! behind its own mutex, for maps shared by threads.
//!
//! A key's shard is chosen from [`ShardKey::shard_hash`], a mix of the key's
//! bits (or its Python hash for `object` keys) that is unrelated to the hash the
//! shard's `HMap` computes with its own `hash0`, so the shard index says nothing
//! about the bucket index or the tophash inside the shard.
//!
//! # Locking rules (the only place they are enforced)
//!
//! * A shard's mutex is taken with `try_lock`; when it is busy the thread waits
//!   *detached* (`py.detach`: the GIL is released, or, on free-threaded builds,
//!   the thread lets stop-the-world phases proceed), so a lock holder that needs
//!   the GIL always gets it.
//! * Each shard records the thread that holds it and what it does (`mode`). A
//!   call from the same thread into a shard it holds — a key's `__eq__` or a
//!   value's `__eq__` calling back into the map — never waits for itself: a
//!   lookup inside a lookup proceeds (as on a plain `Map`), anything else raises
//!   `ConcurrentMapError`.
//! * A thread that already holds a shard lock (it is inside such a callback)
//!   never *waits* for another one: a busy shard raises `ConcurrentMapError`,
//!   since waiting could close a cycle with another thread doing the same.
//!   Operations that take several locks (`clear`, `copy`, `stats`, `add_many`)
//!   take them in ascending shard order before any user code can run.
//! * No Python object that the map held is released while a shard lock is held,
//!   and no GC-tracked Python object is allocated under one: replaced and
//!   removed entries are carried out of the locked section and dropped after the
//!   unlock; entries are copied out (integers copied, objects incref'd) and
//!   turned into tuples and lists only after it. Objects converted from the
//!   caller's arguments may be dropped anywhere: the caller still owns them.
//! * Every access to a shard's `HMap` holds the shard's mutex (the GC's
//!   `__traverse__` and `__clear__` only `try_lock` it), and a shard held for
//!   writing refuses every nested call, so the mutex alone excludes writers:
//!   the map's flag-word claims, which a plain `Map` needs because it has no
//!   lock, are not taken (`Shard::read`/`Shard::write`), saving two locked
//!   instructions per lookup and one per write.
//! * `len` is an atomic total that every write updates while it holds its shard
//!   lock: it is exact without taking any lock.

use super::anymap::{construct, dispatch, engine_enum};
use super::batch::{bool_array, copy_buffer, numpy, Batch};
use super::convert::{ObjKey, PyKey, PyVal};
use super::map::{kind_name, random_hashkey, Shared};
use super::{value_ok, ConcurrentMapError};
use crate::flags::{FlagWord, SAME_SIZE_GROW};
use crate::hash::FallbackKey;
use crate::hmap::{HMap, Stats};
use crate::rand::FastRand;
use crate::release::GoRelease;
use parking_lot::lock_api::RawMutex as _;
use parking_lot::RawMutex;
use pyo3::exceptions::{PyKeyError, PyMemoryError, PyOverflowError, PyTypeError, PyUnicodeEncodeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::PyTraverseError;
use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

// ---------------------------------------------------------------------------
// shard choice
// ---------------------------------------------------------------------------

/// 2**64 / golden ratio (odd): Fibonacci hashing.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn mix(x: u64) -> u64 {
    (x ^ (x >> 32)).wrapping_mul(GOLDEN)
}

/// Seeds of the string/bytes shard hash: random per process, and not any
/// shard's `hash0`.
fn str_seed() -> &'static (u64, FallbackKey) {
    static SEED: OnceLock<(u64, FallbackKey)> = OnceLock::new();
    SEED.get_or_init(|| {
        let r = FastRand::from_os(None);
        let key = [r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1];
        (r.fastrand64(), FallbackKey::new(key, GoRelease::default()))
    })
}

/// The 64 bits a key's shard is taken from (the top ones matter most). Equal
/// keys (as the shard's `HMap` compares them) give equal bits.
pub trait ShardKey {
    fn shard_hash(&self) -> u64;
}

macro_rules! int_shard_key {
    ($($t:ty),*) => {$(
        impl ShardKey for $t {
            #[inline(always)]
            fn shard_hash(&self) -> u64 {
                mix(*self as u64)
            }
        }
    )*};
}
int_shard_key!(i64, u64, i32, u32);

impl ShardKey for f64 {
    #[inline(always)]
    fn shard_hash(&self) -> u64 {
        mix((*self + 0.0).to_bits()) // + 0.0: -0.0 == 0.0 share a shard
    }
}

impl ShardKey for f32 {
    #[inline(always)]
    fn shard_hash(&self) -> u64 {
        mix((*self + 0.0).to_bits() as u64)
    }
}

impl ShardKey for Box<str> {
    #[inline]
    fn shard_hash(&self) -> u64 {
        let (seed, key) = str_seed();
        mix(crate::hash::memhash(self.as_bytes(), *seed, key))
    }
}

impl ShardKey for Box<[u8]> {
    #[inline]
    fn shard_hash(&self) -> u64 {
        let (seed, key) = str_seed();
        mix(crate::hash::memhash(self, *seed, key))
    }
}

impl ShardKey for ObjKey {
    #[inline(always)]
    fn shard_hash(&self) -> u64 {
        mix(self.hash as u64)
    }
}

/// What ShardedMap needs of a value kind beyond [`PyVal`]: an identity test
/// (for the optimistic `update_with` and `retain`) and the arithmetic of `add`.
pub trait ShardVal: PyVal + Batch {
    /// Whether `add`/`add_many` apply (int64 and float64 values).
    const NUMERIC: bool;
    /// The very same stored value: bits for numbers, identity for objects.
    fn same(&self, other: &Self) -> bool;
    /// `cur + delta` (a missing value counts as 0); `None` on int64 overflow.
    fn checked_add(cur: Option<&Self>, delta: &Self) -> Option<Self>;
    /// Undoes one `checked_add` that succeeded.
    fn unadd(cur: &Self, delta: &Self) -> Self;
    /// A delta for `add`, converted as a value of this kind.
    fn delta_from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self>;
    /// The deltas of `add_many`: a buffer or a sequence.
    fn collect_deltas(ob: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Self>>>;
}

impl ShardVal for i64 {
    const NUMERIC: bool = true;
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    fn checked_add(cur: Option<&Self>, delta: &Self) -> Option<Self> {
        cur.copied().unwrap_or(0).checked_add(*delta)
    }
    fn unadd(cur: &Self, delta: &Self) -> Self {
        cur.wrapping_sub(*delta)
    }
    fn delta_from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        <i64 as PyVal>::from_py(ob)
    }
    fn collect_deltas(ob: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Self>>> {
        collect_deltas_with(ob, copy_buffer::<i64>)
    }
}

impl ShardVal for f64 {
    const NUMERIC: bool = true;
    fn same(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits()
    }
    fn checked_add(cur: Option<&Self>, delta: &Self) -> Option<Self> {
        Some(cur.copied().unwrap_or(0.0) + delta)
    }
    fn unadd(cur: &Self, delta: &Self) -> Self {
        cur - delta // never needed: float additions do not fail
    }
    fn delta_from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        <f64 as PyVal>::from_py(ob)
    }
    fn collect_deltas(ob: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Self>>> {
        collect_deltas_with(ob, copy_buffer::<f64>)
    }
}

impl ShardVal for Py<PyAny> {
    const NUMERIC: bool = false;
    fn same(&self, other: &Self) -> bool {
        self.is(other)
    }
    fn checked_add(_cur: Option<&Self>, _delta: &Self) -> Option<Self> {
        None
    }
    fn unadd(cur: &Self, _delta: &Self) -> Self {
        cur.copy_out()
    }
    fn delta_from_py(_ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        Err(not_numeric())
    }
    fn collect_deltas(_ob: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Self>>> {
        Err(not_numeric())
    }
}

fn not_numeric() -> PyErr {
    PyTypeError::new_err("add() and add_many() need int64 or float64 values; this map's values are objects")
}

/// Deltas from a buffer or a sequence; `None` for a single number (applied to
/// every key).
fn collect_deltas_with<T: ShardVal>(
    ob: &Bound<'_, PyAny>,
    buffer: fn(&Bound<'_, PyAny>, &str) -> PyResult<Option<Vec<T>>>,
) -> PyResult<Option<Vec<T>>> {
    if ob.is_instance_of::<PyInt>() || ob.is_instance_of::<PyFloat>() {
        return Ok(None);
    }
    if let Some(v) = buffer(ob, "deltas")? {
        return Ok(Some(v));
    }
    if ob.is_instance_of::<PyString>() || ob.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err("deltas must be a number, a buffer or a sequence, not str/bytes"));
    }
    match ob.try_iter() {
        Ok(it) => Ok(Some(it.map(|x| x.and_then(|x| T::delta_from_py(&x))).collect::<PyResult<_>>()?)),
        Err(_) => Ok(None), // a number-like object (__index__/__float__): one delta
    }
}

// ---------------------------------------------------------------------------
// shards and their locks
// ---------------------------------------------------------------------------

const IDLE: u8 = 0;
const READING: u8 = 1;
const WRITING: u8 = 2;

thread_local! {
    /// How many shard locks (of any ShardedMap) this thread holds. Its address
    /// doubles as the thread's tag in `Shard::owner`: one thread-local access
    /// per operation.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// This thread's `HELD` counter. The pointer is nonzero, unique among live
/// threads, valid while this thread lives, and only dereferenced on it.
#[inline]
fn this_thread() -> *const Cell<usize> {
    HELD.with(|h| h as *const Cell<usize>)
}

#[inline]
fn held() -> usize {
    HELD.with(Cell::get)
}

fn reentrant() -> PyErr {
    ConcurrentMapError::new_err(
        "ShardedMap re-entered from the thread that holds the shard (a key's __eq__/__hash__ or a value's __eq__ \
         called back into the map); only a lookup inside a lookup is allowed",
    )
}

fn would_wait() -> PyErr {
    ConcurrentMapError::new_err(
        "ShardedMap shard busy while this thread holds another shard lock (a call from a key's or a value's \
         __eq__); waiting could deadlock, so the call is refused",
    )
}

/// One shard: its typed map, the mutex, and who holds it doing what.
#[repr(align(128))] // one shard per cache line pair: no false sharing between locks
pub struct Shard<K, V> {
    raw: RawMutex,
    owner: AtomicUsize,
    mode: AtomicU8,
    map: Shared<K, V>,
}

/// A held (or, for a permitted nested lookup, borrowed) shard.
struct Guard<'a, K, V> {
    shard: &'a Shard<K, V>,
    /// The holding thread's counter; null for a borrowed (nested) guard. The
    /// raw pointer also keeps the guard on its thread (`!Send`).
    held: *const Cell<usize>,
}

impl<K, V> Drop for Guard<'_, K, V> {
    fn drop(&mut self) {
        if !self.held.is_null() {
            self.shard.mode.store(IDLE, Ordering::Relaxed);
            self.shard.owner.store(0, Ordering::Relaxed);
            // SAFETY: owned guards are made only right after this thread locked
            // `raw`, and each unlocks it exactly once.
            unsafe { self.shard.raw.unlock() };
            // SAFETY: `held` is this thread's live thread-local (see `this_thread`).
            unsafe { (*self.held).set((*self.held).get() - 1) };
        }
    }
}

impl<K, V> Shard<K, V> {
    fn mark(&self, mode: u8, me: *const Cell<usize>) -> Guard<'_, K, V> {
        self.owner.store(me as usize, Ordering::Relaxed);
        self.mode.store(mode, Ordering::Relaxed);
        // SAFETY: `me` is this thread's live thread-local (see `this_thread`).
        unsafe { (*me).set((*me).get() + 1) };
        Guard { shard: self, held: me }
    }

    /// Takes the shard for `mode` following the rules of the module docs. `me`
    /// is `this_thread()`; `may_wait` is false inside a callback that holds a
    /// shard.
    #[inline]
    fn lock(&self, py: Python<'_>, mode: u8, me: *const Cell<usize>, may_wait: bool) -> PyResult<Guard<'_, K, V>>
    where
        K: Send + Sync,
        V: Send + Sync,
    {
        // Only this thread ever stores its own tag here, so a relaxed load that
        // sees it means this thread holds the shard now.
        if self.owner.load(Ordering::Relaxed) == me as usize {
            if mode == READING && self.mode.load(Ordering::Relaxed) == READING {
                return Ok(Guard { shard: self, held: std::ptr::null() });
            }
            return Err(reentrant());
        }
        if !self.raw.try_lock() {
            if !may_wait {
                return Err(would_wait());
            }
            py.detach(|| self.raw.lock());
        }
        Ok(self.mark(mode, me))
    }

    /// Takes the shard from a thread that holds no Python state (detached
    /// batch work): it can hold no shard, so it simply waits.
    fn lock_detached(&self, mode: u8) -> Guard<'_, K, V> {
        self.raw.lock();
        self.mark(mode, this_thread())
    }
}

impl<K: PyKey, V: PyVal> Shard<K, V> {
    /// Reads the shard's map; the caller holds the shard (any mode).
    #[inline]
    fn read<R>(&self, f: impl FnOnce(&HMap<K, V>, &FlagWord) -> PyResult<R>) -> PyResult<R> {
        debug_assert!(self.raw.is_locked());
        // SAFETY: every access to a shard's map holds its mutex (module docs),
        // which this thread holds; a nested call from `f` into this shard is
        // let through only as a lookup inside a lookup (`Shard::lock`).
        unsafe { self.map.read_excluded(f) }
    }

    /// Writes the shard's map; the caller holds the shard for `WRITING` (or,
    /// in `gc_clear`, locked it with no Python code to run).
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&mut HMap<K, V>, &FlagWord) -> PyResult<R>) -> PyResult<R> {
        debug_assert!(self.raw.is_locked());
        // SAFETY: every access to a shard's map holds its mutex, which this
        // thread holds; a shard held for `WRITING` refuses every nested call
        // (`Shard::lock`), so nothing else touches the map until `f` returns.
        unsafe { self.map.write_excluded(f) }
    }
}

/// Below this many keys a batch runs in the calling thread; settable for tests
/// through `gomap._core._sharded_parallel_min_keys`.
static PARALLEL_MIN_KEYS: AtomicUsize = AtomicUsize::new(16384);

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

// ---------------------------------------------------------------------------
// the typed engine
// ---------------------------------------------------------------------------

pub trait SKey: PyKey + Batch + ShardKey {}
impl<T: PyKey + Batch + ShardKey> SKey for T {}

/// Per-shard work of a batch: the payload handed to the job.
type Jobs<P> = Vec<(usize, P)>;

pub struct Sharded<K, V> {
    shards: Box<[Shard<K, V>]>,
    mask: usize,
    bits: u32,
    total: AtomicIsize,
    parallel_runs: AtomicUsize,
}

fn take<T>(slot: &mut Option<T>) -> T {
    slot.take().expect("taken once")
}

impl<K: SKey, V: ShardVal> Sharded<K, V> {
    /// `n` shards, each a Go 1.19 map made with `hint_per_shard`; MemoryError
    /// when their buckets cannot be allocated.
    fn new(n: usize, hint_per_shard: usize) -> PyResult<Self> {
        let hashkey = random_hashkey();
        let shards = (0..n)
            .map(|_| {
                let h = HMap::try_makemap(hint_per_shard, hashkey, FastRand::from_os(None), GoRelease::default())
                    .map_err(|_| {
                        PyMemoryError::new_err(format!(
                            "gomap.ShardedMap: out of memory for the buckets of hint {hint_per_shard} per shard"
                        ))
                    })?;
                Ok(Shard {
                    raw: RawMutex::INIT,
                    owner: AtomicUsize::new(0),
                    mode: AtomicU8::new(IDLE),
                    map: Shared::new(h),
                })
            })
            .collect::<PyResult<_>>()?;
        Ok(Sharded {
            shards,
            mask: n - 1,
            bits: n.trailing_zeros(),
            total: AtomicIsize::new(0),
            parallel_runs: AtomicUsize::new(0),
        })
    }

    #[inline(always)]
    fn index(&self, k: &K) -> usize {
        // the top `bits` bits of the mix, rotated down
        (k.shard_hash().rotate_left(self.bits) as usize) & self.mask
    }

    /// Runs `f` on shard `i` held for `mode`; whatever `f` returns is dropped by
    /// the caller, after the unlock.
    #[inline]
    fn with<R>(&self, py: Python<'_>, i: usize, mode: u8, f: impl FnOnce(&Shard<K, V>) -> PyResult<R>) -> PyResult<R> {
        let shard = &self.shards[i];
        let me = this_thread();
        // SAFETY: `me` is this thread's live thread-local.
        let guard = shard.lock(py, mode, me, unsafe { (*me).get() } == 0)?;
        let r = f(shard);
        drop(guard);
        r
    }

    /// A write on a held shard, keeping the atomic total in step.
    #[inline]
    fn write<R>(&self, s: &Shard<K, V>, f: impl FnOnce(&mut HMap<K, V>, &FlagWord) -> PyResult<R>) -> PyResult<R> {
        s.write(|h, fl| {
            let before = h.count;
            let r = f(h, fl);
            if h.count != before {
                self.total.fetch_add(h.count as isize - before as isize, Ordering::SeqCst);
            }
            r
        })
    }

    /// Every shard, ascending, for `mode` (nested callbacks may not wait).
    fn lock_all(&self, py: Python<'_>, mode: u8) -> PyResult<Vec<Guard<'_, K, V>>> {
        let me = this_thread();
        let may_wait = held() == 0;
        let mut guards = Vec::with_capacity(self.shards.len());
        for s in self.shards.iter() {
            guards.push(s.lock(py, mode, me, may_wait)?);
        }
        Ok(guards)
    }

    fn len(&self) -> usize {
        self.total.load(Ordering::SeqCst).max(0) as usize
    }

    /// The key for a lookup: `None` for a key a typed map cannot hold (absent,
    /// as for `dict`); an `object` map keeps the error (unhashable is TypeError).
    fn read_key(py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<K>> {
        match K::from_py(key) {
            Ok(k) => Ok(Some(k)),
            Err(e)
                if K::NAME != "object"
                    && (e.is_instance_of::<PyTypeError>(py)
                        || e.is_instance_of::<PyOverflowError>(py)
                        || e.is_instance_of::<PyUnicodeEncodeError>(py)) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn lookup(&self, py: Python<'_>, k: &K) -> PyResult<Option<V>> {
        self.with(py, self.index(k), READING, |s| {
            s.read(|h, fl| Ok(h.mapaccess(fl, k).map_err(K::raise)?.map(PyVal::copy_out)))
        })
    }

    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, lenient: bool) -> PyResult<Option<Py<PyAny>>> {
        let k = if lenient {
            match Self::read_key(py, key)? {
                Some(k) => k,
                None => return Ok(None),
            }
        } else {
            // A key of the right type that no stored key can equal (a str with
            // lone surrogates) is absent, as for Map.
            let Some(k) = K::from_py_lookup(key)? else { return Ok(None) };
            k
        };
        self.lookup(py, &k)?.map(|v| v.to_py(py)).transpose()
    }

    fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(k) = Self::read_key(py, key)? else { return Ok(false) };
        let i = self.index(&k);
        self.with(py, i, READING, |s| s.read(|h, fl| Ok(h.mapaccess(fl, &k).map_err(K::raise)?.is_some())))
    }

    fn set(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = K::from_py(key)?;
        let v = V::from_py(value)?;
        let i = self.index(&k);
        let old = self.with(py, i, WRITING, |s| self.write(s, |h, fl| h.mapassign(fl, k, v).map_err(K::raise)))?;
        drop(old); // after the unlock: may run a __del__
        Ok(())
    }

    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<(K, V)>> {
        let Some(k) = K::from_py_lookup(key)? else { return Ok(None) };
        let i = self.index(&k);
        self.with(py, i, WRITING, |s| self.write(s, |h, fl| h.mapdelete(fl, &k).map_err(K::raise)))
    }

    fn popitem(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyAny>)>> {
        for i in 0..self.shards.len() {
            let removed = self.with(py, i, WRITING, |s| {
                self.write(s, |h, fl| {
                    let mut it = h.mapiterinit_nodraw();
                    let Some(key) = h.mapiternext(fl, &mut it).map_err(K::raise)?.map(|(k, _)| k.clone_key()) else {
                        return Ok(None);
                    };
                    drop(it);
                    h.mapdelete(fl, &key).map_err(K::raise)
                })
            })?;
            if let Some((k, v)) = removed {
                return Ok(Some((k.to_py(py)?, v.to_py(py)?)));
            }
        }
        Ok(None)
    }

    fn setdefault(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let k = K::from_py(key)?;
        let i = self.index(&k);
        // Converted before the lock (conversion may run Python code); an error
        // only matters if the key turns out to be missing, as for Map.
        let (v, verr) = match V::from_py(default) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        let got = self.with(py, i, WRITING, |s| {
            self.write(s, |h, fl| {
                if let Some(cur) = h.mapaccess(fl, &k).map_err(K::raise)? {
                    return Ok(Some(cur.copy_out()));
                }
                let Some(v) = v else { return Ok(None) };
                let out = v.copy_out();
                h.mapassign(fl, k, v).map_err(K::raise)?;
                Ok(Some(out))
            })
        })?;
        match (got, verr) {
            (Some(v), _) => v.to_py(py),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("a value was stored or found"),
        }
    }

    fn set_if_absent(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = K::from_py(key)?;
        let v = V::from_py(value)?;
        let i = self.index(&k);
        self.with(py, i, WRITING, |s| {
            self.write(s, |h, fl| {
                if h.mapaccess(fl, &k).map_err(K::raise)?.is_some() {
                    return Ok(false);
                }
                h.mapassign(fl, k, v).map_err(K::raise)?;
                Ok(true)
            })
        })
    }

    fn swap(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Option<V>> {
        let k = K::from_py(key)?;
        let v = V::from_py(value)?;
        let i = self.index(&k);
        self.with(py, i, WRITING, |s| self.write(s, |h, fl| h.mapassign(fl, k, v).map_err(K::raise)))
    }

    /// The shard's value for `k` compared with `old` by Python `==` (a value's
    /// `__eq__` runs under the lock, in WRITING mode: it cannot re-enter).
    fn current_equals(h: &HMap<K, V>, fl: &FlagWord, py: Python<'_>, k: &K, old: &Bound<'_, PyAny>) -> PyResult<bool> {
        match h.mapaccess(fl, k).map_err(K::raise)? {
            None => Ok(false),
            Some(cur) => cur.to_py(py)?.bind(py).eq(old),
        }
    }

    fn compare_and_swap(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, Option<V>)> {
        let k = K::from_py(key)?;
        let v = V::from_py(new)?;
        let i = self.index(&k);
        self.with(py, i, WRITING, |s| {
            // The comparison runs under a read claim only: a value's __eq__ may
            // look the map up; the shard's WRITING mode refuses everything else.
            let equal = s.read(|h, fl| Self::current_equals(h, fl, py, &k, old))?;
            if !equal {
                return Ok((false, None));
            }
            self.write(s, |h, fl| Ok((true, h.mapassign(fl, k, v).map_err(K::raise)?)))
        })
    }

    fn compare_and_delete(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        old: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(K, V)>> {
        let k = K::from_py(key)?;
        let i = self.index(&k);
        self.with(py, i, WRITING, |s| {
            let equal = s.read(|h, fl| Self::current_equals(h, fl, py, &k, old))?;
            if !equal {
                return Ok(None);
            }
            self.write(s, |h, fl| h.mapdelete(fl, &k).map_err(K::raise))
        })
    }

    fn update_with(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        func: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let k = K::from_py(key)?;
        let i = self.index(&k);
        loop {
            let seen = self.with(py, i, READING, |s| {
                s.read(|h, fl| Ok(h.mapaccess(fl, &k).map_err(K::raise)?.map(PyVal::copy_out)))
            })?;
            let arg = match (&seen, default) {
                (Some(v), _) => v.to_py(py)?,
                (None, Some(d)) => d.clone().unbind(),
                (None, None) => return Err(PyKeyError::new_err((key.clone().unbind(),))),
            };
            // Python code: never under the lock.
            let new = V::from_py(&func.call1((arg,))?)?;
            let out = new.to_py(py)?;
            let committed = self.with(py, i, WRITING, |s| {
                self.write(s, |h, fl| {
                    let unchanged = match (h.mapaccess(fl, &k).map_err(K::raise)?, &seen) {
                        (None, None) => true,
                        (Some(now), Some(then)) => now.same(then),
                        _ => false,
                    };
                    if !unchanged {
                        return Ok(None);
                    }
                    Ok(Some(h.mapassign(fl, k.clone_key(), new).map_err(K::raise)?))
                })
            })?;
            if let Some(replaced) = committed {
                drop(replaced);
                return Ok(out);
            }
        }
    }

    fn add(&self, py: Python<'_>, key: &Bound<'_, PyAny>, delta: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if !V::NUMERIC {
            return Err(not_numeric());
        }
        let k = K::from_py(key)?;
        let d = V::delta_from_py(delta)?;
        let i = self.index(&k);
        let r = self.with(py, i, WRITING, |s| {
            self.write(s, |h, fl| {
                if let Some(cur) = h.mapaccess_mut(fl, &k).map_err(K::raise)? {
                    return Ok(match V::checked_add(Some(cur), &d) {
                        None => Err(Some(cur.copy_out())),
                        Some(new) => {
                            *cur = new;
                            Ok(cur.copy_out())
                        }
                    });
                }
                match V::checked_add(None, &d) {
                    None => Ok(Err(None)),
                    Some(new) => {
                        let out = new.copy_out();
                        h.mapassign(fl, k, new).map_err(K::raise)?;
                        Ok(Ok(out))
                    }
                }
            })
        })?;
        match r {
            Ok(v) => v.to_py(py),
            Err(cur) => {
                let cur = match cur {
                    Some(c) => c.to_py(py)?.bind(py).repr()?.to_string(),
                    None => "0".into(),
                };
                Err(PyOverflowError::new_err(format!(
                    "int64 overflow adding {} to {cur} (key {}); the map is unchanged",
                    delta.repr()?,
                    key.repr()?
                )))
            }
        }
    }

    /// A shard's entries copied out under its lock (objects incref'd).
    fn shard_entries(&self, py: Python<'_>, i: usize) -> PyResult<Vec<(K, V)>> {
        self.with(py, i, READING, |s| {
            s.read(|h, fl| {
                let mut out = Vec::with_capacity(h.count);
                let mut it = h.mapiterinit_nodraw();
                while let Some((k, v)) = h.mapiternext(fl, &mut it).map_err(K::raise)? {
                    out.push((k.clone_key(), v.copy_out()));
                }
                Ok(out)
            })
        })
    }

    /// Shard `i` as a list of keys (0), values (1) or (key, value) tuples (2),
    /// built after the unlock.
    fn shard_list<'py>(&self, py: Python<'py>, i: usize, what: u8) -> PyResult<Bound<'py, PyList>> {
        let entries = self.shard_entries(py, i)?;
        let list = PyList::empty(py);
        for (k, v) in &entries {
            match what {
                0 => list.append(k.to_py(py)?)?,
                1 => list.append(v.to_py(py)?)?,
                _ => list.append(PyTuple::new(py, [k.to_py(py)?, v.to_py(py)?])?)?,
            }
        }
        Ok(list)
    }

    /// `retain` (`delete_when` false) and `delete_if` (true): shard by shard,
    /// `pred(key, value)` on a snapshot, then deletes of entries still holding
    /// the value the predicate saw.
    fn filter(&self, py: Python<'_>, pred: &Bound<'_, PyAny>, delete_when: bool) -> PyResult<usize> {
        let mut deleted = 0;
        for i in 0..self.shards.len() {
            let entries = self.shard_entries(py, i)?;
            let mut doomed = Vec::new();
            for (k, v) in entries {
                let verdict = pred.call1((k.to_py(py)?, v.to_py(py)?))?.is_truthy()?;
                if verdict == delete_when {
                    doomed.push((k, v));
                }
            }
            if doomed.is_empty() {
                continue;
            }
            let removed = self.with(py, i, WRITING, |s| {
                self.write(s, |h, fl| {
                    let mut removed = Vec::new();
                    for (k, seen) in &doomed {
                        let still = matches!(h.mapaccess(fl, k).map_err(K::raise)?, Some(now) if now.same(seen));
                        if still {
                            removed.extend(h.mapdelete(fl, k).map_err(K::raise)?);
                        }
                    }
                    Ok(removed)
                })
            })?;
            deleted += removed.len();
            drop(removed); // after the unlock
            drop(doomed);
        }
        Ok(deleted)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let guards = self.lock_all(py, WRITING)?;
        let mut dropped = Vec::with_capacity(self.shards.len());
        let mut err = None;
        for s in self.shards.iter() {
            match self.write(s, |h, fl| Ok(h.mapclear(fl))) {
                Ok(d) => dropped.push(d),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        drop(guards);
        drop(dropped); // the entries, after every unlock
        err.map_or(Ok(()), Err)
    }

    fn shrink(&self, py: Python<'_>) -> PyResult<()> {
        for i in 0..self.shards.len() {
            let dropped = self.with(py, i, WRITING, |s| s.write(|h, fl| Ok(h.shrink(fl))))?;
            drop(dropped);
        }
        Ok(())
    }

    /// Copies of every shard's map (structure, hash0 and growth state), taken
    /// with all locks held: one consistent state.
    fn clone_shards(&self, py: Python<'_>) -> PyResult<Vec<(HMap<K, V>, u32)>> {
        let guards = self.lock_all(py, READING)?;
        let copies = self
            .shards
            .iter()
            .map(|s| s.read(|h, fl| Ok((h.clone_with(PyVal::copy_out), fl.go_flags() as u32 & SAME_SIZE_GROW))))
            .collect();
        drop(guards);
        copies
    }

    /// Fills `dst` (a fresh, empty map of the same kinds and shard count) with
    /// copies of this map's shards.
    fn copy_into(&self, py: Python<'_>, dst: &AnySharded) -> PyResult<()> {
        let dst: &Sharded<K, V> =
            dispatch!(AnySharded, dst, d => (d as &dyn Any).downcast_ref::<Sharded<K, V>>()).expect("same kinds");
        let copies = self.clone_shards(py)?;
        for (i, (h, flags)) in copies.into_iter().enumerate() {
            let old = dst.with(py, i, WRITING, |s| {
                dst.write(s, |cur, fl| {
                    fl.clear(SAME_SIZE_GROW);
                    fl.set(flags);
                    Ok(std::mem::replace(cur, h))
                })
            })?;
            drop(old);
        }
        Ok(())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let guards = self.lock_all(py, READING)?;
        let per: PyResult<Vec<(Stats, bool)>> =
            self.shards.iter().map(|s| s.read(|h, fl| Ok((h.stats(), fl.has(SAME_SIZE_GROW))))).collect();
        drop(guards);
        let per = per?;
        let shards = PyList::empty(py);
        let (mut count, mut buckets, mut ovf, mut old, mut old_ovf, mut nov, mut bytes, mut growing) =
            (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
        let (mut max_count, mut min_count) = (0usize, usize::MAX);
        for (s, same) in &per {
            let d = PyDict::new(py);
            d.set_item("count", s.count)?;
            d.set_item("B", s.b)?;
            d.set_item("buckets", s.buckets)?;
            d.set_item("overflow_buckets", s.overflow_buckets)?;
            d.set_item("old_buckets", s.old_buckets)?;
            d.set_item("old_overflow_buckets", s.old_overflow_buckets)?;
            d.set_item("noverflow", s.noverflow)?;
            let load = if s.buckets == 0 { 0.0 } else { s.count as f64 / s.buckets as f64 };
            d.set_item("load_factor", load)?;
            d.set_item("growing", s.growing)?;
            d.set_item("same_size_grow", *same)?;
            d.set_item("nevacuate", s.nevacuate)?;
            d.set_item("bytes", s.bytes)?;
            shards.append(d)?;
            count += s.count;
            buckets += s.buckets;
            ovf += s.overflow_buckets;
            old += s.old_buckets;
            old_ovf += s.old_overflow_buckets;
            nov += s.noverflow as usize;
            bytes += s.bytes;
            growing += s.growing as usize;
            max_count = max_count.max(s.count);
            min_count = min_count.min(s.count);
        }
        let tot = PyDict::new(py);
        tot.set_item("num_shards", per.len())?;
        tot.set_item("count", count)?;
        tot.set_item("buckets", buckets)?;
        tot.set_item("overflow_buckets", ovf)?;
        tot.set_item("old_buckets", old)?;
        tot.set_item("old_overflow_buckets", old_ovf)?;
        tot.set_item("noverflow", nov)?;
        tot.set_item("bytes", bytes)?;
        tot.set_item("load_factor", if buckets == 0 { 0.0 } else { count as f64 / buckets as f64 })?;
        tot.set_item("growing", growing)?;
        tot.set_item("max_count", max_count)?;
        tot.set_item("min_count", min_count)?;
        tot.set_item("shards", shards)?;
        Ok(tot)
    }

    /// Go's snapshot of a copy of shard `i` (for tests and inspection).
    fn shard_snapshot<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyDict>> {
        let (h, flags) = self.with(py, i, READING, |s| {
            s.read(|h, fl| Ok((h.clone_with(PyVal::copy_out), fl.go_flags() as u32 & SAME_SIZE_GROW)))
        })?;
        let copy = Shared::new(h);
        copy.flags.set(flags);
        copy.snapshot(py)
    }

    // -- batches ------------------------------------------------------------

    /// Positions of `keys` grouped by shard, input order kept within a shard.
    fn group(&self, keys: &[K]) -> Vec<(usize, Vec<u32>)> {
        let mut by: Vec<Vec<u32>> = vec![Vec::new(); self.shards.len()];
        for (p, k) in keys.iter().enumerate() {
            by[self.index(k)].push(p as u32);
        }
        by.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).collect()
    }

    /// Runs `work(shard, payload)` for every job, each under its shard's lock
    /// (or, `prelocked`, under locks the caller already holds); in parallel
    /// on `threads` threads with the GIL released when `detach` and the batch
    /// is large. Results in job order.
    #[allow(clippy::too_many_arguments)]
    fn run<P: Send, T: Send>(
        &self,
        py: Python<'_>,
        detach: bool,
        threads: Option<usize>,
        nkeys: usize,
        mode: u8,
        prelocked: bool,
        jobs: Jobs<P>,
        work: impl Fn(&Shard<K, V>, P) -> PyResult<T> + Sync,
    ) -> PyResult<Vec<(usize, PyResult<T>)>> {
        let may_wait = held() == 0 || prelocked;
        let threads = threads.unwrap_or_else(default_threads).min(jobs.len()).max(1);
        let one = |s: usize, p: P| -> PyResult<T> {
            if prelocked {
                work(&self.shards[s], p)
            } else {
                let g = self.shards[s].lock_detached(mode);
                let r = work(&self.shards[s], p);
                drop(g);
                r
            }
        };
        if detach && may_wait && (held() == 0 || prelocked) {
            let parallel = threads > 1 && nkeys >= PARALLEL_MIN_KEYS.load(Ordering::Relaxed);
            if parallel {
                self.parallel_runs.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(py.detach(|| {
                if !parallel {
                    return jobs.into_iter().map(|(s, p)| (s, one(s, p))).collect();
                }
                let njobs = jobs.len();
                let queue = Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>());
                let results: Mutex<Vec<Option<(usize, PyResult<T>)>>> = Mutex::new((0..njobs).map(|_| None).collect());
                std::thread::scope(|sc| {
                    let runner = || loop {
                        let Some((j, (s, p))) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                            return;
                        };
                        let r = one(s, p);
                        results.lock().unwrap_or_else(|e| e.into_inner())[j] = Some((s, r));
                    };
                    for _ in 1..threads {
                        sc.spawn(runner);
                    }
                    runner();
                });
                results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(take_some).collect()
            }));
        }
        // With the GIL (object kinds, or a call from inside a callback).
        let mut out = Vec::with_capacity(jobs.len());
        for (s, p) in jobs {
            let r = if prelocked {
                work(&self.shards[s], p)
            } else {
                match self.shards[s].lock(py, mode, this_thread(), may_wait) {
                    Ok(g) => {
                        let r = work(&self.shards[s], p);
                        drop(g);
                        r
                    }
                    Err(e) => Err(e),
                }
            };
            out.push((s, r));
        }
        Ok(out)
    }

    fn get_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let ks = K::collect(keys, "keys")?;
        let default = default.map(V::from_py).transpose()?;
        let n = ks.len();
        let jobs = self.group(&ks);
        let results =
            self.run(py, K::DETACHABLE && V::DETACHABLE, threads, n, READING, false, jobs, |s, pos: Vec<u32>| {
                s.read(|h, fl| {
                    let mut vals = Vec::with_capacity(pos.len());
                    for &p in &pos {
                        match (h.mapaccess(fl, &ks[p as usize]).map_err(K::raise)?, &default) {
                            (Some(v), _) => vals.push(v.copy_out()),
                            (None, Some(d)) => vals.push(d.copy_out()),
                            (None, None) => return Ok(Err(p)),
                        }
                    }
                    Ok(Ok((pos, vals)))
                })
            })?;
        let mut out: Vec<Option<V>> = (0..n).map(|_| None).collect();
        let mut missing: Option<u32> = None;
        for (_, r) in results {
            match r? {
                Ok((pos, vals)) => {
                    for (p, v) in pos.into_iter().zip(vals) {
                        out[p as usize] = Some(v);
                    }
                }
                Err(p) => missing = Some(missing.map_or(p, |m| m.min(p))),
            }
        }
        if let Some(p) = missing {
            return Err(PyKeyError::new_err((ks[p as usize].to_py(py)?,)));
        }
        V::array(py, out.into_iter().map(|v| v.expect("every position filled")).collect())
    }

    fn contains_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let ks = K::collect(keys, "keys")?;
        let n = ks.len();
        let jobs = self.group(&ks);
        let results = self.run(py, K::DETACHABLE, threads, n, READING, false, jobs, |s, pos: Vec<u32>| {
            s.read(|h, fl| {
                let found = pos
                    .iter()
                    .map(|&p| Ok(h.mapaccess(fl, &ks[p as usize]).map_err(K::raise)?.is_some()))
                    .collect::<PyResult<Vec<bool>>>()?;
                Ok((pos, found))
            })
        })?;
        let mut out = vec![false; n];
        for (_, r) in results {
            let (pos, found) = r?;
            for (p, f) in pos.into_iter().zip(found) {
                out[p as usize] = f;
            }
        }
        bool_array(py, &out)
    }

    fn set_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<()> {
        let ks = K::collect(keys, "keys")?;
        let vs = V::collect(values, "values")?;
        if ks.len() != vs.len() {
            return Err(PyValueError::new_err(format!("{} keys but {} values", ks.len(), vs.len())));
        }
        let n = ks.len();
        let mut by: Vec<Vec<(K, V)>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for (k, v) in ks.into_iter().zip(vs) {
            let i = self.index(&k);
            by[i].push((k, v));
        }
        let jobs: Jobs<Vec<(K, V)>> = by.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).collect();
        // Keys and values may be owned by nothing but this batch (a generator's
        // output): a second reference, dropped after every unlock, makes sure
        // none is released under a lock when a key's __eq__ raises midway.
        let keep_alive: Vec<(K, V)> = if K::DETACHABLE && V::DETACHABLE {
            Vec::new()
        } else {
            jobs.iter().flat_map(|(_, pairs)| pairs.iter().map(|(k, v)| (k.clone_key(), v.copy_out()))).collect()
        };
        let results = self.run(py, K::DETACHABLE && V::DETACHABLE, threads, n, WRITING, false, jobs, |s, pairs| {
            self.write(s, |h, fl| {
                let mut replaced = Vec::new();
                for (k, v) in pairs {
                    match h.mapassign(fl, k, v) {
                        Ok(old) => replaced.extend(old),
                        // the values replaced so far leave with the error, to be
                        // dropped after the unlock
                        Err(e) => return Ok((replaced, Some(K::raise(e)))),
                    }
                }
                Ok((replaced, None))
            })
        })?;
        let mut first_err = None;
        let mut replaced = Vec::new();
        for (_, r) in results {
            match r {
                Ok((v, err)) => {
                    replaced.push(v);
                    if let Some(e) = err {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        drop(replaced); // after every unlock
        drop(keep_alive);
        first_err.map_or(Ok(()), Err)
    }

    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let ks = K::collect(keys, "keys")?;
        let n = ks.len();
        let jobs = self.group(&ks);
        let results =
            self.run(py, K::DETACHABLE && V::DETACHABLE, threads, n, WRITING, false, jobs, |s, pos: Vec<u32>| {
                self.write(s, |h, fl| {
                    let mut found = Vec::with_capacity(pos.len());
                    let mut removed = Vec::new();
                    for &p in &pos {
                        match h.mapdelete(fl, &ks[p as usize]) {
                            Ok(r) => {
                                found.push(r.is_some());
                                removed.extend(r);
                            }
                            // what was removed so far leaves with the error, dropped after the unlock
                            Err(e) => return Ok((pos, found, removed, Some(K::raise(e)))),
                        }
                    }
                    Ok((pos, found, removed, None))
                })
            })?;
        let mut out = vec![false; n];
        let mut first_err = None;
        let mut removed = Vec::new();
        for (_, r) in results {
            match r {
                Ok((pos, found, rm, err)) => {
                    for (p, f) in pos.into_iter().zip(found) {
                        out[p as usize] = f;
                    }
                    removed.push(rm);
                    if let Some(e) = err {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        drop(removed);
        if let Some(e) = first_err {
            return Err(e);
        }
        bool_array(py, &out)
    }

    /// `add_many`: every touched shard is locked (ascending) for the whole
    /// batch, the shards are worked on in parallel, and an int64 overflow
    /// anywhere undoes every shard's additions: all or nothing.
    fn add_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        deltas: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<()> {
        if !V::NUMERIC {
            return Err(not_numeric());
        }
        let ks = K::collect(keys, "keys")?;
        let n = ks.len();
        let ds: Vec<V> = match V::collect_deltas(deltas)? {
            Some(d) if d.len() == n => d,
            Some(d) if d.len() == 1 => d, // one delta for every key
            Some(d) => return Err(PyValueError::new_err(format!("{n} keys but {} deltas", d.len()))),
            None => vec![V::delta_from_py(deltas)?],
        };
        let delta = |p: usize| -> &V {
            if ds.len() == 1 {
                &ds[0]
            } else {
                &ds[p]
            }
        };
        if n == 0 {
            return Ok(());
        }
        let jobs = self.group(&ks);
        // Lock every touched shard, ascending, before any work.
        let me = this_thread();
        let may_wait = held() == 0;
        let mut guards = Vec::with_capacity(jobs.len());
        for (s, _) in &jobs {
            guards.push(self.shards[*s].lock(py, WRITING, me, may_wait)?);
        }
        struct Done {
            pos: Vec<u32>,
            applied: usize,
            inserted: Vec<u32>,
        }
        // Undoes the first `applied` additions of a job, newest first.
        let undo = |h: &mut HMap<K, V>, fl: &FlagWord, d: &mut Done| -> PyResult<()> {
            let mut ins = d.inserted.len();
            for j in (0..d.applied).rev() {
                let p = d.pos[j] as usize;
                if ins > 0 && d.inserted[ins - 1] as usize == j {
                    ins -= 1;
                    h.mapdelete(fl, &ks[p]).map_err(K::raise)?;
                } else if let Some(cur) = h.mapaccess_mut(fl, &ks[p]).map_err(K::raise)? {
                    *cur = V::unadd(cur, delta(p));
                }
            }
            d.applied = 0;
            Ok(())
        };
        let results =
            self.run(py, K::DETACHABLE && V::DETACHABLE, threads, n, WRITING, true, jobs, |s, pos: Vec<u32>| {
                self.write(s, |h, fl| {
                    let mut done = Done { pos, applied: 0, inserted: Vec::new() };
                    let mut overflow = None;
                    for j in 0..done.pos.len() {
                        let p = done.pos[j] as usize;
                        let d = delta(p);
                        // one search for a key already there (the common case when counting)
                        let new = match h.mapaccess_mut(fl, &ks[p]).map_err(K::raise)? {
                            Some(cur) => match V::checked_add(Some(cur), d) {
                                Some(new) => {
                                    *cur = new;
                                    None
                                }
                                None => {
                                    overflow = Some(p);
                                    break;
                                }
                            },
                            None => match V::checked_add(None, d) {
                                Some(new) => Some(new),
                                None => {
                                    overflow = Some(p);
                                    break;
                                }
                            },
                        };
                        if let Some(new) = new {
                            h.mapassign(fl, ks[p].clone_key(), new).map_err(K::raise)?;
                            done.inserted.push(j as u32);
                        }
                        done.applied += 1;
                    }
                    if overflow.is_some() {
                        undo(h, fl, &mut done)?;
                    }
                    Ok((done, overflow))
                })
            });
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                drop(guards);
                return Err(e);
            }
        };
        let overflow_at = results.iter().filter_map(|(_, r)| r.as_ref().ok().and_then(|(_, o)| *o)).min();
        let first_err = results.iter().position(|(_, r)| r.is_err());
        let mut outcome = Ok(());
        if overflow_at.is_some() || first_err.is_some() {
            // undo every shard that finished, under the locks still held
            let mut rest = Vec::new();
            for (s, r) in results {
                match r {
                    Ok((mut done, _)) => {
                        if done.applied > 0 {
                            if let Err(e) = self.write(&self.shards[s], |h, fl| undo(h, fl, &mut done)) {
                                rest.push(e);
                            }
                        }
                    }
                    Err(e) => rest.push(e),
                }
            }
            outcome = match (overflow_at, rest.into_iter().next()) {
                (_, Some(e)) => Err(e),
                (Some(p), None) => Err(PyOverflowError::new_err(format!(
                    "int64 overflow adding {} to key {}; add_many changed nothing",
                    delta(p).to_py(py)?.bind(py).repr()?,
                    ks[p].to_py(py)?.bind(py).repr()?
                ))),
                (None, None) => Ok(()),
            };
        }
        drop(guards);
        outcome
    }

    // -- GC -----------------------------------------------------------------

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for s in self.shards.iter() {
            // A held shard is skipped (its holder is suspended for the whole
            // collection, so the skip is the same in every GC pass): its objects
            // then count as referenced from outside, which is safe.
            if s.raw.try_lock() {
                let r = s.map.traverse(visit);
                // SAFETY: locked just above by this thread.
                unsafe { s.raw.unlock() };
                r?;
            }
        }
        Ok(())
    }

    fn gc_clear(&self) {
        let mut dropped = Vec::new();
        for s in self.shards.iter() {
            if s.raw.try_lock() {
                if let Ok(d) = self.write(s, |h, fl| Ok((h.reset_tables(fl), h.rand.drop_external()))) {
                    dropped.push(d);
                }
                // SAFETY: locked just above by this thread.
                unsafe { s.raw.unlock() };
            }
        }
        drop(dropped);
    }
}

fn take_some<T>(mut x: Option<T>) -> T {
    take(&mut x)
}

engine_enum!(pub enum AnySharded, Sharded);

// ---------------------------------------------------------------------------
// the Python class
// ---------------------------------------------------------------------------

fn default_shards() -> usize {
    (4 * default_threads()).max(8).next_power_of_two()
}

/// A thread-safe map: power-of-two many typed shards (gomap maps), each behind
/// its own lock; every operation is one call into Rust. Use `gomap.ShardedMap`
/// (this class's Python subclass), which adds iteration views, `==`, `repr`
/// and pickling. See docs/ and `gomap.ShardedMap` for the guarantees.
#[pyclass(module = "gomap._core", name = "ShardedMap", frozen, mapping, weakref, subclass)]
pub struct ShardedMap {
    inner: AnySharded,
    key_kind: &'static str,
    value_kind: &'static str,
    num_shards: usize,
}

impl Drop for ShardedMap {
    /// Every shard's arrays go through `dispose`, as a `Map`'s do, so a chain
    /// of nested maps is freed without unbounded recursion.
    fn drop(&mut self) {
        dispatch!(AnySharded, &mut self.inner, m => {
            for shard in m.shards.iter_mut() {
                shard.map.dispose_contents();
            }
        })
    }
}

#[pymethods]
impl ShardedMap {
    #[new]
    #[pyo3(signature = (key = None, value = None, shards = None, hint = 0))]
    fn py_new(
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        shards: Option<&Bound<'_, PyAny>>,
        hint: i64,
    ) -> PyResult<ShardedMap> {
        let n: i64 = match shards {
            None => default_shards() as i64,
            Some(s) if s.is_none() => default_shards() as i64,
            Some(s) => {
                if s.is_instance_of::<PyFloat>() {
                    return Err(PyTypeError::new_err("shards must be an int, not float"));
                }
                s.call_method0("__index__")
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "shards must be an int, not {}",
                            s.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                        ))
                    })?
                    .extract::<i64>()
                    .map_err(|_| PyValueError::new_err("shards must be a power of two >= 1, <= 65536"))?
            }
        };
        if n < 1 || n & (n - 1) != 0 || n > 65536 {
            return Err(PyValueError::new_err(format!("shards must be a power of two >= 1 (and <= 65536), not {n}")));
        }
        let key_kind = match key {
            Some(k) => kind_name(py, k, false)?,
            None => "object",
        };
        let value_kind = match value {
            Some(v) => kind_name(py, v, true)?,
            None => "object",
        };
        if hint < 0 {
            return Err(PyValueError::new_err(format!("hint must be >= 0, not {hint}")));
        }
        // As Map (makemap64): a hint beyond what memory could hold is treated as 0.
        let hint = if hint > (1i64 << 40) { 0 } else { hint as usize };
        let n = n as usize;
        let per_shard = hint.div_ceil(n);
        let inner = construct!(AnySharded, key_kind, value_kind, <K, V> => Sharded::<K, V>::new(n, per_shard)?)
            .expect("kinds validated above");
        Ok(ShardedMap { inner, key_kind, value_kind, num_shards: n })
    }

    /// The canonical key kind ("int64", …, "object").
    #[getter]
    fn key_kind(&self) -> &'static str {
        self.key_kind
    }

    /// The canonical value kind ("int64", "float64" or "object").
    #[getter]
    fn value_kind(&self) -> &'static str {
        self.value_kind
    }

    /// How many shards (a power of two).
    #[getter]
    fn num_shards(&self) -> usize {
        self.num_shards
    }

    /// How many batch calls ran on several threads (a diagnostic).
    #[getter]
    fn _parallel_runs(&self) -> usize {
        dispatch!(AnySharded, &self.inner, m => m.parallel_runs.load(Ordering::Relaxed))
    }

    fn __len__(&self) -> usize {
        dispatch!(AnySharded, &self.inner, m => m.len())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match dispatch!(AnySharded, &self.inner, m => m.get(py, key, false))? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnySharded, &self.inner, m => m.set(py, key, value))
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let found = dispatch!(AnySharded, &self.inner, m => m.delete(py, key).map(|e| e.is_some()))?;
        if found {
            Ok(())
        } else {
            Err(PyKeyError::new_err((key.clone().unbind(),)))
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        dispatch!(AnySharded, &self.inner, m => m.contains(py, key))
    }

    /// `m.get(key, default=None)`: the value, or `default` when the key is
    /// missing (or of a type a typed map cannot hold).
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let found = dispatch!(AnySharded, &self.inner, m => m.get(py, key, true))?;
        Ok(found.unwrap_or_else(|| default.unwrap_or_else(|| py.None())))
    }

    /// Go's `delete(m, key)`: removes the key if present; no error when missing.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        // the removed entry is dropped here, after the unlock
        dispatch!(AnySharded, &self.inner, m => m.delete(py, key).map(drop))
    }

    /// `m.pop(key[, default])`: removes the key and returns its value; the
    /// default (or KeyError) when missing. Atomic.
    #[pyo3(signature = (key, *default))]
    fn pop(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!("pop expected at most 2 arguments, got {}", default.len() + 1)));
        }
        let removed =
            dispatch!(AnySharded, &self.inner, m => m.delete(py, key)?.map(|(_, v)| PyVal::to_py(&v, py)).transpose())?;
        match removed {
            Some(v) => Ok(v),
            None if default.len() == 1 => Ok(default.get_item(0)?.unbind()),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    /// Removes and returns some `(key, value)` pair (the first entry of the
    /// first non-empty shard); KeyError when the map is empty.
    fn popitem(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        dispatch!(AnySharded, &self.inner, m => m.popitem(py))?
            .ok_or_else(|| PyKeyError::new_err("popitem(): map is empty"))
    }

    /// `m.setdefault(key, default=None)`: the value if present, else stores and
    /// returns `default`. Atomic.
    #[pyo3(signature = (key, default = None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let none = py.None().into_bound(py);
        let d = default.unwrap_or(&none);
        dispatch!(AnySharded, &self.inner, m => m.setdefault(py, key, d))
    }

    /// Stores `value` only if `key` is missing; True if it stored. Atomic.
    fn set_if_absent(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        dispatch!(AnySharded, &self.inner, m => m.set_if_absent(py, key, value))
    }

    /// Stores `value` and returns `(previous value or None, whether it was
    /// present)` (Go's `sync.Map.Swap`). Atomic.
    fn swap(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<(Py<PyAny>, bool)> {
        let old =
            dispatch!(AnySharded, &self.inner, m => m.swap(py, key, value)?.map(|v| PyVal::to_py(&v, py)).transpose())?;
        Ok(value_ok(py, old))
    }

    /// Stores `new` if the current value `== old` (Python `==`; NaN never
    /// equal; a missing key never matches); True if it stored. Atomic.
    fn compare_and_swap(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let (done, replaced) = dispatch!(AnySharded, &self.inner, m => m.compare_and_swap(py, key, old, new).map(|(d, r)| (d, r.map(|v| PyVal::to_py(&v, py)))))?;
        drop(replaced); // after the unlock
        Ok(done)
    }

    /// Deletes `key` if its value `== old` (as `compare_and_swap`); True if it
    /// deleted. Atomic.
    fn compare_and_delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>, old: &Bound<'_, PyAny>) -> PyResult<bool> {
        dispatch!(AnySharded, &self.inner, m => m.compare_and_delete(py, key, old).map(|r| r.is_some()))
    }

    /// `update_with(key, fn[, default])`, an upsert: stores `fn(current)` (or
    /// `fn(default)` when the key is missing and a default is given, which may
    /// be None; KeyError without one) and returns the stored
    /// value. Applied atomically per key by an optimistic loop: `fn` runs with
    /// no lock held, and its result is stored only if the entry still holds the
    /// value `fn` was given (same object / same bits; still missing);
    /// otherwise `fn` is called again with the new value. So under contention
    /// `fn` may run more than once and should have no side effects (as the
    /// function of a CAS loop, cereggii's or concurrent-map's Upsert).
    #[pyo3(signature = (key, r#fn, *default))]
    fn update_with(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        r#fn: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "update_with expected at most 3 arguments, got {}",
                default.len() + 2
            )));
        }
        let d = if default.len() == 1 { Some(default.get_item(0)?) } else { None };
        dispatch!(AnySharded, &self.inner, m => m.update_with(py, key, r#fn, d.as_ref()))
    }

    /// Atomic `m[key] += delta` for int64/float64 values (a missing key starts
    /// at 0); returns the new value. int64 overflow is OverflowError and leaves
    /// the map unchanged. TypeError for object values.
    fn add(&self, py: Python<'_>, key: &Bound<'_, PyAny>, delta: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        dispatch!(AnySharded, &self.inner, m => m.add(py, key, delta))
    }

    /// `m[k] += d` for every key (a missing key starts at 0): `deltas` is a
    /// buffer/sequence as long as `keys` or one number for all. Numeric and
    /// string keys run with the GIL released, shards in parallel on up to
    /// `threads` threads (default: the CPU count) for large batches. All or
    /// nothing: every touched shard stays locked for the batch, and an int64
    /// overflow undoes everything (OverflowError, map unchanged). Returns None.
    #[pyo3(signature = (keys, deltas, *, threads = None))]
    fn add_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        deltas: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<()> {
        dispatch!(AnySharded, &self.inner, m => m.add_many(py, keys, deltas, threads))
    }

    /// Keeps only the entries for which `pred(key, value)` is true (Go's
    /// `maps.DeleteFunc` with the test negated, dashmap's `retain`); returns how
    /// many were deleted. Shard by shard: a shard is snapshotted, `pred` runs
    /// with no lock held, then an entry is deleted only if it still holds the
    /// value `pred` saw. Weakly consistent, as iteration; an exception from
    /// `pred` stops it (earlier shards keep their deletions).
    fn retain(&self, py: Python<'_>, pred: &Bound<'_, PyAny>) -> PyResult<usize> {
        dispatch!(AnySharded, &self.inner, m => m.filter(py, pred, false))
    }

    /// Deletes the entries for which `pred(key, value)` is true (Go's
    /// `maps.DeleteFunc`); returns how many. Same semantics as `retain`.
    fn delete_if(&self, py: Python<'_>, pred: &Bound<'_, PyAny>) -> PyResult<usize> {
        dispatch!(AnySharded, &self.inner, m => m.filter(py, pred, true))
    }

    /// As `dict.update`: a mapping, an iterable of pairs, and keyword
    /// arguments; each store is atomic, the whole update is not.
    #[pyo3(signature = (other = None, **kwargs))]
    fn update(
        slf: &Bound<'_, Self>,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        if let Some(o) = other {
            if let Ok(d) = o.cast::<PyDict>() {
                for (k, v) in d.iter() {
                    me.__setitem__(py, &k, &v)?;
                }
            } else if let Ok(sm) = o.cast::<ShardedMap>() {
                let src = sm.get();
                for i in 0..src.num_shards {
                    let items = src._shard_items(py, i, 2)?;
                    for pair in items.iter() {
                        let pair = pair.cast_into::<PyTuple>()?;
                        me.__setitem__(py, &pair.get_item(0)?, &pair.get_item(1)?)?;
                    }
                }
            } else if o.hasattr("keys")? {
                for k in o.call_method0("keys")?.try_iter()? {
                    let k = k?;
                    let v = o.get_item(&k)?;
                    me.__setitem__(py, &k, &v)?;
                }
            } else {
                for (i, pair) in o.try_iter()?.enumerate() {
                    let pair = pair?;
                    let items: Vec<Bound<'_, PyAny>> = pair
                        .try_iter()
                        .map_err(|_| {
                            PyTypeError::new_err(format!(
                                "cannot convert map update sequence element #{i} to a sequence"
                            ))
                        })?
                        .collect::<PyResult<_>>()?;
                    if items.len() != 2 {
                        return Err(PyValueError::new_err(format!(
                            "map update sequence element #{i} has length {}; 2 is required",
                            items.len()
                        )));
                    }
                    me.__setitem__(py, &items[0], &items[1])?;
                }
            }
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                me.__setitem__(py, &k, &v)?;
            }
        }
        Ok(())
    }

    /// Empties every shard atomically (all locks held, ascending); the old
    /// entries are released after the unlock.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        dispatch!(AnySharded, &self.inner, m => m.clear(py))
    }

    /// A new map of the same type, kinds and shard count holding copies of
    /// every shard (structural copies, taken with all locks held: one
    /// consistent state). Values are shared, not copied (as `dict.copy`).
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let me = slf.get();
        let new = slf.get_type().call1((me.key_kind, me.value_kind, me.num_shards))?;
        let dst = new.cast::<ShardedMap>()?.get();
        dispatch!(AnySharded, &me.inner, m => m.copy_into(py, &dst.inner))?;
        Ok(new)
    }

    /// `copy.copy(m)`: as `copy()`.
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::copy(slf)
    }

    /// Returns memory after deletes: `Map.shrink()` on every shard, one shard
    /// lock at a time.
    fn shrink(&self, py: Python<'_>) -> PyResult<()> {
        dispatch!(AnySharded, &self.inner, m => m.shrink(py))
    }

    /// `{"shards": [each shard's Map.stats()], ...totals}`: count, buckets,
    /// overflow_buckets, old_buckets, old_overflow_buckets, noverflow and bytes
    /// summed; load_factor = count / buckets; growing = how many shards grow;
    /// num_shards; max_count and min_count (balance). Taken with all locks held.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnySharded, &self.inner, m => m.stats(py))
    }

    /// The index of the shard that holds `key` (0 for a key the map would
    /// refuse).
    fn shard_of(&self, key: &Bound<'_, PyAny>) -> usize {
        dispatch!(AnySharded, &self.inner, m => match PyKey::from_py(key) {
            Ok(k) => m.index(&k),
            Err(_) => 0,
        })
    }

    /// The shard index of each key, as the batch operations compute it (a
    /// list; for tests and inspection).
    fn _shard_indices(&self, keys: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
        dispatch!(AnySharded, &self.inner, m => Ok(Batch::collect(keys, "keys")?.iter().map(|k| m.index(k)).collect()))
    }

    /// Shard `i`'s entries copied under its lock: a list of keys (`what=0`),
    /// values (1) or (key, value) tuples (2). Iteration is built on it.
    #[pyo3(signature = (i, what = 2))]
    fn _shard_items<'py>(&self, py: Python<'py>, i: usize, what: u8) -> PyResult<Bound<'py, PyList>> {
        if i >= self.num_shards {
            return Err(pyo3::exceptions::PyIndexError::new_err("shard index out of range"));
        }
        dispatch!(AnySharded, &self.inner, m => m.shard_list(py, i, what))
    }

    /// `Map.snapshot()` of a copy of shard `i` (Go's state of that shard).
    fn _shard_snapshot<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyDict>> {
        if i >= self.num_shards {
            return Err(pyo3::exceptions::PyIndexError::new_err("shard index out of range"));
        }
        dispatch!(AnySharded, &self.inner, m => m.shard_snapshot(py, i))
    }

    /// The values of `keys` (a buffer or a sequence) as a NumPy array, in input
    /// order. A missing key is KeyError (the first in input order) unless
    /// `default` is given. Per shard under its lock; numeric and string keys
    /// with int64/float64 values run with the GIL released, large batches on
    /// up to `threads` threads. Atomic per shard, not across shards.
    #[pyo3(signature = (keys, default = None, *, threads = None))]
    fn get_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        dispatch!(AnySharded, &self.inner, m => m.get_many(py, keys, default, threads))
    }

    /// Whether each of `keys` is present: a NumPy bool array (see `get_many`).
    #[pyo3(signature = (keys, *, threads = None))]
    fn contains_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<Py<PyAny>> {
        dispatch!(AnySharded, &self.inner, m => m.contains_many(py, keys, threads))
    }

    /// `m[k] = v` for each pair, in input order within each shard (a repeated
    /// key ends with its last value). Input is validated before any store.
    #[pyo3(signature = (keys, values, *, threads = None))]
    fn set_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<()> {
        dispatch!(AnySharded, &self.inner, m => m.set_many(py, keys, values, threads))
    }

    /// Deletes each of `keys`; a NumPy bool array of which were present (a
    /// repeated key is True at most once).
    #[pyo3(signature = (keys, *, threads = None))]
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<Py<PyAny>> {
        dispatch!(AnySharded, &self.inner, m => m.delete_many(py, keys, threads))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        dispatch!(AnySharded, &self.inner, m => m.traverse(&visit))
    }

    fn __clear__(&self) {
        dispatch!(AnySharded, &self.inner, m => m.gc_clear())
    }
}

/// Sets the batch size from which ShardedMap batches use several threads;
/// returns the previous value (for tests).
#[pyfunction]
pub fn _sharded_parallel_min_keys(n: Option<usize>) -> usize {
    match n {
        Some(n) => PARALLEL_MIN_KEYS.swap(n, Ordering::Relaxed),
        None => PARALLEL_MIN_KEYS.load(Ordering::Relaxed),
    }
}
