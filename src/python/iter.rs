//! Iterators over a `Map`: Go's `hiter`, driven one `__next__` at a time.
//!
//! Creating the iterator is `mapiterinit` (the spec's draw 4 and the iterator
//! flags happen there, and the iterator keeps the bucket array it started on);
//! every `__next__`, the first included, is one `mapiternext`. Go's `for range`
//! makes its first `mapiternext` inside `mapiterinit`; here writes between
//! `iter()` and the first `next()` are handled like writes between any two
//! steps, which Go's iterator supports, so `it = iter(m); del m[k]; next(it)`
//! never produces `k`.

use super::anymap::{dispatch, AnyMap};
use super::convert::{PyKey, PyVal};
use super::map::{Map, Shared};
use super::ConcurrentMapError;
use crate::hmap::HIter;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;
use std::sync::{Mutex, TryLockError};

#[derive(Clone, Copy)]
pub enum IterMode {
    Keys,
    Values,
    Items,
}

trait IterState: Send {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>>;
    /// The map the iterator holds, for the GC.
    fn owner(&self) -> &Py<Map>;
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

fn entry<K: PyKey, V: PyVal>(py: Python<'_>, mode: IterMode, k: &K, v: &V) -> PyResult<Py<PyAny>> {
    Ok(match mode {
        IterMode::Keys => k.to_py(py)?,
        IterMode::Values => v.to_py(py)?,
        IterMode::Items => PyTuple::new(py, [k.to_py(py)?, v.to_py(py)?])?.into_any().unbind(),
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
        let (it, mode) = (&mut self.it, self.mode);
        shared.read(true, |h, fl| match h.mapiternext(fl, it).map_err(K::raise)? {
            Some((k, v)) => Ok(Some(entry(py, mode, k, v)?)),
            None => Ok(None),
        })
    }

    fn owner(&self) -> &Py<Map> {
        &self.owner
    }
}

/// An iterator over a `gomap.Map` in Go's order.
#[pyclass(module = "gomap._core", name = "MapIterator", frozen)]
pub struct MapIter {
    state: Mutex<Box<dyn IterState>>,
}

impl MapIter {
    pub fn new(map: &Bound<'_, Map>, mode: IterMode) -> PyResult<MapIter> {
        let owner = map.clone().unbind();
        let state: Box<dyn IterState> =
            dispatch!(AnyMap, &map.get().inner, m => Box::new(TypedIter::start(owner, m, mode)?));
        Ok(MapIter { state: Mutex::new(state) })
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
        state.next(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in the GC: a busy iterator is skipped.
        if let Ok(state) = self.state.try_lock() {
            visit.call(state.owner())?;
        }
        Ok(())
    }
}
