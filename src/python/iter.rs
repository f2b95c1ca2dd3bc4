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
//! Python code a step ran — is `ConcurrentMapError`), and a step of a typed map
//! reads it with `Shared::read_attached`, which on GIL builds counts no reader.
//! The entry's objects are made during the read (ints, floats, strs and bytes
//! are not GC-tracked; stored objects are only increfed); the `items()` tuple
//! is made after it, and reused when nobody else holds the previous one, as
//! dict's iterator does.

use super::anymap::{dispatch, AnyMap};
use super::convert::{PyKey, PyVal};
use super::map::{dispose, Map, Shared};
#[cfg(not(Py_GIL_DISABLED))]
use super::refill_pair;
use super::ConcurrentMapError;
use super::Stale;
use crate::flags::FlagWord;
use crate::hmap::{HIter, HMap, Table};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyWeakrefMethods, PyWeakrefReference};
use pyo3::PyTraverseError;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

trait IterState: Send {
    fn next(&mut self, py: Python<'_>) -> PyResult<Step>;
    /// Visits the map the iterator holds and the anchors of the arrays it keeps
    /// alive (see [`ArrayAnchor`]).
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

struct TypedIter<K, V> {
    /// The map, kept alive; `shared` points into it.
    owner: Py<Map>,
    shared: *const Shared<K, V>,
    it: HIter<K, V>,
    mode: IterMode,
    /// The anchor of each array `it` holds, by array address (object kinds only).
    anchors: Vec<(usize, Py<ArrayAnchor>)>,
    /// The last `items()` tuple, reused when only this iterator holds it.
    pair: Option<Py<PyTuple>>,
}

// SAFETY: `shared` points into the frozen `Map` that `owner` keeps alive; the
// `Shared` it points to is Sync, and `it` is Send.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for TypedIter<K, V> {}

/// The entry's objects, taken under the read claim: references or untracked
/// objects (int, float, str, bytes) only; the items tuple is built after.
fn entry<K: PyKey, V: PyVal>(py: Python<'_>, mode: IterMode, k: &K, v: &V) -> PyResult<(Py<PyAny>, Option<Py<PyAny>>)> {
    Ok(match mode {
        IterMode::Keys => (k.to_py(py)?, None),
        IterMode::Values => (v.to_py(py)?, None),
        IterMode::Items => (k.to_py(py)?, Some(v.to_py(py)?)),
    })
}

impl<K: PyKey, V: PyVal> TypedIter<K, V> {
    fn start(py: Python<'_>, owner: Py<Map>, shared: &Shared<K, V>, mode: IterMode) -> PyResult<Self> {
        let it = shared.read(true, |h, fl| Ok(h.mapiterinit(fl)))?;
        let mut me = TypedIter { owner, shared, it, mode, anchors: Vec::new(), pair: None };
        me.sync_anchors(py)?;
        Ok(me)
    }

    /// Holds the anchor of every array the iterator holds (and only those). An
    /// array is anchored as soon as the iterator takes it, while the map still
    /// reaches it, so it is anchored before anything can detach it.
    fn sync_anchors(&mut self, py: Python<'_>) -> PyResult<()> {
        if !(K::HOLDS_OBJECTS || V::HOLDS_OBJECTS) {
            return Ok(());
        }
        // Checked on every step: no allocation.
        let same = {
            let (mut held, mut anchored) = (0, true);
            for t in self.it.tables() {
                held += 1;
                let key = Arc::as_ptr(t) as usize;
                anchored &= self.anchors.iter().any(|(k, _)| *k == key);
            }
            anchored && held == self.anchors.len()
        };
        if same {
            return Ok(());
        }
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        let mut next = Vec::with_capacity(2);
        for t in self.it.tables() {
            let key = Arc::as_ptr(t) as usize;
            match self.anchors.iter().position(|(k, _)| *k == key) {
                Some(i) => next.push(self.anchors.swap_remove(i)),
                None => next.push((key, anchor_for(py, &self.owner, shared, t)?)),
            }
        }
        dispose(std::mem::replace(&mut self.anchors, next));
        Ok(())
    }

    /// The `(k, v)` tuple: the previous one refilled when this iterator holds
    /// its only reference (as dict's items iterator does), else a new one.
    fn pair(&mut self, py: Python<'_>, k: Py<PyAny>, v: Py<PyAny>) -> PyResult<Step> {
        #[cfg(not(Py_GIL_DISABLED))]
        let (k, v) = match &self.pair {
            // SAFETY: attached (`py`) on a GIL build; `t` is our 2-tuple. The old
            // items are handed to the caller, released once the step is over.
            Some(t) => match unsafe { refill_pair(t, k, v) } {
                Ok(stale) => return Ok((Some(t.clone_ref(py).into_any()), Some(stale))),
                Err(back) => back,
            },
            None => (k, v),
        };
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

/// The anchor of array `t` of the map: the registered one if it is alive, else
/// a new one, registered.
fn anchor_for<K: PyKey, V: PyVal>(
    py: Python<'_>,
    owner: &Py<Map>,
    shared: &Shared<K, V>,
    t: &Arc<Table<K, V>>,
) -> PyResult<Py<ArrayAnchor>> {
    let key = Arc::as_ptr(t) as usize;
    let lookup = |reg: &[(usize, Py<PyWeakrefReference>)]| -> PyResult<Option<Py<ArrayAnchor>>> {
        for (k, w) in reg {
            if *k == key {
                if let Some(a) = w.bind(py).upgrade_as::<ArrayAnchor>()? {
                    return Ok(Some(a.unbind()));
                }
            }
        }
        Ok(None)
    };
    let registry = || shared.anchors.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(a) = lookup(&registry())? {
        return Ok(a);
    }
    // Allocated outside the registry's lock: allocating can run the GC, whose
    // callbacks may create iterators of this map.
    let state: Box<dyn AnchorState> =
        Box::new(TypedAnchor { owner: owner.clone_ref(py), shared: shared as *const _, table: t.clone() });
    let fresh = Bound::new(py, ArrayAnchor { state: Mutex::new(Some(state)) })?;
    let weak = PyWeakrefReference::new(fresh.as_any())?.unbind();
    let mut reg = registry();
    if let Some(a) = lookup(&reg)? {
        drop(reg);
        return Ok(a); // `fresh` and `weak` are dropped after the lock
    }
    // Entries whose anchor died are dropped (weakref objects: no Python code runs).
    reg.retain(|(_, w)| w.bind(py).upgrade().is_some());
    reg.push((key, weak));
    Ok(fresh.unbind())
}

trait AnchorState: Send {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

struct TypedAnchor<K, V> {
    owner: Py<Map>,
    shared: *const Shared<K, V>,
    table: Arc<Table<K, V>>,
}

// SAFETY: as for TypedIter: `shared` points into the map `owner` keeps alive.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for TypedAnchor<K, V> {}

impl<K: PyKey, V: PyVal> AnchorState for TypedAnchor<K, V> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        let mut result = Ok(());
        // A busy map is skipped (never block in the GC): the array's objects then
        // look referenced from outside, which at worst delays their collection.
        // (Maps holding objects are only written with the GIL held, so the claim
        // cannot change between the GC's passes.)
        shared.try_read(|h| {
            if h.reaches(&self.table) {
                return; // the map's own traverse visits it
            }
            // SAFETY: nobody writes an array the map no longer reaches, and the
            // map's read claim is held.
            unsafe {
                self.table.for_each_owned(&mut |k, v| {
                    for o in [k.and_then(PyKey::object), v.and_then(PyVal::object)].into_iter().flatten() {
                        if result.is_ok() {
                            result = visit.call(o);
                        }
                    }
                })
            };
        });
        result
    }
}

/// The garbage collector's view of one bucket array that iterators keep alive.
///
/// An iterator keeps the array it walks (and an old array it is reading) alive
/// after the map lets go of it (`clear`, the end of a grow, `shrink`). If that
/// array holds the iterator (as a value, or as a key retained for it), only the
/// array's holders can show the GC the cycle; but several iterators may share
/// the array, and each must not count its references again. So every array an
/// iterator holds gets one anchor, shared by all the iterators holding it (each
/// holds a reference to the anchor and visits it): the anchor visits the
/// array's objects once the map no longer reaches the array.
#[pyclass(module = "gomap._core", name = "_ArrayAnchor", frozen, weakref)]
pub struct ArrayAnchor {
    state: Mutex<Option<Box<dyn AnchorState>>>,
}

impl Drop for ArrayAnchor {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        dispose(state);
    }
}

#[pymethods]
impl ArrayAnchor {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(state) = self.state.try_lock() {
            if let Some(s) = state.as_ref() {
                s.traverse(&visit)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let state = self.state.try_lock().ok().and_then(|mut s| s.take());
        dispose(state);
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
        let step = |h: &HMap<K, V>, fl: &FlagWord| -> PyResult<Option<(Py<PyAny>, Option<Py<PyAny>>)>> {
            match h.mapiternext(fl, it).map_err(K::raise)? {
                Some((k, v)) => Ok(Some(entry(py, mode, k, v)?)),
                None => Ok(None),
            }
        };
        // A step of a typed map runs no Python code (it never hashes a NaN);
        // object keys compare with Python's `==` when the map grew under it.
        let got = if K::PYTHON_EQ { shared.read(true, step) } else { shared.read_attached(py, true, step) };
        // An array the step stopped holding (an old one it was walking) is
        // handed over by the step and dropped here, after the read, so no entry
        // is dropped under it.
        if let Some(t) = self.it.take_released() {
            dispose(t);
        }
        if self.it.finished() {
            dispose(self.it.take_tables());
        }
        self.sync_anchors(py)?;
        match got? {
            None => Ok((None, None)),
            Some((x, None)) => Ok((Some(x), None)),
            Some((k, Some(v))) => self.pair(py, k, v),
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        for (_, a) in &self.anchors {
            visit.call(a)?;
        }
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

// SAFETY: `state` is only touched by the holder of `busy` (see `Busy`), by
// `__traverse__`, which reads it while nobody holds `busy` and the GC runs
// with every other thread stopped or waiting for the GIL, and by `Drop`.
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

impl Drop for MapIter {
    fn drop(&mut self) {
        dispose(self.state.get_mut().take());
    }
}

impl MapIter {
    pub fn new(map: &Bound<'_, Map>, mode: IterMode) -> PyResult<MapIter> {
        let owner = map.clone().unbind();
        let state: Box<dyn IterState> =
            dispatch!(AnyMap, &map.get().inner, m => Box::new(TypedIter::start(map.py(), owner, m, mode)?));
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
        dispose(state); // after `busy`: dropping the state may run Python code
    }
}
