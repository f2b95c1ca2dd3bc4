//! Iterators over a `Map`: Go's `hiter`, driven one `__next__` at a time.
//!
//! Creating the iterator is `mapiterinit` (the spec's draw 4 and the iterator
//! flags happen there, and the iterator keeps the bucket array it started on);
//! every `__next__`, the first included, is one `mapiternext`. Go's `for range`
//! makes its first `mapiternext` inside `mapiterinit`; here writes between
//! `iter()` and the first `next()` are handled like writes between any two
//! steps, which Go's iterator supports, so `it = iter(m); del m[k]; next(it)`
//! never produces `k`.
//!
//! A step costs no lock: the iterator's own state is guarded by a `busy` flag
//! (a second `next()` while one is running — from another thread, or from
//! Python code a step ran — is `ConcurrentMapError`), and the step reads the
//! map with `Shared::read_attached`, which on GIL builds counts no reader. The
//! entry's objects are made during the read (ints, floats, strs and bytes are
//! not GC-tracked; stored objects are only increfed); the `items()` tuple is
//! made after it, and reused when nobody else holds the previous one, as dict's
//! iterator does.

use super::anymap::{dispatch, AnyMap};
use super::convert::{PyKey, PyVal};
use super::map::{Map, Shared};
use super::ConcurrentMapError;
use crate::flags::FlagWord;
use crate::hmap::{HIter, HMap};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy)]
pub enum IterMode {
    Keys,
    Values,
    Items,
}

/// What a step hands back, and the objects it let go of, which the caller
/// releases after the iterator is no longer busy (releasing may run `__del__`).
type Step = (Option<Py<PyAny>>, Released);
type Released = Option<Stale>;

/// The two items a refilled tuple held: owned references, released on drop
/// with plain `Py_DECREF`s (we are attached; no PyO3 thread-state lookup).
struct Stale([*mut pyo3::ffi::PyObject; 2]);

impl Drop for Stale {
    fn drop(&mut self) {
        // SAFETY: two owned references, released once; only built (and so only
        // dropped) in `__next__`, attached.
        unsafe {
            pyo3::ffi::Py_DECREF(self.0[0]);
            pyo3::ffi::Py_DECREF(self.0[1]);
        }
    }
}

trait IterState: Send {
    fn next(&mut self, py: Python<'_>) -> PyResult<Step>;
    /// Visits what the iterator holds, for the GC.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

struct TypedIter<K, V> {
    /// The map, kept alive; `shared` points into it.
    owner: Py<Map>,
    shared: *const Shared<K, V>,
    it: HIter<K, V>,
    mode: IterMode,
    /// The last `items()` tuple, reused when only this iterator holds it.
    pair: Option<Py<PyTuple>>,
}

// SAFETY: `shared` points into the frozen `Map` that `owner` keeps alive; the
// `Shared` it points to is Sync, and `it` is Send.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for TypedIter<K, V> {}

/// The entry's objects, made during the read: ints, floats, strs and bytes
/// (not GC-tracked) or increfs of stored objects; the tuple comes after.
type Entry = (PyResult<Py<PyAny>>, Option<PyResult<Py<PyAny>>>);

fn entry<K: PyKey, V: PyVal>(py: Python<'_>, mode: IterMode, k: &K, v: &V) -> Entry {
    match mode {
        IterMode::Keys => (k.to_py(py), None),
        IterMode::Values => (v.to_py(py), None),
        IterMode::Items => (k.to_py(py), Some(v.to_py(py))),
    }
}

impl<K: PyKey, V: PyVal> TypedIter<K, V> {
    fn start(owner: Py<Map>, shared: &Shared<K, V>, mode: IterMode) -> PyResult<Self> {
        // mapiterinit draws, and a draw may call Python code: a counted claim.
        let it = shared.read(true, |h, fl| Ok(h.mapiterinit(fl)))?;
        Ok(TypedIter { owner, shared, it, mode, pair: None })
    }

    /// The `(k, v)` tuple: the previous one refilled when this iterator holds
    /// its only reference (as dict's items iterator does), else a new one.
    fn pair(&mut self, py: Python<'_>, k: Py<PyAny>, v: Py<PyAny>) -> PyResult<Step> {
        #[cfg(not(Py_GIL_DISABLED))]
        if let Some(t) = &self.pair {
            let p = t.as_ptr();
            // SAFETY: attached. A refcount of 1 is our own reference: nobody else
            // can see the tuple, so refilling it is unobservable (with the GIL
            // held, no other thread can take a reference meanwhile). SET_ITEM
            // steals the new references; the old ones are handed to the caller.
            // The GC may have untracked the tuple (it untracks tuples of atomic
            // objects); it is tracked again, as dict does, since it may now
            // hold containers.
            unsafe {
                if pyo3::ffi::Py_REFCNT(p) == 1 {
                    let old_k = pyo3::ffi::PyTuple_GET_ITEM(p, 0);
                    let old_v = pyo3::ffi::PyTuple_GET_ITEM(p, 1);
                    pyo3::ffi::PyTuple_SET_ITEM(p, 0, k.into_ptr());
                    pyo3::ffi::PyTuple_SET_ITEM(p, 1, v.into_ptr());
                    if pyo3::ffi::PyObject_GC_IsTracked(p) == 0 {
                        pyo3::ffi::PyObject_GC_Track(p.cast());
                    }
                    return Ok((Some(t.clone_ref(py).into_any()), Some(Stale([old_k, old_v]))));
                }
            }
        }
        let t = PyTuple::new(py, [k, v])?.unbind();
        let out = t.clone_ref(py).into_any();
        #[cfg(not(Py_GIL_DISABLED))]
        {
            // The previous tuple is shared (refcount > 1): letting go of it only
            // decrements its count.
            self.pair = Some(t);
        }
        Ok((Some(out), None))
    }
}

impl<K: PyKey, V: PyVal> IterState for TypedIter<K, V> {
    fn next(&mut self, py: Python<'_>) -> PyResult<Step> {
        if self.it.finished() {
            return Ok((None, None));
        }
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        let (it, mode) = (&mut self.it, self.mode);
        let step = |h: &HMap<K, V>, fl: &FlagWord| -> PyResult<Option<Entry>> {
            Ok(h.mapiternext(fl, it).map_err(K::raise)?.map(|(k, v)| entry(py, mode, k, v)))
        };
        // A step of a typed map runs no Python code (it never hashes a NaN);
        // object keys compare with Python's `==` when the map grew under it.
        let got = if K::PYTHON_EQ { shared.read(true, step) } else { shared.read_attached(py, true, step) };
        // An old array the step stopped holding is dropped after the read.
        drop(self.it.take_released());
        let Some((k, v)) = got? else { return Ok((None, None)) };
        match v {
            None => Ok((Some(k?), None)),
            Some(v) => {
                let (k, v) = (k?, v?);
                self.pair(py, k, v)
            }
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        if let Some(t) = &self.pair {
            visit.call(t)?;
        }
        Ok(())
    }
}

/// An iterator over a `gomap.Map` in Go's order.
#[pyclass(module = "gomap._core", name = "MapIterator", frozen)]
pub struct MapIter {
    /// Set while a step (or the GC's clear) uses `state`.
    busy: AtomicBool,
    /// `None` once the GC has cleared the iterator.
    state: UnsafeCell<Option<Box<dyn IterState>>>,
}

// SAFETY: `state` is only touched by the holder of `busy` (see `Busy`), or by
// `__traverse__`, which reads it while nobody holds `busy` and the GC runs
// with every other thread stopped or waiting for the GIL.
unsafe impl Sync for MapIter {}

/// Holding `MapIter::busy`; released on drop (also on a panic).
struct Busy<'a>(&'a AtomicBool);

impl<'a> Busy<'a> {
    #[inline]
    fn enter(flag: &'a AtomicBool) -> Option<Busy<'a>> {
        // With the GIL held no other thread runs between the load and the store,
        // so the pair is exact without a locked instruction.
        #[cfg(not(Py_GIL_DISABLED))]
        {
            if flag.load(Ordering::Relaxed) {
                return None;
            }
            flag.store(true, Ordering::Relaxed);
        }
        #[cfg(Py_GIL_DISABLED)]
        if flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return None;
        }
        Some(Busy(flag))
    }
}

impl Drop for Busy<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl MapIter {
    pub fn new(map: &Bound<'_, Map>, mode: IterMode) -> PyResult<MapIter> {
        let owner = map.clone().unbind();
        let state: Box<dyn IterState> =
            dispatch!(AnyMap, &map.get().inner, m => Box::new(TypedIter::start(owner, m, mode)?));
        Ok(MapIter { busy: AtomicBool::new(false), state: UnsafeCell::new(Some(state)) })
    }
}

#[pymethods]
impl MapIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(busy) = Busy::enter(&self.busy) else {
            return Err(ConcurrentMapError::new_err("concurrent map iteration and map write"));
        };
        // SAFETY: we hold `busy`, so nobody else touches `state`.
        let state = unsafe { &mut *self.state.get() };
        let (out, released) = match state.as_mut() {
            Some(s) => s.next(py)?,
            None => (None, None),
        };
        drop(busy);
        drop(released); // the previous tuple's items: may run __del__
        Ok(out)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in the GC: a busy iterator is skipped (its objects then
        // look referenced from outside, which at worst delays a collection).
        if self.busy.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: nobody holds `busy`, and the GC runs while no other thread
        // runs Python code (see the Sync impl).
        if let Some(s) = unsafe { &*self.state.get() } {
            s.traverse(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let Some(busy) = Busy::enter(&self.busy) else { return };
        // SAFETY: we hold `busy`.
        let state = unsafe { (*self.state.get()).take() };
        drop(busy);
        drop(state); // after `busy`: dropping the state may run Python code
    }
}
