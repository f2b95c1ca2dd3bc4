//! `keys()`, `values()` and `items()` views, live like `dict`'s. Keys and items
//! views are sets (registered as `collections.abc.KeysView`/`ItemsView` in
//! Python); their set operators build a Python `set`, as dict's views do.

use super::iter::{IterMode, MapIter};
use super::map::Map;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PySet, PyTuple};
use pyo3::PyTraverseError;

fn as_set<'py>(map: &Bound<'py, Map>, mode: IterMode) -> PyResult<Bound<'py, PySet>> {
    let it = Bound::new(map.py(), MapIter::new(map, mode)?)?;
    PySet::new(map.py(), it.try_iter()?.collect::<PyResult<Vec<_>>>()?)
}

macro_rules! set_view {
    ($name:ident, $pyname:literal, $doc:literal, $mode:expr, $contains:item) => {
        #[doc = $doc]
        #[pyclass(module = "gomap._core", name = $pyname, frozen)]
        pub struct $name {
            map: Py<Map>,
        }

        impl $name {
            pub fn new(map: &Bound<'_, Map>) -> Self {
                $name { map: map.clone().unbind() }
            }
        }

        #[pymethods]
        impl $name {
            fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
                self.map.bind(py).len()
            }
            fn __iter__(&self, py: Python<'_>) -> PyResult<MapIter> {
                MapIter::new(self.map.bind(py), $mode)
            }
            fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
                visit.call(&self.map)
            }
            $contains
            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let items: Vec<String> = self
                    .__iter__(py)
                    .and_then(|it| Bound::new(py, it))?
                    .try_iter()?
                    .map(|x| x.and_then(|x| Ok(x.repr()?.to_string())))
                    .collect::<PyResult<_>>()?;
                Ok(format!("{}([{}])", $pyname, items.join(", ")))
            }
            /// True when the view and the iterable have no element in common (as for a `set`).
            fn isdisjoint(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
                let mine = as_set(self.map.bind(py), $mode)?;
                mine.call_method1("isdisjoint", (other,))?.extract()
            }
            fn __richcmp__(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: pyo3::basic::CompareOp) -> PyResult<Py<PyAny>> {
                let mine = as_set(self.map.bind(py), $mode)?;
                let other_set = py.import("collections.abc")?.getattr("Set")?;
                if !other.is_instance(&other_set)? {
                    return Ok(py.NotImplemented());
                }
                Ok(mine.rich_compare(PySet::new(py, other.try_iter()?.collect::<PyResult<Vec<_>>>()?)?, op)?.unbind())
            }
            fn __and__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                Ok(as_set(self.map.bind(py), $mode)?.call_method1("intersection", (other,))?.unbind())
            }
            fn __rand__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                self.__and__(py, other)
            }
            fn __or__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                Ok(as_set(self.map.bind(py), $mode)?.call_method1("union", (other,))?.unbind())
            }
            fn __ror__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                self.__or__(py, other)
            }
            fn __xor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                Ok(as_set(self.map.bind(py), $mode)?.call_method1("symmetric_difference", (other,))?.unbind())
            }
            fn __rxor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                self.__xor__(py, other)
            }
            fn __sub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                Ok(as_set(self.map.bind(py), $mode)?.call_method1("difference", (other,))?.unbind())
            }
            fn __rsub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let theirs = PySet::new(py, other.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
                Ok(theirs.call_method1("difference", (as_set(self.map.bind(py), $mode)?,))?.unbind())
            }
        }
    };
}

set_view!(
    KeysView,
    "map_keys",
    "A live, set-like view of a Map's keys (`m.keys()`); iterating it is Go's `for k := range m`.",
    IterMode::Keys,
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.map.bind(py).call_method1("__contains__", (key,))?.extract()
    }
);

set_view!(
    ItemsView,
    "map_items",
    "A live, set-like view of a Map's `(key, value)` pairs (`m.items()`), iterated in Go's order.",
    IterMode::Items,
    fn __contains__(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(pair) = item.cast::<PyTuple>() else { return Ok(false) };
        if pair.len() != 2 {
            return Ok(false);
        }
        let (k, v) = (pair.get_item(0)?, pair.get_item(1)?);
        let map = self.map.bind(py);
        let missing = PyTuple::empty(py);
        let got = map.call_method1("get", (&k, &missing))?;
        if got.is(&missing) {
            return Ok(false);
        }
        // Identity first, as dict's items view (PyObject_RichCompareBool).
        Ok(got.is(&v) || got.eq(&v)?)
    }
);

/// A live view of a Map's values (`m.values()`), iterated in Go's order.
#[pyclass(module = "gomap._core", name = "map_values", frozen)]
pub struct ValuesView {
    map: Py<Map>,
}

impl ValuesView {
    pub fn new(map: &Bound<'_, Map>) -> Self {
        ValuesView { map: map.clone().unbind() }
    }
}

#[pymethods]
impl ValuesView {
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.map.bind(py).len()
    }
    fn __iter__(&self, py: Python<'_>) -> PyResult<MapIter> {
        MapIter::new(self.map.bind(py), IterMode::Values)
    }
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.map)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let it = Bound::new(py, self.__iter__(py)?)?;
        let items: Vec<String> =
            it.try_iter()?.map(|x| x.and_then(|x| Ok(x.repr()?.to_string()))).collect::<PyResult<_>>()?;
        Ok(format!("map_values([{}])", items.join(", ")))
    }
}
