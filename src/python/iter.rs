//! Iterators over a `Map`: Go's `hiter`, driven one `__next__` at a time.
//!
//! Creating the iterator is `mapiterinit`: it draws the start, sets the
//! iterator flags and fetches the first entry, as a Go `for range` loop does
//! before its first body. The first `__next__` returns that entry; each later
//! one calls `mapiternext` first — so writes made between two `__next__` calls
//! (the loop body) are seen exactly as Go's loop body's writes are.

use super::anymap::dispatch;
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
    /// The Python objects the iterator holds, for the GC.
    fn refs(&self) -> [Option<&Py<PyAny>>; 2];
}

struct TypedIter<K, V> {
    /// The map, kept alive; `shared` points into it.
    owner: Py<Map>,
    shared: *const Shared<K, V>,
    it: HIter<K, V>,
    /// The entry `mapiterinit` fetched, returned by the first `__next__`.
    pending: Option<Py<PyAny>>,
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
    fn start(owner: Py<Map>, shared: &Shared<K, V>, mode: IterMode, py: Python<'_>) -> PyResult<Self> {
        let (it, pending) = shared.read(true, |h, fl| {
            let mut it = h.mapiterinit(fl);
            let first = match h.mapiternext(fl, &mut it).map_err(K::raise)? {
                Some((k, v)) => Some(entry(py, mode, k, v)?),
                None => None,
            };
            Ok((it, first))
        })?;
        Ok(TypedIter { owner, shared, it, pending, mode })
    }
}

impl<K: PyKey, V: PyVal> IterState for TypedIter<K, V> {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
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

    fn refs(&self) -> [Option<&Py<PyAny>>; 2] {
        [Some(self.owner.as_any()), self.pending.as_ref()]
    }
}

/// An iterator over a `gomap.Map` in Go's order.
#[pyclass(module = "gomap._core", name = "MapIterator", frozen)]
pub struct MapIter {
    state: Mutex<Box<dyn IterState>>,
}

impl MapIter {
    pub fn new(map: &Bound<'_, Map>, mode: IterMode) -> PyResult<MapIter> {
        let py = map.py();
        let owner = map.clone().unbind();
        let state: Box<dyn IterState> = dispatch!(&map.get().inner, m => Box::new(TypedIter::start(owner, m, mode, py)?));
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
            for r in state.refs().into_iter().flatten() {
                visit.call(r)?;
            }
        }
        Ok(())
    }
}
