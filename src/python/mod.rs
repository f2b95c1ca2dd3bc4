//! The Python module `gomap._core`.

pub(crate) mod anymap;
pub mod batch;
pub mod convert;
pub mod iter;
pub mod map;
pub mod sharded;
pub mod syncmap;
pub mod views;

use pyo3::prelude::*;
use std::cell::RefCell;
use std::collections::HashSet;

pyo3::create_exception!(
    gomap,
    ConcurrentMapError,
    pyo3::exceptions::PyRuntimeError,
    "A map was written while another write, a read or an iteration was in progress (Go's fatal \"concurrent map writes\" and friends). The map is left as it was."
);

thread_local! {
    static REPR_ACTIVE: RefCell<HashSet<usize>> = RefCell::new(HashSet::new());
}

/// Go's comma-ok result as Python: `(value, True)`, or `(None, False)` when
/// there is no value (`v, ok := m.Load(k)`, `Swap`'s `previous, loaded`).
pub(crate) fn value_ok(py: Python<'_>, v: Option<Py<PyAny>>) -> (Py<PyAny>, bool) {
    match v {
        Some(v) => (v, true),
        None => (py.None(), false),
    }
}

/// The two items a refilled tuple held ([`refill_pair`]): owned references,
/// released on drop with plain `Py_DECREF`s. The holder drops them attached,
/// once it may run Python code (a `__del__`).
pub(crate) struct Stale([*mut pyo3::ffi::PyObject; 2]);

impl Drop for Stale {
    fn drop(&mut self) {
        // SAFETY: two owned references, released once; a `Stale` holds raw
        // pointers, so it is not Send and is dropped on the attached thread
        // that `refill_pair` made it on.
        unsafe {
            pyo3::ffi::Py_DECREF(self.0[0]);
            pyo3::ffi::Py_DECREF(self.0[1]);
        }
    }
}

/// Refills the 2-tuple `t` with `a` and `b` when the caller's reference is its
/// only one, as dict's items iterator refills its result, and returns the old
/// items; hands `a` and `b` back when anyone else holds the tuple. Refilling an
/// unshared tuple is unobservable. The GC may have untracked it (it untracks
/// tuples of atomic objects); it is tracked again, as dict does, since it may
/// now hold a container.
///
/// # Safety
/// Attached on a GIL build, so that no thread can take a reference between the
/// refcount check and the refill; `t` is a 2-tuple.
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) unsafe fn refill_pair(
    t: &Py<pyo3::types::PyTuple>,
    a: Py<PyAny>,
    b: Py<PyAny>,
) -> Result<Stale, (Py<PyAny>, Py<PyAny>)> {
    use pyo3::ffi;
    let p = t.as_ptr();
    // SAFETY: per the contract: `p` is a live 2-tuple and nobody else runs
    // Python code. A refcount of 1 is the caller's own reference. SET_ITEM
    // steals the new references; the old ones go into the `Stale`.
    unsafe {
        if ffi::Py_REFCNT(p) != 1 {
            return Err((a, b));
        }
        let old = [ffi::PyTuple_GET_ITEM(p, 0), ffi::PyTuple_GET_ITEM(p, 1)];
        ffi::PyTuple_SET_ITEM(p, 0, a.into_ptr());
        ffi::PyTuple_SET_ITEM(p, 1, b.into_ptr());
        if ffi::PyObject_GC_IsTracked(p) == 0 {
            ffi::PyObject_GC_Track(p.cast());
        }
        Ok(Stale(old))
    }
}

/// A `(value, ok)` result tuple refilled in place when nobody else holds it,
/// as dict's items iterator refills its tuple: `v, ok = m.load(k)` in a loop
/// then makes no tuple (allocating, tracking and freeing one is ~160 of the
/// ~2,100 instructions of a `SyncMap.load` loop step). The tuple keeps the last result's
/// value alive until the next call, as dict's iterator does; the owner's
/// `__traverse__`/`__clear__` pass it on to the GC.
///
/// Free-threaded builds keep nothing and make a new tuple every time: with no
/// GIL, another thread could take a reference between the refcount check and
/// the refill.
pub(crate) struct ResultTuple {
    /// The last tuple handed out.
    #[cfg(not(Py_GIL_DISABLED))]
    last: std::cell::UnsafeCell<Option<Py<pyo3::types::PyTuple>>>,
}

// SAFETY: on GIL builds `last` is only touched attached — holding the GIL, so
// by one thread at a time — and no reference into it lives across Python code.
#[cfg(not(Py_GIL_DISABLED))]
unsafe impl Sync for ResultTuple {}

impl ResultTuple {
    pub(crate) fn new() -> Self {
        ResultTuple {
            #[cfg(not(Py_GIL_DISABLED))]
            last: std::cell::UnsafeCell::new(None),
        }
    }

    /// `(a, b)` as a tuple: the last one refilled if only `self` holds it.
    pub(crate) fn make<'py>(
        &self,
        py: Python<'py>,
        a: Py<PyAny>,
        b: bool,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let flag = pyo3::types::PyBool::new(py, b).to_owned().into_any().unbind();
        #[cfg(not(Py_GIL_DISABLED))]
        {
            // SAFETY: attached on a GIL build (see `Sync`), and `last` holds a
            // 2-tuple. The borrow of `last` ends with this block: the caller's
            // reference is taken before the old items are released, since their
            // release may run Python code (a `__del__`) that comes back here,
            // sees a refcount of 2 and makes a new tuple.
            let refilled = unsafe {
                match (*self.last.get()).as_ref() {
                    Some(t) => refill_pair(t, a, flag).map(|stale| (t.bind(py).clone(), stale)),
                    None => Err((a, flag)),
                }
            };
            let (a, flag) = match refilled {
                Ok((out, stale)) => {
                    drop(stale);
                    return Ok(out);
                }
                Err(back) => back,
            };
            let t = pyo3::types::PyTuple::new(py, [a, flag])?;
            // SAFETY: attached on a GIL build; nothing runs between taking the
            // reference and letting go of it. The old tuple is dropped after:
            // its release may run Python code.
            let old = unsafe { (*self.last.get()).replace(t.clone().unbind()) };
            drop(old);
            Ok(t)
        }
        #[cfg(Py_GIL_DISABLED)]
        pyo3::types::PyTuple::new(py, [a, flag])
    }

    /// For the owner's `__traverse__`.
    pub(crate) fn traverse(&self, visit: &pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // SAFETY: the GC traverses attached, and nothing writes `last` meanwhile.
        #[cfg(not(Py_GIL_DISABLED))]
        visit.call(unsafe { &*self.last.get() })?;
        let _ = visit;
        Ok(())
    }

    /// For the owner's `__clear__`.
    pub(crate) fn clear(&self) {
        // SAFETY: attached (the GC clears attached) on a GIL build; the tuple
        // is taken out before it is released.
        #[cfg(not(Py_GIL_DISABLED))]
        drop(unsafe { (*self.last.get()).take() });
    }
}

/// Guards `repr` against a map that contains itself (as `Py_ReprEnter`).
pub(crate) fn repr_enter(id: usize) -> bool {
    REPR_ACTIVE.with(|s| s.borrow_mut().insert(id))
}

pub(crate) fn repr_leave(id: usize) {
    REPR_ACTIVE.with(|s| s.borrow_mut().remove(&id));
}

/// Facts about this build: the tophash group implementation compiled in.
#[pyfunction]
fn build_info() -> (&'static str, &'static str) {
    (crate::group::GROUP_IMPL, env!("CARGO_PKG_VERSION"))
}

/// gomap's compiled core: Go's classic runtime map (`runtime/map.go` of Go
/// 1.19-1.23) for Python.
///
/// `Map(key="object", value="object", hint=0, *, items=None, hashkey=None, rand=None)`
/// is Go's `make(map[K]V, hint)`. Key kinds: "int64" "int32" "uint64" "uint32"
/// "float64" "float32" "string" "bytes" "object"; value kinds: "int64"
/// "float64" "object". The aliases "int" "float" "str" "bytes" "object" and the
/// Python types int, float, str, bytes, object name "int64" "float64" "string"
/// "bytes" "object". `items` (a mapping or an iterable of pairs) fills the new
/// map in order, as Go 1.23's `maps.Collect`; `hashkey` is Go's
/// `runtime.hashkey` (four ints); `rand` supplies the values Go's `fastrand()`
/// would return, consumed exactly where Go draws.
///
/// Given Go's hashkey and draws, a Map's buckets, tophash bytes, overflow
/// chains, growth and iteration order equal the Go runtime's, and
/// `Map.snapshot()` shows them. Writes that Go would kill the process for
/// (concurrent map writes) raise `ConcurrentMapError` and leave the map intact.
///
/// Iteration is Go's (random start, writes during iteration allowed); the rest
/// of the surface is `dict`'s (`MutableMapping`, `|`, `|=`, `fromkeys`,
/// `copy`, pickling) plus `delete`, `delete_if`/`retain` (Go's
/// `maps.DeleteFunc`), `to_dict`, batch operations and `shrink`.
///
/// Documentation in the repository: docs/fidelity.md (the Go-fidelity
/// contract and the snapshot schema), docs/architecture.md,
/// docs/concurrency.md.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<map::Map>()?;
    m.add_class::<syncmap::SyncMap>()?;
    m.add_class::<iter::MapIter>()?;
    m.add_class::<views::KeysView>()?;
    m.add_class::<views::ValuesView>()?;
    m.add_class::<views::ItemsView>()?;
    m.add_class::<sharded::ShardedMap>()?;
    m.add_function(wrap_pyfunction!(sharded::_sharded_parallel_min_keys, m)?)?;
    m.add("ConcurrentMapError", m.py().get_type::<ConcurrentMapError>())?;
    m.add_function(wrap_pyfunction!(map::_rebuild, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    Ok(())
}
