//! The Python module `gomap._core`.

pub(crate) mod anymap;
pub mod batch;
pub mod convert;
pub mod iter;
pub mod map;
pub mod sharded;
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

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<map::Map>()?;
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
