//! `gomap._core.SyncMap`: the PyO3 class over [`engine::SyncCore`], Go's
//! `sync.Map` on gomap hmaps, one typed engine per key kind × value kind (the
//! table of `anymap`). `gomap.SyncMap` is a thin Python subclass (repr,
//! pickling, the mapping mixins).

pub mod engine;
mod published;

use super::anymap::{construct, dispatch, engine_enum};
use super::convert::{PyKey, PyVal};
use super::map::{hashkey_arg, kind_name, rand_arg, PyDraws};
use super::{value_ok, ResultTuple};
use crate::kinds::MapKey;
use engine::{load_py, slot_py, Entry, GoMap, Iface, Slot, SyncCore};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyUnicodeEncodeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PyTuple};
use pyo3::PyTraverseError;
use std::collections::HashSet;
use std::sync::Arc;

engine_enum!(pub enum AnySync, SyncCore);

/// One bucket of a snapshot: tophash bytes and the keys of the live slots.
type RawBucket<K> = ([u8; 8], Vec<Option<Iface<K>>>);

/// An old bucket: its chain, or (evacuated) only its tophash bytes.
type RawOld<K> = Result<Vec<RawBucket<K>>, [u8; 8]>;

/// A map's header and buckets, copied out under the mutex (keys cloned).
struct RawMap<K> {
    hash0: u32,
    b: u8,
    count: usize,
    noverflow: u16,
    nevacuate: usize,
    growing: bool,
    flags: u8,
    bytes: usize,
    buckets: Option<Vec<Vec<RawBucket<K>>>>,
    old: Option<Vec<RawOld<K>>>,
}

type Pairs<K, V> = Vec<(Iface<K>, Arc<Entry<V>>)>;

fn pairs_nodraw<K: PyKey, V: PyVal>(g: &GoMap<K, V>) -> PyResult<Pairs<K, V>> {
    let mut out = Vec::with_capacity(g.h.count);
    let mut it = g.h.mapiterinit_nodraw();
    while let Some((k, e)) = g.h.mapiternext(&g.fl, &mut it).map_err(K::raise)? {
        out.push((k.clone_key(), e.clone()));
    }
    Ok(out)
}

fn raw_map<K: PyKey, V: PyVal>(g: &GoMap<K, V>) -> RawMap<K> {
    let chain = |c: &Vec<crate::hmap::BucketView<'_, Iface<K>, Arc<Entry<V>>>>| -> Vec<RawBucket<K>> {
        c.iter().map(|bv| (bv.tophash, bv.entries.iter().map(|e| e.map(|(k, _)| k.clone_key())).collect())).collect()
    };
    let s = g.h.stats();
    RawMap {
        hash0: g.h.hash0,
        b: g.h.b,
        count: g.h.count,
        noverflow: g.h.noverflow,
        nevacuate: g.h.nevacuate,
        growing: g.h.growing(),
        flags: g.fl.go_flags() & !(crate::flags::ITERATOR | crate::flags::OLD_ITERATOR) as u8,
        bytes: s.bytes,
        buckets: g.h.snapshot_buckets().map(|cs| cs.iter().map(chain).collect()),
        old: g.h.snapshot_oldbuckets().map(|os| {
            os.iter()
                .map(|o| match o {
                    crate::hmap::OldView::Chain(c) => Ok(chain(c)),
                    crate::hmap::OldView::Evacuated(t) => Err(*t),
                })
                .collect()
        }),
    }
}

fn raw_map_py<'py, K: PyKey>(py: Python<'py>, r: &RawMap<K>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hash0", r.hash0)?;
    d.set_item("B", r.b)?;
    d.set_item("count", r.count)?;
    d.set_item("noverflow", r.noverflow)?;
    d.set_item("nevacuate", r.nevacuate)?;
    d.set_item("growing", r.growing)?;
    d.set_item("same_size_grow", r.flags as u32 & crate::flags::SAME_SIZE_GROW != 0)?;
    d.set_item("bytes", r.bytes)?;
    let chain = |c: &Vec<RawBucket<K>>| -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for (top, keys) in c {
            let b = PyDict::new(py);
            b.set_item("tophash", top.to_vec())?;
            let ks = PyList::empty(py);
            for k in keys {
                match k {
                    Some(k) => ks.append(k.0.to_py(py)?)?,
                    None => ks.append(py.None())?,
                }
            }
            b.set_item("keys", ks)?;
            l.append(b)?;
        }
        Ok(l)
    };
    match &r.buckets {
        Some(cs) => {
            let l = PyList::empty(py);
            for c in cs {
                l.append(chain(c)?)?;
            }
            d.set_item("buckets", l)?;
        }
        None => d.set_item("buckets", py.None())?,
    }
    match &r.old {
        Some(os) => {
            let l = PyList::empty(py);
            for o in os {
                match o {
                    Ok(c) => l.append(chain(c)?)?,
                    Err(t) => {
                        let e = PyDict::new(py);
                        e.set_item("evacuated", true)?;
                        e.set_item("tophash", t.to_vec())?;
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

impl<K: PyKey, V: PyVal> SyncCore<K, V> {
    /// A key for a write: a key the map cannot hold is an error.
    fn write_key(ob: &Bound<'_, PyAny>) -> PyResult<Iface<K>> {
        K::from_py(ob).map(Iface)
    }

    /// A key for a read: for a typed map, a key of the wrong type or range (or a
    /// str with lone surrogates) is simply absent, as a `str` is not in a dict of
    /// ints; an `object` map keeps the error (an unhashable key is `TypeError`).
    fn read_key(ob: &Bound<'_, PyAny>) -> PyResult<Option<Iface<K>>> {
        match K::from_py(ob) {
            Ok(k) => Ok(Some(Iface(k))),
            Err(e)
                if K::NAME != "object"
                    && (e.is_instance_of::<PyTypeError>(ob.py())
                        || e.is_instance_of::<PyOverflowError>(ob.py())
                        || e.is_instance_of::<PyUnicodeEncodeError>(ob.py())) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn slot(value: &Bound<'_, PyAny>) -> PyResult<Arc<Slot<V>>> {
        Ok(Arc::new(Slot::Val(V::from_py(value)?)))
    }

    fn py_load(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        match Self::read_key(key)? {
            Some(k) => self.load(py, &k),
            None => Ok(None),
        }
    }

    fn py_swap(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = Self::write_key(key)?;
        let new = Self::slot(value)?;
        match self.swap(py, k, new)? {
            Some(prev) => Ok(Some(slot_py(py, &prev)?)),
            None => Ok(None),
        }
    }

    fn py_store(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = Self::write_key(key)?;
        let new = Self::slot(value)?;
        drop(self.swap(py, k, new)?); // the previous value, released with no lock held
        Ok(())
    }

    fn py_load_or_store(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<(Py<PyAny>, bool)> {
        let k = Self::write_key(key)?;
        let new = Self::slot(value)?;
        let (actual, loaded) = self.load_or_store(py, k, new)?;
        Ok((slot_py(py, &actual)?, loaded))
    }

    fn py_load_and_delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let Some(k) = Self::read_key(key)? else { return Ok(None) };
        match self.load_and_delete(py, &k)? {
            Some(v) => Ok(Some(slot_py(py, &v)?)),
            None => Ok(None),
        }
    }

    /// `old` as a value of the map's kind; `None` if it cannot be one (then it
    /// equals no stored value).
    fn old_value(old: &Bound<'_, PyAny>) -> PyResult<Option<V>> {
        match V::from_py(old) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_instance_of::<PyTypeError>(old.py()) || e.is_instance_of::<PyOverflowError>(old.py()) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn py_compare_and_swap(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        old: &Bound<'_, PyAny>,
        new: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let Some(k) = Self::read_key(key)? else { return Ok(false) };
        let new = match new {
            Some(n) => Some(Self::slot(n)?),
            None => None,
        };
        let Some(old) = Self::old_value(old)? else { return Ok(false) };
        self.compare_and_swap(py, &k, &old, new)
    }

    fn py_range(&self, py: Python<'_>, mut sink: impl FnMut(Py<PyAny>, Py<PyAny>) -> PyResult<bool>) -> PyResult<()> {
        let read = self.range_read(py)?;
        let Some(m) = read.m.as_deref() else { return Ok(()) };
        let mut it = m.h.mapiterinit(&m.fl);
        loop {
            let (k, e) = match m.h.mapiternext(&m.fl, &mut it).map_err(K::raise)? {
                Some((k, e)) => (k, e.clone()),
                None => return Ok(()),
            };
            let Some(v) = load_py(py, &e)? else { continue };
            if !sink(k.0.to_py(py)?, v)? {
                return Ok(());
            }
        }
    }

    fn py_items_nodraw(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let entries = self.entries_nodraw(py, true)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, e) in &entries {
            if let (Some(k), Some(v)) = (k, load_py(py, e)?) {
                out.push((k.0.to_py(py)?, v));
            }
        }
        Ok(out)
    }

    fn py_len(&self, py: Python<'_>) -> PyResult<usize> {
        let entries = self.entries_nodraw(py, false)?;
        Ok(entries.iter().filter(|(_, e)| e.state() == 2).count())
    }

    fn debug_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        #[allow(clippy::type_complexity)]
        let (read, amended, dirty, misses) = self.locked(py, |st, read, _| -> PyResult<_> {
            let r = match read.m.as_deref() {
                Some(m) => pairs_nodraw(m)?,
                None => Vec::new(),
            };
            let d = match st.dirty.as_ref() {
                Some(d) => Some(pairs_nodraw(d)?),
                None => None,
            };
            Ok((r, read.amended, d, st.misses))
        })??;
        let dirty_ptrs: HashSet<*const Entry<V>> = dirty.iter().flatten().map(|(_, e)| Arc::as_ptr(e)).collect();
        let mut read_keys = Vec::new();
        let (mut expunged, mut deleted, mut shared) = (Vec::new(), Vec::new(), Vec::new());
        for (k, e) in &read {
            let kp = k.0.to_py(py)?;
            match e.state() {
                0 => deleted.push(kp.clone_ref(py)),
                1 => expunged.push(kp.clone_ref(py)),
                _ => {}
            }
            if dirty_ptrs.contains(&Arc::as_ptr(e)) {
                shared.push(kp.clone_ref(py));
            }
            read_keys.push(kp);
        }
        let dirty_keys = match &dirty {
            Some(pairs) => {
                let mut ks = Vec::new();
                for (k, e) in pairs {
                    let kp = k.0.to_py(py)?;
                    match e.state() {
                        0 => deleted.push(kp.clone_ref(py)),
                        1 => expunged.push(kp.clone_ref(py)),
                        _ => {}
                    }
                    ks.push(kp);
                }
                Some(PyFrozenSet::new(py, ks)?)
            }
            None => None,
        };
        let d = PyDict::new(py);
        d.set_item("read", PyFrozenSet::new(py, read_keys)?)?;
        d.set_item("amended", amended)?;
        d.set_item("dirty", dirty_keys)?;
        d.set_item("misses", misses)?;
        d.set_item("expunged", PyFrozenSet::new(py, expunged)?)?;
        d.set_item("deleted", PyFrozenSet::new(py, deleted)?)?;
        d.set_item("shared", PyFrozenSet::new(py, shared)?)?;
        Ok(d)
    }

    fn debug_maps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (read, amended, dirty, misses) = self.locked(py, |st, read, _| {
            (read.m.as_deref().map(raw_map), read.amended, st.dirty.as_ref().map(raw_map), st.misses)
        })?;
        let d = PyDict::new(py);
        d.set_item("read", read.as_ref().map(|r| raw_map_py(py, r)).transpose()?)?;
        d.set_item("amended", amended)?;
        d.set_item("dirty", dirty.as_ref().map(|r| raw_map_py(py, r)).transpose()?)?;
        d.set_item("misses", misses)?;
        Ok(d)
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let mut result = Ok(());
        let mut call = |o: &Py<PyAny>| {
            if result.is_ok() {
                result = visit.call(o);
            }
        };
        self.rand.with_external(|src| {
            if let Some(d) = src.as_any().downcast_ref::<PyDraws>() {
                call(&d.source);
            }
        });
        // Each map owns its keys; an entry (and so its value) may be in both maps
        // and is visited once.
        let mut seen: HashSet<*const Entry<V>> = HashSet::new();
        let mut walk = |g: &GoMap<K, V>, call: &mut dyn FnMut(&Py<PyAny>)| {
            g.h.for_each_owned(|k, e| {
                if let Some(o) = k.and_then(|k| k.0.object()) {
                    call(o);
                }
                if let Some(e) = e {
                    if seen.insert(Arc::as_ptr(e)) {
                        if let Some(Slot::Val(v)) = e.load().as_deref() {
                            if let Some(o) = v.object() {
                                call(o);
                            }
                        }
                    }
                }
            })
        };
        // The GC runs with every other thread stopped or outside the map's
        // lock-free paths, and never waits for the mutex: if it is held, the
        // dirty map is not visited (under-reporting keeps objects alive, never
        // frees them early).
        if let Some(m) = self.read.load().m.as_deref() {
            walk(m, &mut call);
        }
        self.try_locked(|st, _| {
            if let Some(d) = st.dirty.as_ref() {
                walk(d, &mut call);
            }
        });
        result
    }

    fn gc_clear(&self) {
        // A map the GC clears is garbage: no draw; a busy map is left alone.
        let dropped = self.try_locked(|st, _| {
            st.misses = 0;
            (st.dirty.take(), self.read.swap(Arc::new(engine::ReadOnly { m: None, amended: false })))
        });
        let ext = self.rand.drop_external();
        drop(dropped);
        drop(ext);
    }
}

/// Go's `sync.Map` (Go 1.19–1.23's `src/sync/map.go`, and Go 1.24's with
/// `GOEXPERIMENT=nosynchashtriemap,noswissmap`) over gomap maps. Use
/// `gomap.SyncMap`, the Python subclass; this is its engine.
#[pyclass(module = "gomap._core", name = "SyncMap", frozen, weakref, subclass, mapping)]
pub struct SyncMap {
    inner: AnySync,
    key_kind: &'static str,
    value_kind: &'static str,
    /// `load`'s and `load_or_store`'s result tuple, refilled when unshared.
    result: ResultTuple,
}

#[pymethods]
impl SyncMap {
    #[new]
    #[pyo3(signature = (key = None, value = None, *, hashkey = None, rand = None))]
    fn py_new(
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        hashkey: Option<&Bound<'_, PyAny>>,
        rand: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SyncMap> {
        let key_kind = match key {
            Some(k) => kind_name(py, k, false)?,
            None => "object",
        };
        let value_kind = match value {
            Some(v) => kind_name(py, v, true)?,
            None => "object",
        };
        let hashkey = hashkey_arg(hashkey)?;
        let external = rand_arg(rand)?;
        let inner = construct!(AnySync, key_kind, value_kind, <K, V> => SyncCore::<K, V>::new(hashkey, external))
            .expect("kinds validated above");
        Ok(SyncMap { inner, key_kind, value_kind, result: ResultTuple::new() })
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

    /// Go's `runtime.hashkey` the maps inside hash with.
    #[getter]
    fn hashkey(&self) -> (u64, u64, u64, u64) {
        let h = dispatch!(AnySync, &self.inner, m => m.hashkey);
        (h[0], h[1], h[2], h[3])
    }

    /// Go's `Load`: `(value, True)`, or `(None, False)` if the key is absent.
    /// Lock-free when the key is in the read map.
    fn load<'py>(&self, py: Python<'py>, key: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let (v, ok) = value_ok(py, dispatch!(AnySync, &self.inner, m => m.py_load(py, key))?);
        self.result.make(py, v, ok)
    }

    /// Go's `Store`: sets the value for a key.
    fn store(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnySync, &self.inner, m => m.py_store(py, key, value))
    }

    /// Go's `LoadOrStore`: `(existing, True)` if the key is present, else
    /// stores `value` and returns `(value, False)`.
    fn load_or_store<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (v, loaded) = dispatch!(AnySync, &self.inner, m => m.py_load_or_store(py, key, value))?;
        self.result.make(py, v, loaded)
    }

    /// Go's `LoadAndDelete`: deletes the key, returning `(previous, True)`, or
    /// `(None, False)` if it was absent.
    fn load_and_delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<(Py<PyAny>, bool)> {
        Ok(value_ok(py, dispatch!(AnySync, &self.inner, m => m.py_load_and_delete(py, key))?))
    }

    /// Go's `Delete`: no error when the key is absent.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnySync, &self.inner, m => m.py_load_and_delete(py, key)).map(drop)
    }

    /// Go's `Swap` (Go 1.20): stores `value`, returning `(previous, True)`, or
    /// `(None, False)` if the key was absent.
    fn swap(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<(Py<PyAny>, bool)> {
        Ok(value_ok(py, dispatch!(AnySync, &self.inner, m => m.py_swap(py, key, value))?))
    }

    /// Go's `CompareAndSwap` (Go 1.20): stores `new` if the current value
    /// `== old` (Python `==`, current value on the left). False if absent.
    fn compare_and_swap(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        dispatch!(AnySync, &self.inner, m => m.py_compare_and_swap(py, key, old, Some(new)))
    }

    /// Go's `CompareAndDelete` (Go 1.20): deletes the key if its value `== old`.
    /// False if absent, even for `old=None`.
    fn compare_and_delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>, old: &Bound<'_, PyAny>) -> PyResult<bool> {
        dispatch!(AnySync, &self.inner, m => m.py_compare_and_swap(py, key, old, None))
    }

    /// Go's `Range`: calls `f(key, value)` for each live entry, in Go's order
    /// (promoting the dirty map first if needed; one draw for the start). Stops
    /// when `f` returns exactly `False`. No lock is held while `f` runs.
    fn range(&self, py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnySync, &self.inner, m => m.py_range(py, |k, v| {
            let r = f.call1((k, v))?;
            Ok(!r.is(pyo3::types::PyBool::new(py, false)))
        }))
    }

    /// Go 1.23's `Clear`: deletes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        dispatch!(AnySync, &self.inner, m => m.clear(py))
    }

    /// The live entries as one `Range` pass sees them (Go's order, promotes,
    /// draws), as a list of `(key, value)`.
    fn _range_items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let mut out = Vec::new();
        dispatch!(AnySync, &self.inner, m => m.py_range(py, |k, v| {
            out.push((k, v));
            Ok(true)
        }))?;
        Ok(out)
    }

    /// The live entries without a draw and without promoting (bucket order of
    /// the dirty map if the read map is amended, else of the read map).
    fn _items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        dispatch!(AnySync, &self.inner, m => m.py_items_nodraw(py))
    }

    /// The number of live entries: O(n) (counts the dirty map under the mutex
    /// when the read map is amended, else the read map lock-free). Exact when
    /// no other thread writes meanwhile.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        dispatch!(AnySync, &self.inner, m => m.py_len(py))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match dispatch!(AnySync, &self.inner, m => m.py_load(py, key))? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.store(py, key, value)
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        match dispatch!(AnySync, &self.inner, m => m.py_load_and_delete(py, key))? {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err((key.clone().unbind(),))),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(dispatch!(AnySync, &self.inner, m => m.py_load(py, key))?.is_some())
    }

    /// `self[key]` if present, else `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        Ok(match dispatch!(AnySync, &self.inner, m => m.py_load(py, key))? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    /// Iterates over the keys one `Range` pass saw (a snapshot list).
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items = self._range_items(py)?;
        let keys = PyList::new(py, items.into_iter().map(|(k, _)| k))?;
        Ok(keys.try_iter()?.into_any().unbind())
    }

    /// Go's internal state, for tests (not API): `read` (keys of read.m),
    /// `amended`, `dirty` (keys, or None), `misses`, `expunged` and `deleted`
    /// (keys whose entry is expunged / nil), `shared` (read keys whose entry is
    /// also dirty's).
    fn _debug_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnySync, &self.inner, m => m.debug_state(py))
    }

    /// The read and dirty maps' Go state (header and buckets, keys only), for
    /// the cross-check against Go (not API).
    fn _debug_maps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnySync, &self.inner, m => m.debug_maps(py))
    }

    /// A structural copy drawing from `rand`, for the cross-check's trials of
    /// candidate draws (not API).
    #[pyo3(signature = (rand = None))]
    fn _debug_fork(&self, py: Python<'_>, rand: Option<&Bound<'_, PyAny>>) -> PyResult<SyncMap> {
        let external = rand_arg(rand)?;
        let inner = dispatch!(AnySync, &self.inner, m => AnySync::from(m.fork(py, external)?));
        Ok(SyncMap { inner, key_kind: self.key_kind, value_kind: self.value_kind, result: ResultTuple::new() })
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.result.traverse(&visit)?;
        dispatch!(AnySync, &self.inner, m => m.traverse(&visit))
    }

    fn __clear__(&self) {
        self.result.clear();
        dispatch!(AnySync, &self.inner, m => m.gc_clear())
    }
}
