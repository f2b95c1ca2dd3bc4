//! Iterators over a `Map`: Go's `hiter`, driven one `__next__` at a time.
//!
//! Creating the iterator is `mapiterinit` (the spec's draw 4 and the iterator
//! flags happen there, and the iterator keeps the bucket array it started on);
//! every `__next__`, the first included, is one `mapiternext`. Go's `for range`
//! makes its first `mapiternext` inside `mapiterinit`; here writes between
//! `iter()` and the first `next()` are handled like writes between any two
//! steps, which Go's iterator supports, so `it = iter(m); del m[k]; next(it)`
//! never produces `k`.

use super::anymap::dispatch;
use super::convert::{PyKey, PyVal};
use super::map::{dispose, Map, Shared};
use super::ConcurrentMapError;
use crate::hmap::{HIter, Table};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyWeakrefMethods, PyWeakrefReference};
use pyo3::PyTraverseError;
use std::sync::{Arc, Mutex, TryLockError};

#[derive(Clone, Copy)]
pub enum IterMode {
    Keys,
    Values,
    Items,
}

trait IterState: Send {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>>;
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
        let mut me = TypedIter { owner, shared, it, mode, anchors: Vec::new() };
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
        let same = {
            let mut tables = self.it.tables().map(|t| Arc::as_ptr(t) as usize);
            let (a, b) = (tables.next(), tables.next());
            let have: Vec<usize> = self.anchors.iter().map(|(k, _)| *k).collect();
            have.len() == a.is_some() as usize + b.is_some() as usize
                && a.is_none_or(|a| have.contains(&a))
                && b.is_none_or(|b| have.contains(&b))
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
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.it.finished() {
            return Ok(None);
        }
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        // The step may let go of the old array it was walking (the second one
        // `tables()` lists; the first, its own array, stays): keep it alive until
        // after the claim, so no entry is dropped under it.
        let keep: Option<Arc<_>> = self.it.tables().nth(1).cloned();
        let (it, mode) = (&mut self.it, self.mode);
        let got = shared.read(true, |h, fl| match h.mapiternext(fl, it).map_err(K::raise)? {
            Some((k, v)) => Ok(Some(entry(py, mode, k, v)?)),
            None => Ok(None),
        });
        drop(keep);
        if self.it.finished() {
            dispose(self.it.take_tables());
        }
        self.sync_anchors(py)?;
        Ok(match got? {
            None => None,
            Some((x, None)) => Some(x),
            Some((k, Some(v))) => Some(PyTuple::new(py, [k, v])?.into_any().unbind()),
        })
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        for (_, a) in &self.anchors {
            visit.call(a)?;
        }
        Ok(())
    }
}

/// An iterator over a `gomap.Map` in Go's order.
#[pyclass(module = "gomap._core", name = "MapIterator", frozen)]
pub struct MapIter {
    /// `None` once the GC has cleared the iterator.
    state: Mutex<Option<Box<dyn IterState>>>,
}

impl Drop for MapIter {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        dispose(state);
    }
}

impl MapIter {
    pub fn new(map: &Bound<'_, Map>, mode: IterMode) -> PyResult<MapIter> {
        let owner = map.clone().unbind();
        let state: Box<dyn IterState> =
            dispatch!(&map.get().inner, m => Box::new(TypedIter::start(map.py(), owner, m, mode)?));
        Ok(MapIter { state: Mutex::new(Some(state)) })
    }
}

#[pymethods]
impl MapIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut state = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(ConcurrentMapError::new_err("concurrent map iteration and map write"));
            }
        };
        match state.as_mut() {
            Some(s) => s.next(py),
            None => Ok(None),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in the GC: a busy iterator is skipped.
        if let Ok(state) = self.state.try_lock() {
            if let Some(s) = state.as_ref() {
                s.traverse(&visit)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        // Taken under the lock, dropped after it.
        let state = self.state.try_lock().ok().and_then(|mut s| s.take());
        dispose(state);
    }
}
