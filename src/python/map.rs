//! `gomap.Map`: the PyO3 class over [`HMap`], one typed engine per key/value kind.
//!
//! The class is `frozen`: PyO3's borrow flag is never used. Every method claims
//! the map's [`FlagWord`] instead — a read claim for lookups and iteration steps,
//! the write claim (Go's `hashWriting`) for assignments — and a refused claim is
//! `ConcurrentMapError`. Keys and values are converted (and `object` keys hashed)
//! *before* the claim, as Go hashes before setting `hashWriting`, so a bad key or
//! a raising `__hash__` changes nothing. Entries a write removes are dropped
//! *after* the claim is released: dropping a Python object can run arbitrary
//! code, which must find the map usable.

use super::anymap::{construct, dispatch, AnyMap};
use super::convert::{PyKey, PyVal};
use super::iter::{IterMode, MapIter};
use super::views::{ItemsView, KeysView, ValuesView};
use super::ConcurrentMapError;
use crate::flags::{FlagWord, Misuse};
use crate::hmap::{BucketView, HMap, OldView};
use crate::rand::{ExternalDraws, FastRand};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyTypeInfo};
use std::cell::UnsafeCell;

pub fn misuse(m: Misuse) -> PyErr {
    ConcurrentMapError::new_err(m.message())
}

/// One typed map and the flag word that guards it.
pub struct Shared<K, V> {
    pub flags: FlagWord,
    h: UnsafeCell<HMap<K, V>>,
}

// SAFETY: all access to `h` goes through `read`/`write`, whose flag-word claims
// admit either one writer or any number of readers, never both.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Shared<K, V> {}

impl<K: PyKey, V: PyVal> Shared<K, V> {
    pub fn new(h: HMap<K, V>) -> Self {
        Shared { flags: FlagWord::new(), h: UnsafeCell::new(h) }
    }

    /// Runs `f` under a read claim.
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

    /// Read access for the GC's `__traverse__`, which must not fail or block:
    /// `None` while a write is in progress.
    fn try_read<R>(&self, f: impl FnOnce(&HMap<K, V>) -> R) -> Option<R> {
        let _claim = self.flags.read(false).ok()?;
        // SAFETY: as in `read`.
        Some(f(unsafe { &*self.h.get() }))
    }

    pub fn len(&self) -> PyResult<usize> {
        self.read(false, |h, _| Ok(h.count))
    }

    pub fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = K::from_py(key)?;
        self.read(false, |h, fl| match h.mapaccess(fl, &k).map_err(K::raise)? {
            Some(v) => Ok(Some(v.to_py(py)?)),
            None => Ok(None),
        })
    }

    pub fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = K::from_py(key)?;
        self.read(false, |h, fl| Ok(h.mapaccess(fl, &k).map_err(K::raise)?.is_some()))
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
        let k = K::from_py(key)?;
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
        let dropped = self.write(|h, fl| Ok(h.shrink(fl)))?;
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
        self.read(false, |h, _| Ok(h.clone_with(|v| v.clone_val(py))))
    }

    pub fn hash0(&self) -> PyResult<u32> {
        self.read(false, |h, _| Ok(h.hash0))
    }

    pub fn hashkey(&self) -> PyResult<[u64; 4]> {
        self.read(false, |h, _| Ok(h.hashkey))
    }

    pub fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.read(false, |h, fl| {
            let d = PyDict::new(py);
            d.set_item("count", h.count)?;
            d.set_item("B", h.b)?;
            d.set_item("flags", fl.go_flags())?;
            d.set_item("noverflow", h.noverflow)?;
            d.set_item("hash0", h.hash0)?;
            d.set_item("nevacuate", h.nevacuate)?;
            d.set_item("growing", h.growing())?;
            let chain = |c: &Vec<BucketView<'_, K, V>>| -> PyResult<Bound<'py, PyList>> {
                let l = PyList::empty(py);
                for bv in c {
                    let b = PyDict::new(py);
                    b.set_item("tophash", PyList::new(py, bv.tophash.iter().map(|&t| t as u32))?)?;
                    let keys = PyList::empty(py);
                    let vals = PyList::empty(py);
                    for e in &bv.entries {
                        match e {
                            Some((k, v)) => {
                                keys.append(k.to_py(py)?)?;
                                vals.append(v.to_py(py)?)?;
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
            match h.snapshot_buckets() {
                Some(chains) => {
                    let l = PyList::empty(py);
                    for c in &chains {
                        l.append(chain(c)?)?;
                    }
                    d.set_item("buckets", l)?;
                }
                None => d.set_item("buckets", py.None())?,
            }
            match h.snapshot_oldbuckets() {
                Some(olds) => {
                    let l = PyList::empty(py);
                    for o in &olds {
                        match o {
                            OldView::Chain(c) => l.append(chain(c)?)?,
                            OldView::Evacuated(top) => {
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
        })
    }

    pub fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.read(false, |h, fl| {
            let s = h.stats();
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
            d.set_item("same_size_grow", fl.has(crate::flags::SAME_SIZE_GROW))?;
            d.set_item("nevacuate", s.nevacuate)?;
            d.set_item("bytes", s.bytes)?;
            Ok(d)
        })
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
            drop(dropped);
        }
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

pub(crate) fn kind_name(py: Python<'_>, ob: &Bound<'_, PyAny>, values: bool) -> PyResult<&'static str> {
    const KEYS: [&str; 9] = ["int64", "int32", "uint64", "uint32", "float64", "float32", "string", "bytes", "object"];
    const VALUES: [&str; 3] = ["int64", "float64", "object"];
    let allowed: &[&str] = if values { &VALUES } else { &KEYS };
    let what = if values { "value" } else { "key" };
    let name: String = if let Ok(t) = ob.cast::<PyType>() {
        if t.is(PyInt::type_object(py)) {
            "int64".into()
        } else if t.is(PyFloat::type_object(py)) {
            "float64".into()
        } else if t.is(PyString::type_object(py)) {
            "string".into()
        } else if t.is(PyBytes::type_object(py)) {
            "bytes".into()
        } else if t.is(pyo3::types::PyAny::type_object(py)) {
            "object".into()
        } else {
            return Err(PyValueError::new_err(format!("unsupported {what} kind {}", ob.repr()?)));
        }
    } else if let Ok(s) = ob.cast::<PyString>() {
        s.to_str()?.to_owned()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} kind must be a str or a type, not {}",
            ob.get_type().name()?
        )));
    };
    allowed.iter().copied().find(|k| *k == name).ok_or_else(|| {
        PyValueError::new_err(format!("unknown {what} kind {name:?}; expected one of {}", allowed.join(", ")))
    })
}

pub(crate) fn random_hashkey() -> [u64; 4] {
    // Go fills hashkey from the OS and makes every word odd.
    let r = FastRand::from_os(None);
    [r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1, r.fastrand64() | 1]
}

/// Go's classic map (`runtime/map.go`, Go 1.19–1.23), bit-exact with the Go
/// runtime given its `hashkey` and random draws. See the module documentation.
#[pyclass(module = "gomap._core", name = "Map", frozen, mapping, weakref, subclass)]
pub struct Map {
    pub(crate) inner: AnyMap,
    key_kind: &'static str,
    value_kind: &'static str,
}

impl Map {
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
    #[pyo3(signature = (key = None, value = None, hint = 0, *, hashkey = None, rand = None))]
    fn py_new(
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        hint: i64,
        hashkey: Option<&Bound<'_, PyAny>>,
        rand: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Map> {
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
        // makemap64: a hint that does not fit an int is treated as 0; beyond
        // what memory could hold Go also falls back to 0 (`mem > maxAlloc`).
        let hint = if hint > (1i64 << 40) { 0 } else { hint as usize };
        let hashkey = match hashkey {
            None => random_hashkey(),
            Some(hk) => {
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
                        return Err(PyTypeError::new_err(format!(
                            "hashkey words must be ints, not {}",
                            w.get_type().name()?
                        )));
                    }
                    *o = w.extract::<u64>().map_err(|_| {
                        PyValueError::new_err(format!(
                            "hashkey word {} is not in [0, 2**64)",
                            w.repr().map(|r| r.to_string()).unwrap_or_default()
                        ))
                    })?;
                }
                out
            }
        };
        let external: Option<Box<dyn ExternalDraws>> = match rand {
            None => None,
            Some(r) if r.is_none() => None,
            Some(r) if r.is_callable() && !r.hasattr("__next__")? => {
                Some(Box::new(PyDraws { source: r.clone().unbind(), callable: true }))
            }
            Some(r) => {
                let it = r.try_iter().map_err(|_| {
                    PyTypeError::new_err("rand must be an iterable or a zero-argument callable of ints")
                })?;
                Some(Box::new(PyDraws { source: it.into_any().unbind(), callable: false }))
            }
        };
        let rand = FastRand::from_os(external);
        let inner =
            construct!(AnyMap, key_kind, value_kind, <K, V> => Shared::new(HMap::<K, V>::makemap(hint, hashkey, rand)))
                .expect("kinds validated above");
        Ok(Map { inner, key_kind, value_kind })
    }

    /// The canonical key kind ("int64", …, "object").
    #[getter]
    fn key_kind(&self) -> &'static str {
        self.key_kind
    }

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

    fn __len__(&self) -> PyResult<usize> {
        dispatch!(AnyMap, &self.inner, m => m.len())
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

    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let found = self.absent_if_wrong_kind(py, dispatch!(AnyMap, &self.inner, m => m.get(py, key)))?;
        Ok(found.unwrap_or_else(|| default.unwrap_or_else(|| py.None())))
    }

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

    fn popitem(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        dispatch!(AnyMap, &self.inner, m => m.popitem(py))?
            .ok_or_else(|| PyKeyError::new_err("popitem(): map is empty"))
    }

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
    fn set_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        dispatch!(AnyMap, &self.inner, m => m.set_many(py, keys, values))
    }

    /// Go's delete for every key; a NumPy bool array: which keys were present.
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        dispatch!(AnyMap, &self.inner, m => m.delete_many(py, keys))
    }

    fn __copy__(&self, py: Python<'_>) -> PyResult<Map> {
        self.copy(py)
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<MapIter> {
        MapIter::new(slf, IterMode::Keys)
    }

    fn keys(slf: &Bound<'_, Self>) -> KeysView {
        KeysView::new(slf)
    }

    fn values(slf: &Bound<'_, Self>) -> ValuesView {
        ValuesView::new(slf)
    }

    fn items(slf: &Bound<'_, Self>) -> ItemsView {
        ItemsView::new(slf)
    }

    /// The map's Go state: header fields and every bucket (see the fidelity spec).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnyMap, &self.inner, m => m.snapshot(py))
    }

    /// Counts and memory: count, B, buckets, overflow_buckets, noverflow,
    /// load_factor, growing, same_size_grow, nevacuate, bytes (Go's layout).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dispatch!(AnyMap, &self.inner, m => m.stats(py))
    }

    fn __richcmp__(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: pyo3::basic::CompareOp) -> PyResult<Py<PyAny>> {
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
        let items = dispatch!(AnyMap, &self.inner, m => m.items(py))?;
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
                if theirs.is(&missing) || !v.bind(py).eq(&theirs)? {
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

    /// Pickles as the kinds, hashkey and hash0 plus the items, set on the new
    /// map after it exists (so a map that contains itself pickles).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let items = dispatch!(AnyMap, &me.inner, m => m.items(py))?;
        let hash0 = dispatch!(AnyMap, &me.inner, m => m.hash0())?;
        let hk = me.hashkey()?;
        let rebuild = py.import("gomap._core")?.getattr("_rebuild")?;
        let args = (me.key_kind, me.value_kind, hk, hash0, items.len()).into_pyobject(py)?;
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

/// Unpickling: an empty map with the same kinds, hashkey and hash0, sized for
/// `hint` entries; pickle then sets the items.
#[pyfunction]
pub fn _rebuild(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    hashkey: &Bound<'_, PyAny>,
    hash0: u32,
    hint: i64,
) -> PyResult<Map> {
    let draws = PyList::new(py, [hash0])?;
    Map::py_new(py, Some(key), Some(value), hint, Some(hashkey), Some(draws.as_any()))
}
