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
use crate::hmap::HIter;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
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
    /// Visits the map the iterator holds and every object in the arrays it
    /// keeps alive that the map itself no longer reaches (an array let go of by
    /// `clear`, a grow or `shrink` can hold this very iterator: a cycle only
    /// this visit shows the GC).
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

struct TypedIter<K, V> {
    /// The map, kept alive; `shared` points into it.
    owner: Py<Map>,
    shared: *const Shared<K, V>,
    it: HIter<K, V>,
    mode: IterMode,
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
    fn start(owner: Py<Map>, shared: &Shared<K, V>, mode: IterMode) -> PyResult<Self> {
        let it = shared.read(true, |h, fl| Ok(h.mapiterinit(fl)))?;
        Ok(TypedIter { owner, shared, it, mode })
    }
}

impl<K: PyKey, V: PyVal> IterState for TypedIter<K, V> {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.it.finished() {
            return Ok(None);
        }
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        // The step may let go of an array (an old one it was walking): keep it
        // alive until after the claim, so no entry is dropped under it.
        let keep: [Option<Arc<_>>; 2] = {
            let mut held = self.it.tables();
            [held.next().cloned(), held.next().cloned()]
        };
        let (it, mode) = (&mut self.it, self.mode);
        let got = shared.read(true, |h, fl| match h.mapiternext(fl, it).map_err(K::raise)? {
            Some((k, v)) => Ok(Some(entry(py, mode, k, v)?)),
            None => Ok(None),
        });
        drop(keep);
        if self.it.finished() {
            dispose(self.it.take_tables());
        }
        Ok(match got? {
            None => None,
            Some((x, None)) => Some(x),
            Some((k, Some(v))) => Some(PyTuple::new(py, [k, v])?.into_any().unbind()),
        })
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        // SAFETY: `owner` keeps the map, and so `*shared`, alive.
        let shared = unsafe { &*self.shared };
        let mut result = Ok(());
        // A busy map is skipped (never block in the GC): its objects then look
        // referenced from outside, which at worst delays their collection.
        shared.try_read(|h| {
            for t in self.it.tables() {
                // An array the map still reaches is the map's to visit; one held
                // by several iterators is visited by none (each would count its
                // references again).
                if h.reaches(t) || Arc::strong_count(t) != 1 {
                    continue;
                }
                // SAFETY: nobody writes an array the map no longer reaches, and
                // the map's read claim is held.
                unsafe {
                    t.for_each_owned(&mut |k, v| {
                        for o in [k.and_then(PyKey::object), v.and_then(PyVal::object)].into_iter().flatten() {
                            if result.is_ok() {
                                result = visit.call(o);
                            }
                        }
                    })
                };
            }
        });
        result
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
        let state: Box<dyn IterState> = dispatch!(&map.get().inner, m => Box::new(TypedIter::start(owner, m, mode)?));
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
