//! `gomap.Map`: the PyO3 class over [`HMap`], one typed engine per key/value kind.
//!
//! The class is `frozen`: PyO3's borrow flag is never used. Every method claims
//! the map's [`FlagWord`] instead — a read claim for lookups and iteration steps,
//! the write claim (Go's `hashWriting`) for assignments — and a refused claim is
//! `ConcurrentMapError`. Keys and values are converted (and `object` keys hashed)
//! *before* the claim, as Go hashes before setting `hashWriting`, so a bad key or
//! a raising `__hash__` changes nothing. Entries a write removes are dropped
//! *after* the claim is released: dropping a Python object can run arbitrary
//! code, which must find the map usable (the rule is written out once, on
//! [`Shared::read`]).

use super::anymap::{construct, dispatch, AnyMap};
use super::convert::{memory_error, PyKey, PyVal};
use super::iter::{IterMode, MapIter};
use super::views::{ItemsView, KeysView, ValuesView};
use super::ConcurrentMapError;
use crate::flags::{FlagWord, Misuse};
use crate::hmap::{BucketView, HMap, OldView};
use crate::rand::{ExternalDraws, FastRand};
use crate::release::GoRelease;
use pyo3::exceptions::{PyKeyError, PyMemoryError, PyOverflowError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyTypeInfo};
use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};

thread_local! {
    static DISPOSING: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Drops `x` without unbounded recursion. Dropping a map's arrays drops its
/// values, which may be maps (or iterators) whose arrays hold more maps: freed
/// naively, a chain of 300,000 nested maps overflows the C stack. The outermost
/// `dispose` on a thread drops `x` and then, in a loop, everything that nested
/// deallocations handed to `dispose` meanwhile; those only queue their
/// contents. (CPython's trashcan does the same for its own containers.)
pub(crate) fn dispose<T: 'static>(x: T) {
    if !std::mem::needs_drop::<T>() {
        return;
    }
    struct Outermost;
    impl Drop for Outermost {
        fn drop(&mut self) {
            let _ = DISPOSING.try_with(|d| d.set(false));
        }
    }
    match DISPOSING.try_with(|d| d.replace(true)) {
        Ok(false) => {
            let _outermost = Outermost;
            drop(x);
            while let Some(next) = PENDING.with(|p| p.borrow_mut().pop()) {
                drop(next);
            }
        }
        Ok(true) => PENDING.with(|p| p.borrow_mut().push(Box::new(x))),
        // Thread-local storage already torn down (thread exit): drop in place.
        Err(_) => drop(x),
    }
}

pub fn misuse(m: Misuse) -> PyErr {
    ConcurrentMapError::new_err(m.message())
}

/// One typed map and the flag word that guards it.
pub struct Shared<K, V> {
    pub flags: FlagWord,
    h: UnsafeCell<HMap<K, V>>,
    /// The GC anchors of bucket arrays that iterators of this map hold, by array
    /// address, held weakly (see `iter::ArrayAnchor`).
    pub(crate) anchors: std::sync::Mutex<Vec<(usize, Py<pyo3::types::PyWeakrefReference>)>>,
}

// SAFETY: all access to `h` goes through `read`/`write`, whose flag-word claims
// admit either one writer or any number of readers, never both.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Shared<K, V> {}

impl<K: PyKey, V: PyVal> Shared<K, V> {
    pub fn new(h: HMap<K, V>) -> Self {
        Shared { flags: FlagWord::new(), h: UnsafeCell::new(h), anchors: std::sync::Mutex::new(Vec::new()) }
    }

    /// Runs `f` under a read claim.
    ///
    /// # What may happen under a claim
    ///
    /// While a read or the write claim is held (here, in `write`, and in every
    /// caller's closure), other code touching the map gets `ConcurrentMapError`
    /// — including a `__del__` or a GC callback that the closure triggers. So a
    /// closure must not
    /// - release the last reference to a Python object: whatever the engine
    ///   removes or replaces is returned and dropped after the claim, also when a
    ///   later step of a batch fails; keys and values passed in are kept alive by
    ///   the caller (so the engine dropping its copy is never the last
    ///   reference); an iterator step keeps its arrays alive across the step;
    /// - allocate a GC-tracked object (tuple, list, dict): on CPython that can run
    ///   the cyclic GC and any `__del__`. Under the claim, copy out references
    ///   (or build ints, floats, str, bytes, which are not tracked); build
    ///   containers after;
    /// - run Python code, with two exceptions that Go has too: an `object` key's
    ///   `__eq__` runs during the probe (Go calls the interface's equality), and
    ///   the user's `rand=` source is called at Go's draw sites. A write to the
    ///   map from either is refused with `ConcurrentMapError`.
    #[inline]
    pub fn read<R>(&self, iterating: bool, f: impl FnOnce(&HMap<K, V>, &FlagWord) -> PyResult<R>) -> PyResult<R> {
        let _claim = self.flags.read(iterating).map_err(misuse)?;
        // SAFETY: the read claim excludes every writer until it is dropped.
        f(unsafe { &*self.h.get() }, &self.flags)
    }

    /// Runs `f` under the write claim (`hashWriting`).
    #[inline]
    pub fn write<R>(&self, f: impl FnOnce(&mut HMap<K, V>, &FlagWord) -> PyResult<R>) -> PyResult<R> {
        let _claim = self.flags.write().map_err(misuse)?;
        // SAFETY: the write claim excludes every other reader and writer.
        f(unsafe { &mut *self.h.get() }, &self.flags)
    }

    /// Runs `f` on the map with no claim of its own: for a caller whose own
    /// lock already excludes every write (ShardedMap's shard mutex, held around
    /// every access to a shard's map), where counting a reader would only add
    /// two locked instructions to each lookup.
    ///
    /// # Safety
    ///
    /// The caller holds a lock that every access to this map, read or write,
    /// also holds, and no write runs under it until `f` returns (a call nested
    /// in `f` under the same lock may only read).
    #[inline]
    pub unsafe fn read_excluded<R>(&self, f: impl FnOnce(&HMap<K, V>, &FlagWord) -> R) -> R {
        // SAFETY: no write can run while the caller's lock is held (contract).
        f(unsafe { &*self.h.get() }, &self.flags)
    }

    /// Runs `f` on the map mutably with no claim of its own (see
    /// [`Shared::read_excluded`]).
    ///
    /// # Safety
    ///
    /// The caller holds a lock that every access to this map also holds, and
    /// nothing else, not even a nested read, touches the map until `f` returns.
    #[inline]
    pub unsafe fn write_excluded<R>(&self, f: impl FnOnce(&mut HMap<K, V>, &FlagWord) -> R) -> R {
        // SAFETY: the caller's lock gives this call the only access (contract).
        f(unsafe { &mut *self.h.get() }, &self.flags)
    }

    /// Runs `f` as a read made while attached to the interpreter.
    ///
    /// On GIL builds this counts no reader, so it costs no atomic
    /// read-modify-write: the GIL is held from the check to the end of `f`, and
    /// every write claim is taken while attached (batch writes claim before they
    /// release the GIL), so no write can begin before `f` returns, provided `f`
    /// runs no Python code, allocates no GC-tracked object (which could start a
    /// collection and run finalizers) and releases no Python object; a write
    /// already in progress, attached or not, is in the flag word and refuses
    /// the read. (PyO3 refuses to load the module in a subinterpreter, so one
    /// GIL guards every user of a map.) On free-threaded builds this is
    /// [`Shared::read`].
    #[inline]
    pub fn read_attached<R>(
        &self,
        _py: Python<'_>,
        iterating: bool,
        f: impl FnOnce(&HMap<K, V>, &FlagWord) -> PyResult<R>,
    ) -> PyResult<R> {
        #[cfg(not(Py_GIL_DISABLED))]
        {
            self.flags.check_no_writer(iterating).map_err(misuse)?;
            // SAFETY: no write is in progress, and none can begin before `f`
            // returns (see above), so nothing mutates the map meanwhile.
            f(unsafe { &*self.h.get() }, &self.flags)
        }
        #[cfg(Py_GIL_DISABLED)]
        self.read(iterating, f)
    }

    /// Looks `key` up by the cheapest exact path and passes the elem found to
    /// `f`, which runs inside the read and so must obey `read_attached`'s rules
    /// whenever the key's lookup is pure: `str`/`bytes` probes borrow the
    /// object's bytes, typed keys take no claim, `object` keys (whose `==` may
    /// run anything) a counted read claim.
    #[inline]
    fn lookup_with<R>(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        f: impl FnOnce(Option<&V>) -> PyResult<R>,
    ) -> PyResult<R> {
        if let Some(bytes) = K::probe_bytes(key) {
            return self.read_attached(py, false, |h, fl| {
                let found = h
                    .mapaccess_hashed(
                        fl,
                        |seed, hk0| crate::hash::memhash(bytes, seed, hk0),
                        |k| Ok(k.key_bytes() == bytes),
                    )
                    .map_err(K::raise)?;
                f(found)
            });
        }
        let Some(k) = K::from_py_lookup(key)? else { return f(None) };
        if k.pure_lookup() {
            self.read_attached(py, false, |h, fl| f(h.mapaccess(fl, &k).map_err(K::raise)?))
        } else {
            self.read(false, |h, fl| f(h.mapaccess(fl, &k).map_err(K::raise)?))
        }
        // `k` (an object key's reference) is released here, after the read.
    }

    /// Read access for the GC's `__traverse__`, which must not fail or block:
    /// `None` while a write is in progress.
    pub(crate) fn try_read<R>(&self, f: impl FnOnce(&HMap<K, V>) -> R) -> Option<R> {
        let _claim = self.flags.read(false).ok()?;
        // SAFETY: as in `read`.
        Some(f(unsafe { &*self.h.get() }))
    }

    pub fn len(&self, py: Python<'_>) -> PyResult<usize> {
        self.read_attached(py, false, |h, _| Ok(h.count))
    }

    #[inline]
    pub fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        // `to_py` allocates no GC-tracked object (see `PyVal::to_py`).
        self.lookup_with(py, key, |v| v.map(|v| v.to_py(py)).transpose())
    }

    #[inline]
    pub fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.lookup_with(key.py(), key, |v| Ok(v.is_some()))
    }

    pub fn set(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = K::from_py(key)?;
        let v = V::from_py(value)?;
        let old = self.write(|h, fl| h.mapassign(fl, k, v).map_err(K::raise))?;
        drop(old); // after the claim: may run a __del__
        Ok(())
    }

    /// Go's `delete`: the removed entry, dropped by the caller after the claim.
    pub fn delete(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<(K, V)>> {
        let Some(k) = K::from_py_lookup(key)? else { return Ok(None) };
        self.write(|h, fl| h.mapdelete(fl, &k).map_err(K::raise))
    }

    pub fn pop(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        match self.delete(key)? {
            Some((_k, v)) => Ok(Some(v.to_py(py)?)),
            None => Ok(None),
        }
    }

    /// Removes the first entry in bucket order (no draw: unlike `iter`, popitem
    /// is not one of Go's operations).
    pub fn popitem(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyAny>)>> {
        let removed = self.write(|h, fl| {
            let mut it = h.mapiterinit_nodraw();
            let Some(key) = h.mapiternext(fl, &mut it).map_err(K::raise)?.map(|(k, _)| k.clone_key()) else {
                return Ok(None);
            };
            drop(it);
            h.mapdelete(fl, &key).map_err(K::raise)
        })?;
        match removed {
            Some((k, v)) => Ok(Some((k.to_py(py)?, v.to_py(py)?))),
            None => Ok(None),
        }
    }

    pub fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        // Go has no setdefault; this is `v, ok := m[k]; if !ok { m[k] = d }`.
        if let Some(v) = self.get(py, key)? {
            return Ok(v);
        }
        let v = V::from_py(default)?;
        let out = v.to_py(py)?;
        self.set(key, default)?;
        Ok(out)
    }

    pub fn shrink(&self) -> PyResult<()> {
        let dropped = self.write(|h, fl| h.try_shrink(fl).map_err(|_| memory_error()))?;
        drop(dropped);
        Ok(())
    }

    pub fn clear(&self) -> PyResult<()> {
        let dropped = self.write(|h, fl| Ok(h.mapclear(fl)))?;
        drop(dropped);
        Ok(())
    }

    /// Every entry as Python objects, in bucket order, without a draw (for
    /// `==`, `repr`, pickling).
    pub fn items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        self.read(false, |h, fl| {
            let mut out = Vec::with_capacity(h.count);
            let mut it = h.mapiterinit_nodraw();
            while let Some((k, v)) = h.mapiternext(fl, &mut it).map_err(K::raise)? {
                out.push((k.to_py(py)?, v.to_py(py)?));
            }
            Ok(out)
        })
    }

    pub fn copy(&self, py: Python<'_>) -> PyResult<HMap<K, V>> {
        self.read(false, |h, _| h.try_clone_with(|v| v.clone_val(py)).map_err(|_| memory_error()))
    }

    pub fn hash0(&self) -> PyResult<u32> {
        self.read(false, |h, _| Ok(h.hash0))
    }

    pub fn hashkey(&self) -> PyResult<[u64; 4]> {
        self.read(false, |h, _| Ok(h.hashkey))
    }

    /// The Go release the map follows (fixed at creation).
    pub fn go(&self) -> PyResult<GoRelease> {
        self.read(false, |h, _| Ok(h.go))
    }

    pub fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        /// One bucket, copied out under the claim (references only).
        type Owned = ([u8; 8], Vec<Option<(Py<PyAny>, Py<PyAny>)>>);
        enum Old {
            Chain(Vec<Owned>),
            Evacuated([u8; 8]),
        }
        let own = |c: &Vec<BucketView<'_, K, V>>| -> PyResult<Vec<Owned>> {
            c.iter()
                .map(|bv| {
                    let entries = bv
                        .entries
                        .iter()
                        .map(|e| e.map(|(k, v)| Ok::<_, PyErr>((k.to_py(py)?, v.to_py(py)?))).transpose())
                        .collect::<PyResult<Vec<_>>>()?;
                    Ok((bv.tophash, entries))
                })
                .collect()
        };
        // Under the claim: numbers and references; the dicts and lists after it.
        let (header, buckets, olds) = self.read(false, |h, fl| {
            let header = (h.count, h.b, fl.go_flags(), h.noverflow, h.hash0, h.nevacuate, h.growing(), h.go);
            let buckets =
                h.snapshot_buckets().map(|chains| chains.iter().map(own).collect::<PyResult<Vec<_>>>()).transpose()?;
            let olds = h
                .snapshot_oldbuckets()
                .map(|olds| {
                    olds.iter()
                        .map(|o| match o {
                            OldView::Chain(c) => Ok(Old::Chain(own(c)?)),
                            OldView::Evacuated(top) => Ok(Old::Evacuated(*top)),
                        })
                        .collect::<PyResult<Vec<_>>>()
                })
                .transpose()?;
            Ok((header, buckets, olds))
        })?;
        let d = PyDict::new(py);
        let (count, b, flags, noverflow, hash0, nevacuate, growing, go) = header;
        d.set_item("count", count)?;
        d.set_item("B", b)?;
        d.set_item("flags", flags)?;
        d.set_item("noverflow", noverflow)?;
        d.set_item("hash0", hash0)?;
        d.set_item("nevacuate", nevacuate)?;
        d.set_item("growing", growing)?;
        d.set_item("go", go.name())?;
        let chain = |c: Vec<Owned>| -> PyResult<Bound<'py, PyList>> {
            let l = PyList::empty(py);
            for (tophash, entries) in c {
                let b = PyDict::new(py);
                b.set_item("tophash", PyList::new(py, tophash.iter().map(|&t| t as u32))?)?;
                let keys = PyList::empty(py);
                let vals = PyList::empty(py);
                for e in entries {
                    match e {
                        Some((k, v)) => {
                            keys.append(k)?;
                            vals.append(v)?;
                        }
                        None => {
                            keys.append(py.None())?;
                            vals.append(py.None())?;
                        }
                    }
                }
                b.set_item("keys", keys)?;
                b.set_item("values", vals)?;
                l.append(b)?;
            }
            Ok(l)
        };
        match buckets {
            Some(chains) => {
                let l = PyList::empty(py);
                for c in chains {
                    l.append(chain(c)?)?;
                }
                d.set_item("buckets", l)?;
            }
            None => d.set_item("buckets", py.None())?,
        }
        match olds {
            Some(olds) => {
                let l = PyList::empty(py);
                for o in olds {
                    match o {
                        Old::Chain(c) => l.append(chain(c)?)?,
                        Old::Evacuated(top) => {
                            let e = PyDict::new(py);
                            e.set_item("evacuated", true)?;
                            e.set_item("tophash", PyList::new(py, top.iter().map(|&t| t as u32))?)?;
                            l.append(e)?;
                        }
                    }
                }
                d.set_item("oldbuckets", l)?;
            }
            None => d.set_item("oldbuckets", py.None())?,
        }
        Ok(d)
    }

    pub fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, same_size, go) =
            self.read(false, |h, fl| Ok((h.stats(), fl.has(crate::flags::SAME_SIZE_GROW), h.go)))?;
        {
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
            d.set_item("same_size_grow", same_size)?;
            d.set_item("nevacuate", s.nevacuate)?;
            d.set_item("bytes", s.bytes)?;
            d.set_item("go", go.name())?;
            // Go grows when count > loadFactorNum * 2^B / loadFactorDen.
            d.set_item("load_factor_max", go.load_factor_num() as f64 / crate::hmap::LOAD_FACTOR_DEN as f64)?;
            Ok(d)
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let mut result = Ok(());
        self.try_read(|h| {
            h.rand.with_external(|src| {
                if let Some(d) = src.as_any().downcast_ref::<PyDraws>() {
                    result = visit.call(&d.source);
                }
            });
            h.for_each_owned(|k, v| {
                for o in [k.and_then(PyKey::object), v.and_then(PyVal::object)].into_iter().flatten() {
                    if result.is_ok() {
                        result = visit.call(o);
                    }
                }
            })
        });
        result
    }

    fn gc_clear(&self) {
        // A map the GC clears is garbage: no draw, and a busy map is left alone.
        if let Ok(dropped) = self.write(|h, fl| Ok((h.reset_tables(fl), h.rand.drop_external()))) {
            dispose(dropped);
        }
    }

    /// Hands the arrays and the `rand=` source to [`dispose`] (the map is being
    /// deallocated).
    pub(crate) fn dispose_contents(&mut self) {
        let h = self.h.get_mut();
        let tables = h.take_tables();
        let external = h.rand.drop_external();
        dispose((tables, external));
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        dispatch!(AnyMap, &mut self.inner, m => m.dispose_contents())
    }
}

/// Draws from the Python `rand=` argument: an iterator or a zero-argument callable.
pub(crate) struct PyDraws {
    pub(crate) source: Py<PyAny>,
    callable: bool,
}

impl ExternalDraws for PyDraws {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn next_draw(&mut self) -> Option<u64> {
        Python::attach(|py| {
            let src = self.source.bind(py);
            let got = if self.callable {
                src.call0().map(Some)
            } else {
                match src.call_method0("__next__") {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            let bad = |why: String| {
                let _ = PyErr::warn(
                    py,
                    &PyRuntimeWarning::type_object(py),
                    &std::ffi::CString::new(format!(
                        "gomap.Map rand source {why}; continuing with the map's own generator"
                    ))
                    .unwrap(),
                    1,
                );
                None
            };
            match got {
                Ok(Some(v)) => match v.extract::<u64>() {
                    Ok(x) => Some(x),
                    Err(_) => bad(format!(
                        "gave {}, not an int in [0, 2**64)",
                        v.repr().map(|r| r.to_string()).unwrap_or_default()
                    )),
                },
                Ok(None) => None,
                Err(e) => bad(format!("raised {e}")),
            }
        })
    }
}

/// The canonical kind a `key=`/`value=` argument names. Accepted: the canonical
/// names, the aliases `"int" "float" "str" "bytes" "object"` and the Python types
/// `int float str bytes object` (the aliases of `"int64" "float64" "string"
/// "bytes" "object"`); values take only `int64 float64 object` and their aliases.
pub(crate) fn kind_name(py: Python<'_>, ob: &Bound<'_, PyAny>, values: bool) -> PyResult<&'static str> {
    const KEYS: [&str; 9] = ["int64", "int32", "uint64", "uint32", "float64", "float32", "string", "bytes", "object"];
    const VALUES: [&str; 3] = ["int64", "float64", "object"];
    const ALIASES: [(&str, &str); 5] =
        [("int", "int64"), ("float", "float64"), ("str", "string"), ("bytes", "bytes"), ("object", "object")];
    let allowed: &[&str] = if values { &VALUES } else { &KEYS };
    let what = if values { "value" } else { "key" };
    let aliases: Vec<&str> = ALIASES.iter().filter(|(_, k)| allowed.contains(k)).map(|(a, _)| *a).collect();
    let expected = || {
        format!(
            "expected one of {}, the aliases {}, or the Python types {}",
            allowed.join(", "),
            aliases.join(", "),
            aliases.join(", ")
        )
    };
    let name: String = if let Ok(t) = ob.cast::<PyType>() {
        let alias = if t.is(PyInt::type_object(py)) {
            "int"
        } else if t.is(PyFloat::type_object(py)) {
            "float"
        } else if t.is(PyString::type_object(py)) {
            "str"
        } else if t.is(PyBytes::type_object(py)) {
            "bytes"
        } else if t.is(pyo3::types::PyAny::type_object(py)) {
            "object"
        } else {
            ""
        };
        if !aliases.contains(&alias) {
            return Err(PyValueError::new_err(format!("unsupported {what} kind {}; {}", ob.repr()?, expected())));
        }
        alias.to_owned()
    } else if let Ok(s) = ob.cast::<PyString>() {
        s.to_str()?.to_owned()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} kind must be a str or a type, not {}; {}",
            ob.get_type().name()?,
            expected()
        )));
    };
    let canonical = ALIASES.iter().find(|(a, _)| *a == name).map_or(name.as_str(), |(_, k)| *k);
    allowed
        .iter()
        .copied()
        .find(|k| *k == canonical)
        .ok_or_else(|| PyValueError::new_err(format!("unknown {what} kind {name:?}; {}", expected())))
}

pub(crate) fn random_hashkey() -> [u64; 4] {
    // Go fills hashkey from the OS and makes every word odd.
    let r = FastRand::from_os(None);
    [r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1]
}

/// Go's classic map (`runtime/map.go`, Go 1.19–1.24 with `noswissmap`, the
/// release chosen per map with `go=`), bit-exact with the Go runtime given its
/// `hashkey` and random draws. See the module documentation.
#[pyclass(module = "gomap._core", name = "Map", frozen, mapping, weakref, subclass)]
pub struct Map {
    pub(crate) inner: AnyMap,
    key_kind: &'static str,
    value_kind: &'static str,
}

impl Map {
    /// `delete_if` (`delete_when` true) and `retain` (false): one Go iteration
    /// over the items, a Go delete after each entry whose `pred` answer equals
    /// `delete_when`. Each iterator step takes and releases its read claim, so
    /// `pred` runs with nothing held.
    fn filter_items(&self, slf: &Bound<'_, Self>, pred: &Bound<'_, PyAny>, delete_when: bool) -> PyResult<usize> {
        let py = slf.py();
        if !pred.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "pred must be a callable taking (key, value), not {}",
                pred.get_type().name()?
            )));
        }
        let it = Bound::new(py, MapIter::new(slf, IterMode::Items)?)?;
        let mut removed = 0;
        for item in it.try_iter()? {
            let item = item?;
            let pair = item.cast::<PyTuple>()?;
            let (k, v) = (pair.get_item(0)?, pair.get_item(1)?);
            if pred.call1((&k, v))?.is_truthy()? == delete_when {
                // The removed entry is dropped after the write claim is released.
                let gone = dispatch!(AnyMap, &self.inner, m => m.delete(&k).map(|e| e.is_some()))?;
                removed += usize::from(gone);
            }
        }
        Ok(removed)
    }

    /// A lookup with a key of the wrong type or range for a typed map finds
    /// nothing, as a `str` is simply not in a `dict` of ints; an `object` map
    /// keeps the error (an unhashable key is `TypeError`, as for `dict`).
    fn absent_if_wrong_kind<T>(&self, py: Python<'_>, r: PyResult<Option<T>>) -> PyResult<Option<T>> {
        match r {
            Err(e)
                if self.key_kind != "object"
                    && (e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyOverflowError>(py)) =>
            {
                Ok(None)
            }
            r => r,
        }
    }
}

#[pymethods]
impl Map {
    #[new]
    #[pyo3(signature = (key = None, value = None, hint = 0, *, items = None, hashkey = None, rand = None, go = None))]
    fn py_new(
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        hint: i64,
        items: Option<&Bound<'_, PyAny>>,
        hashkey: Option<&Bound<'_, PyAny>>,
        rand: Option<&Bound<'_, PyAny>>,
        go: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Map> {
        let go = parse_go(go)?;
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
        // As Go's makemap, a hint whose buckets would exceed maxAlloc (2**48
        // bytes) is treated as 0; a smaller one that memory cannot hold is
        // MemoryError, never an abort.
        let hint = hint as usize;
        let hashkey = hashkey_arg(hashkey)?;
        let external = rand_arg(rand)?;
        let rand = FastRand::from_os(external);
        let inner = construct!(AnyMap, key_kind, value_kind, <K, V> => Shared::new(
            HMap::<K, V>::try_makemap(hint, hashkey, rand, go).map_err(|_| {
                PyMemoryError::new_err(format!("gomap.Map: out of memory for the buckets of hint {hint}"))
            })?
        ))
        .expect("kinds validated above");
        let map = Map { inner, key_kind, value_kind };
        if let Some(items) = items {
            // Go 1.23's maps.Collect: the entries assigned in order on the new map.
            map.update(Some(items), None)?;
        }
        Ok(map)
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

    /// Go's `runtime.hashkey` this map hashes with.
    #[getter]
    fn hashkey(&self) -> PyResult<(u64, u64, u64, u64)> {
        let h = dispatch!(AnyMap, &self.inner, m => m.hashkey())?;
        Ok((h[0], h[1], h[2], h[3]))
    }

    /// The Go release this map follows: "1.19" … "1.24" (the `go=` argument).
    #[getter]
    fn go(&self) -> PyResult<&'static str> {
        Ok(dispatch!(AnyMap, &self.inner, m => m.go())?.name())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        dispatch!(AnyMap, &self.inner, m => m.len(py))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match dispatch!(AnyMap, &self.inner, m => m.get(py, key))? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnyMap, &self.inner, m => m.set(key, value))
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let found = dispatch!(AnyMap, &self.inner, m => m.delete(key).map(|e| e.is_some()))?;
        if found {
            Ok(())
        } else {
            Err(PyKeyError::new_err((key.clone().unbind(),)))
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let found =
            self.absent_if_wrong_kind(key.py(), dispatch!(AnyMap, &self.inner, m => m.contains(key).map(Some)))?;
        Ok(found.unwrap_or(false))
    }

    /// Go's `delete(m, k)`: no error when the key is missing.
    fn delete(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        // The removed entry is dropped here, after the write claim is released.
        dispatch!(AnyMap, &self.inner, m => m.delete(key).map(drop))
    }

    /// `m.get(k, default=None)`: the value for `k`, or `default` when `k` is
    /// absent (Go's `v, ok := m[k]`; never moves data). A key of the wrong type
    /// for a typed map is simply absent, as in a `dict`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let found = self.absent_if_wrong_kind(py, dispatch!(AnyMap, &self.inner, m => m.get(py, key)))?;
        Ok(found.unwrap_or_else(|| default.unwrap_or_else(|| py.None())))
    }

    /// `m.pop(k[, default])`: removes `k` (Go's `delete`) and returns its value;
    /// `default` if `k` is absent, else `KeyError`.
    #[pyo3(signature = (key, *default))]
    fn pop(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!("pop expected at most 2 arguments, got {}", default.len() + 1)));
        }
        match dispatch!(AnyMap, &self.inner, m => m.pop(py, key))? {
            Some(v) => Ok(v),
            None if default.len() == 1 => Ok(default.get_item(0)?.unbind()),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    /// Removes and returns the first `(key, value)` in bucket order; `KeyError`
    /// when empty. Not a Go operation: it draws nothing.
    fn popitem(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        dispatch!(AnyMap, &self.inner, m => m.popitem(py))?
            .ok_or_else(|| PyKeyError::new_err("popitem(): map is empty"))
    }

    /// `m.setdefault(k, default=None)`: the value for `k`; when `k` is absent,
    /// assigns `default` first (Go: `v, ok := m[k]; if !ok { m[k] = d }`).
    #[pyo3(signature = (key, default = None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let none = py.None().into_bound(py);
        let d = default.unwrap_or(&none);
        dispatch!(AnyMap, &self.inner, m => m.setdefault(py, key, d))
    }

    /// `m.update([other], **kwargs)` as `dict.update`: `other` is a mapping
    /// (anything with `keys()`) or an iterable of `(key, value)` pairs; every
    /// entry is one Go assignment, in order. A bad entry raises, and the entries
    /// before it stay assigned (as `dict.update`).
    #[pyo3(signature = (other = None, **kwargs))]
    fn update(&self, other: Option<&Bound<'_, PyAny>>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        if let Some(o) = other {
            if let Ok(d) = o.cast::<PyDict>() {
                for (k, v) in d.iter() {
                    self.__setitem__(&k, &v)?;
                }
            } else if o.hasattr("keys")? {
                for k in o.call_method0("keys")?.try_iter()? {
                    let k = k?;
                    let v = o.get_item(&k)?;
                    self.__setitem__(&k, &v)?;
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
                    self.__setitem__(&items[0], &items[1])?;
                }
            }
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                self.__setitem__(&k, &v)?;
            }
        }
        Ok(())
    }

    /// Go's `clear(m)` (`mapclear`): keeps B and the bucket array, draws a new hash0.
    fn clear(&self) -> PyResult<()> {
        dispatch!(AnyMap, &self.inner, m => m.clear())
    }

    /// A structural copy: same buckets, chains, growth state and hash0; it draws
    /// from its own generator, not from this map's `rand`.
    fn copy(&self, py: Python<'_>) -> PyResult<Map> {
        let inner = dispatch!(AnyMap, &self.inner, m => {
            let h = m.copy(py)?;
            let shared = Shared::new(h);
            shared.flags.set(m.flags.go_flags() as u32 & crate::flags::SAME_SIZE_GROW);
            AnyMap::from(shared)
        });
        Ok(Map { inner, key_kind: self.key_kind, value_kind: self.value_kind })
    }

    /// Returns memory after deletes (Go never does, golang/go#20135): rebuilds
    /// the table at the smallest B that holds the entries. Open iterators end.
    fn shrink(&self) -> PyResult<()> {
        dispatch!(AnyMap, &self.inner, m => m.shrink())
    }

    /// Looks up every key of a buffer (NumPy array, array.array, memoryview) or
    /// sequence with the GIL released; a NumPy array of values. A missing key is
    /// `KeyError` unless `default` is given.
    #[pyo3(signature = (keys, default = None))]
    fn get_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        dispatch!(AnyMap, &self.inner, m => m.get_many(py, keys, default))
    }

    /// A NumPy bool array: which keys are present.
    fn contains_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        dispatch!(AnyMap, &self.inner, m => m.contains_many(py, keys))
    }

    /// Assigns keys[i] = values[i] for every i, in order, under one write claim.
    ///
    /// `presize=True` (opt-in, never the default) first makes the table big
    /// enough for all the keys, so the batch never grows it: faster, but the
    /// growth history, and so the bucket layout, iteration order and later
    /// draws, then differ from what Go would produce for the same inserts; a
    /// non-empty map that must grow is rebuilt, which ends open iterators (as
    /// `shrink`).
    #[pyo3(signature = (keys, values, *, presize = false))]
    fn set_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        presize: bool,
    ) -> PyResult<()> {
        dispatch!(AnyMap, &self.inner, m => m.set_many(py, keys, values, presize))
    }

    /// Go's delete for every key; a NumPy bool array: which keys were present.
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        dispatch!(AnyMap, &self.inner, m => m.delete_many(py, keys))
    }

    /// The keys as a NumPy array (an object array for `string`, `bytes` and
    /// `object` keys), in the order `iter(m)` would produce them: one Go
    /// iteration, with its draw. Separate calls draw separately.
    fn keys_array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (k, _) = dispatch!(AnyMap, &self.inner, m => m.export(py, true, false))?;
        Ok(k.expect("asked for keys"))
    }

    /// The values as a NumPy array, in the order of one Go iteration (one draw).
    fn values_array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (_, v) = dispatch!(AnyMap, &self.inner, m => m.export(py, false, true))?;
        Ok(v.expect("asked for values"))
    }

    /// `(keys, values)` as two NumPy arrays from one Go iteration (one draw),
    /// so `keys[i]` maps to `values[i]`.
    fn items_arrays(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let (k, v) = dispatch!(AnyMap, &self.inner, m => m.export(py, true, true))?;
        Ok((k.expect("asked for keys"), v.expect("asked for values")))
    }

    /// `copy.copy(m)`: the same as `m.copy()`.
    fn __copy__(&self, py: Python<'_>) -> PyResult<Map> {
        self.copy(py)
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<MapIter> {
        MapIter::new(slf, IterMode::Keys)
    }

    /// A live view of the keys; iterating it is Go's `for k := range m` (Go's
    /// order, one random start per iterator, writes during iteration allowed).
    fn keys(slf: &Bound<'_, Self>) -> KeysView {
        KeysView::new(slf)
    }

    /// A live view of the values, iterated in Go's order (see `keys()`).
    fn values(slf: &Bound<'_, Self>) -> ValuesView {
        ValuesView::new(slf)
    }

    /// A live view of the `(key, value)` pairs, iterated in Go's order: Go's
    /// `for k, v := range m` (see `keys()`).
    fn items(slf: &Bound<'_, Self>) -> ItemsView {
        ItemsView::new(slf)
    }

    /// The map's Go state as plain Python data: the `hmap` header (count, B,
    /// flags, noverflow, hash0, nevacuate, growing) and every bucket and old
    /// bucket with its tophash bytes, keys and values, in the shape a Go
    /// program reading its own map would print. The schema is in
    /// docs/fidelity.md.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnyMap, &self.inner, m => m.snapshot(py))
    }

    /// Counts and memory: count, B, buckets, overflow_buckets, noverflow,
    /// load_factor, growing, same_size_grow, nevacuate, bytes (Go's layout).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnyMap, &self.inner, m => m.stats(py))
    }

    // ---- dict and Go 1.21+/1.23 conveniences (`|`, fromkeys, collect, retain,
    // delete_if, to_dict). Predicates are Python code: they run with no claim
    // held (each iterator step takes and releases its own read claim).

    /// `m | other`: a new Map with `m`'s kinds and hashkey. It starts as
    /// `m.copy()` (structural: same buckets, hash0 and growth state, its own
    /// generator), then `other`'s entries are assigned in `other`'s order, so
    /// `other` wins on common keys. `other` must be a mapping.
    fn __or__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if !other.is_instance(&py.import("collections.abc")?.getattr("Mapping")?)? {
            return Ok(py.NotImplemented());
        }
        let new = self.copy(py)?;
        new.update(Some(other), None)?;
        Ok(Bound::new(py, new)?.into_any().unbind())
    }

    /// `mapping | m`: a new Map with `m`'s kinds and hashkey (fresh hash0 and
    /// generator), holding `mapping`'s entries then `m`'s (so `m` wins).
    fn __ror__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if !other.is_instance(&py.import("collections.abc")?.getattr("Mapping")?)? {
            return Ok(py.NotImplemented());
        }
        let me = slf.get();
        let key = PyString::new(py, me.key_kind);
        let value = PyString::new(py, me.value_kind);
        let hk = PyTuple::new(py, me.hashkey()?.into_pyobject(py)?.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        let go = PyString::new(py, me.go()?);
        let new = Map::py_new(
            py,
            Some(key.as_any()),
            Some(value.as_any()),
            0,
            Some(other),
            Some(hk.as_any()),
            None,
            Some(go.as_any()),
        )?;
        new.update(Some(slf.as_any()), None)?;
        Ok(Bound::new(py, new)?.into_any().unbind())
    }

    /// `m |= other`: `m.update(other)` (a mapping or an iterable of pairs), as
    /// for `dict`; returns `m` itself.
    fn __ior__(&self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.update(Some(other), None)
    }

    /// `Map.fromkeys(keys, value=None, *, key_kind="object", value_kind="object",
    /// hint=0, hashkey=None, rand=None)`: a new map (of the class it is called
    /// on) with every key of the iterable `keys` set to `value`, in order, as
    /// `dict.fromkeys`. The kinds are keyword-only because `value` is the fill
    /// value; `hint`, `hashkey` and `rand` are the constructor's.
    #[classmethod]
    #[pyo3(signature = (keys, value = None, *, key_kind = None, value_kind = None, hint = 0, hashkey = None, rand = None, go = None))]
    #[allow(clippy::too_many_arguments)]
    fn fromkeys<'py>(
        cls: &Bound<'py, PyType>,
        keys: &Bound<'py, PyAny>,
        value: Option<&Bound<'py, PyAny>>,
        key_kind: Option<&Bound<'py, PyAny>>,
        value_kind: Option<&Bound<'py, PyAny>>,
        hint: i64,
        hashkey: Option<&Bound<'py, PyAny>>,
        rand: Option<&Bound<'py, PyAny>>,
        go: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let kw = PyDict::new(py);
        kw.set_item("hashkey", hashkey)?;
        kw.set_item("rand", rand)?;
        kw.set_item("go", go)?;
        let m = cls.call((key_kind, value_kind, hint), Some(&kw))?;
        let none = py.None().into_bound(py);
        let value = value.unwrap_or(&none);
        for k in keys.try_iter()? {
            m.set_item(k?, value)?;
        }
        Ok(m)
    }

    /// `Map.collect(items, key=None, value=None, hint=0, *, hashkey=None,
    /// rand=None, go=None)`: Go 1.23's `maps.Collect`, the same as
    /// `Map(key, value, hint, items=items, ...)`: a new map with every
    /// `(key, value)` of `items` (a mapping or an iterable of pairs) assigned in
    /// order; a later pair wins over an earlier one with the same key.
    #[classmethod]
    #[pyo3(signature = (items, key = None, value = None, hint = 0, *, hashkey = None, rand = None, go = None))]
    fn collect<'py>(
        cls: &Bound<'py, PyType>,
        items: &Bound<'py, PyAny>,
        key: Option<&Bound<'py, PyAny>>,
        value: Option<&Bound<'py, PyAny>>,
        hint: i64,
        hashkey: Option<&Bound<'py, PyAny>>,
        rand: Option<&Bound<'py, PyAny>>,
        go: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kw = PyDict::new(cls.py());
        kw.set_item("items", items)?;
        kw.set_item("hashkey", hashkey)?;
        kw.set_item("rand", rand)?;
        kw.set_item("go", go)?;
        cls.call((key, value, hint), Some(&kw))
    }

    /// `m.delete_if(pred)`: Go's `maps.DeleteFunc(m, pred)`, that is
    /// `for k, v := range m { if pred(k, v) { delete(m, k) } }`: one Go
    /// iteration (its random start is a draw, as in Go) with a delete after each
    /// entry `pred` accepts. `pred` runs with no lock or claim held, so it may
    /// read or even write the map (with Go's iteration semantics). Returns how
    /// many entries were removed. If `pred` raises, the deletes done so far stay.
    fn delete_if(slf: &Bound<'_, Self>, pred: &Bound<'_, PyAny>) -> PyResult<usize> {
        slf.get().filter_items(slf, pred, true)
    }

    /// `m.retain(pred)`: keeps the entries for which `pred(k, v)` is true and
    /// deletes the others; the same as `m.delete_if(lambda k, v: not pred(k, v))`
    /// (one Go iteration, deletes as it goes, `pred` called with nothing held).
    /// Returns how many entries were removed.
    fn retain(slf: &Bound<'_, Self>, pred: &Bound<'_, PyAny>) -> PyResult<usize> {
        slf.get().filter_items(slf, pred, false)
    }

    /// A `dict` with the same entries, in bucket order. Draws nothing and
    /// changes nothing. `json.dumps(m.to_dict())` serialises a map.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let items = dispatch!(AnyMap, &self.inner, m => m.items(py))?;
        let d = PyDict::new(py);
        for (k, v) in items {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: pyo3::basic::CompareOp) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        use pyo3::basic::CompareOp::*;
        let eq = match op {
            Eq => true,
            Ne => false,
            _ => return Ok(py.NotImplemented()),
        };
        let mapping = py.import("collections.abc")?.getattr("Mapping")?;
        if !other.is_instance(&mapping)? {
            return Ok(py.NotImplemented());
        }
        // As dict: values compare with identity first (PyObject_RichCompareBool),
        // so NaN values and a map holding itself are equal to themselves; two
        // distinct maps that each hold themselves recurse into RecursionError,
        // as two such dicts do.
        if other.is(slf) {
            return Ok(pyo3::types::PyBool::new(py, eq).to_owned().into_any().unbind());
        }
        let items = dispatch!(AnyMap, &slf.get().inner, m => m.items(py))?;
        let mut same = other.len()? == items.len();
        if same {
            let missing = PyTuple::empty(py); // a fresh sentinel nobody stores
            for (k, v) in &items {
                let theirs = match other.call_method1("get", (k, &missing)) {
                    Ok(t) => t,
                    Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                        same = false;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                if theirs.is(&missing) || !(v.bind(py).is(&theirs) || v.bind(py).eq(&theirs)?) {
                    same = false;
                    break;
                }
            }
        }
        Ok(pyo3::types::PyBool::new(py, same == eq).to_owned().into_any().unbind())
    }

    fn __hash__(&self) -> PyResult<isize> {
        Err(PyTypeError::new_err("unhashable type: 'Map'"))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let me = slf.get();
        let head = format!("Map(key='{}', value='{}') ", me.key_kind, me.value_kind);
        let id = slf.as_ptr() as usize;
        if !super::repr_enter(id) {
            return Ok(format!("{head}{{...}}"));
        }
        let body = (|| -> PyResult<String> {
            let items = dispatch!(AnyMap, &me.inner, m => m.items(py))?;
            let mut parts = Vec::with_capacity(items.len());
            for (k, v) in &items {
                parts.push(format!("{}: {}", k.bind(py).repr()?, v.bind(py).repr()?));
            }
            Ok(parts.join(", "))
        })();
        super::repr_leave(id);
        Ok(format!("{head}{{{}}}", body?))
    }

    /// Pickles as the kinds, hashkey, hash0 and Go release plus the items, set on the new
    /// map after it exists (so a map that contains itself pickles).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let items = dispatch!(AnyMap, &me.inner, m => m.items(py))?;
        let hash0 = dispatch!(AnyMap, &me.inner, m => m.hash0())?;
        let hk = me.hashkey()?;
        let go = dispatch!(AnyMap, &me.inner, m => m.go())?.name();
        let rebuild = py.import("gomap._core")?.getattr("_rebuild")?;
        let args = (me.key_kind, me.value_kind, hk, hash0, items.len(), go).into_pyobject(py)?;
        let items = PyList::new(py, items.iter().map(|(k, v)| (k.clone_ref(py), v.clone_ref(py))))?;
        PyTuple::new(
            py,
            [
                rebuild.into_any(),
                args.into_any(),
                py.None().into_bound(py),
                py.None().into_bound(py),
                items.try_iter()?.into_any(),
            ],
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        dispatch!(AnyMap, &self.inner, m => m.traverse(&visit))
    }

    fn __clear__(&self) {
        dispatch!(AnyMap, &self.inner, m => m.gc_clear())
    }
}

/// Unpickling: an empty map with the same kinds, hashkey, hash0 and Go release,
/// sized for `hint` entries; pickle then sets the items. (Pickles made before
/// releases were selectable have no `go`: they were Go 1.19 maps.)
#[pyfunction]
#[pyo3(signature = (key, value, hashkey, hash0, hint, go = None))]
pub fn _rebuild(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    hashkey: &Bound<'_, PyAny>,
    hash0: u32,
    hint: i64,
    go: Option<&Bound<'_, PyAny>>,
) -> PyResult<Map> {
    let draws = PyList::new(py, [hash0])?;
    Map::py_new(py, Some(key), Some(value), hint, None, Some(hashkey), Some(draws.as_any()), go)
}

/// The `go=` argument: None (the default release, Go 1.19) or "1.19" … "1.24".
fn parse_go(go: Option<&Bound<'_, PyAny>>) -> PyResult<GoRelease> {
    let Some(go) = go.filter(|g| !g.is_none()) else { return Ok(GoRelease::default()) };
    let names = || GoRelease::ALL.map(|r| r.name()).join(", ");
    let Ok(text) = go.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "go must be a Go release as a string (one of {}), not {}",
            names(),
            go.get_type().name()?
        )));
    };
    let text = text.to_str()?;
    GoRelease::parse(text).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unsupported Go release {text:?}; expected one of {} (the releases with the classic map)",
            names()
        ))
    })
}

/// The `hashkey=` argument of a constructor: four ints in [0, 2**64), or a fresh
/// random key (as `Map` takes it; for the other engines of the module).
pub(crate) fn hashkey_arg(hashkey: Option<&Bound<'_, PyAny>>) -> PyResult<[u64; 4]> {
    let Some(hk) = hashkey else { return Ok(random_hashkey()) };
    let words: Vec<Bound<'_, PyAny>> = hk
        .try_iter()
        .map_err(|_| PyTypeError::new_err("hashkey must be a sequence of four ints"))?
        .collect::<PyResult<_>>()?;
    if words.len() != 4 {
        return Err(PyValueError::new_err(format!("hashkey must have 4 words, not {}", words.len())));
    }
    let mut out = [0u64; 4];
    for (o, w) in out.iter_mut().zip(&words) {
        if !w.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err(format!("hashkey words must be ints, not {}", w.get_type().name()?)));
        }
        *o = w.extract::<u64>().map_err(|_| {
            PyValueError::new_err(format!(
                "hashkey word {} is not in [0, 2**64)",
                w.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
    }
    Ok(out)
}

/// The `rand=` argument of a constructor (as `Map` takes it): `None`, an
/// iterable of ints, or a zero-argument callable.
pub(crate) fn rand_arg(rand: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Box<dyn ExternalDraws>>> {
    Ok(match rand {
        None => None,
        Some(r) if r.is_none() => None,
        Some(r) if r.is_callable() && !r.hasattr("__next__")? => {
            Some(Box::new(PyDraws { source: r.clone().unbind(), callable: true }))
        }
        Some(r) => {
            let it = r
                .try_iter()
                .map_err(|_| PyTypeError::new_err("rand must be an iterable or a zero-argument callable of ints"))?;
            Some(Box::new(PyDraws { source: it.into_any().unbind(), callable: false }))
        }
    })
}
