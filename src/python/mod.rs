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
