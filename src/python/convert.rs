//! Python <-> Rust conversions for every key and value kind, and the `object`
//! key, which carries its Python hash so that growth never calls back into Python.

use crate::hash;
use crate::hmap::MapError;
use crate::kinds::{MapKey, MapValue};
use crate::rand::FastRand;
use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyString};
use std::convert::Infallible;

/// The map needed memory it could not get; it holds the same entries as before.
pub fn memory_error() -> PyErr {
    PyMemoryError::new_err("gomap.Map: out of memory (the map is unchanged)")
}

pub trait PyKey: MapKey + Send + Sync {
    /// Whether keys of this kind hold Python objects (that the GC must see).
    const HOLDS_OBJECTS: bool = false;
    /// The key to store: a value outside the kind is an error.
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self>;
    /// The key to look up: `None` when `ob` is of the right type but no stored
    /// key can equal it (a `str` with lone surrogates in a string map), so reads
    /// answer "absent" where `from_py` refuses to store it.
    fn from_py_lookup(ob: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        Self::from_py(ob).map(Some)
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>>;
    /// The exception for a failed equality test of this kind.
    fn raise_key(e: Self::Error) -> PyErr;
    /// The exception for an engine error: `MemoryError` when out of memory.
    fn raise(e: impl Into<MapError<Self::Error>>) -> PyErr {
        match e.into() {
            MapError::Key(e) => Self::raise_key(e),
            MapError::Alloc => memory_error(),
        }
    }
    /// Objects the key holds, for the GC.
    fn object(&self) -> Option<&Py<PyAny>> {
        None
    }
}

pub trait PyVal: MapValue + Send + Sync {
    /// Whether values of this kind hold Python objects (that the GC must see).
    const HOLDS_OBJECTS: bool = false;
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self>;
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>>;
    fn clone_val(&self, py: Python<'_>) -> Self;
    /// A copy taken where no `Python` token is at hand (attaches for objects).
    fn copy_out(&self) -> Self;
    /// Python `==` between two stored values.
    fn eq_val(&self, other: &Self, py: Python<'_>) -> PyResult<bool>;
    fn object(&self) -> Option<&Py<PyAny>> {
        None
    }
}

fn kind_error(ob: &Bound<'_, PyAny>, kind: &str, what: &str) -> PyErr {
    let tname = ob.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{what} of a {kind} map must be {}, not '{tname}'", expected(kind)))
}

fn expected(kind: &str) -> &'static str {
    match kind {
        "int64" | "int32" | "uint64" | "uint32" => "an int",
        "float64" | "float32" => "a float or an int",
        "string" => "a str",
        "bytes" => "bytes",
        _ => "hashable",
    }
}

/// Integers: Python `int` (and `__index__` types such as NumPy integers), never
/// floats or strings; out of range is `OverflowError`.
fn check_int(ob: &Bound<'_, PyAny>, kind: &str, what: &str) -> PyResult<()> {
    if ob.is_instance_of::<PyFloat>() || ob.is_instance_of::<PyString>() || ob.is_instance_of::<PyBytes>() {
        return Err(kind_error(ob, kind, what));
    }
    Ok(())
}

fn int_error(ob: &Bound<'_, PyAny>, e: PyErr, kind: &str, what: &str) -> PyErr {
    if e.is_instance_of::<PyOverflowError>(ob.py()) {
        let r = ob.repr().map(|r| r.to_string()).unwrap_or_default();
        PyOverflowError::new_err(format!("{what} {r} out of range for a {kind} map"))
    } else {
        kind_error(ob, kind, what)
    }
}

macro_rules! extract_int {
    ($ob:expr, $t:ty, $kind:expr, $what:expr) => {{
        let ob = $ob;
        match ob.extract::<$t>() {
            Ok(v) if !ob.is_instance_of::<PyFloat>() => Ok(v),
            Ok(_) => Err(kind_error(ob, $kind, $what)),
            Err(e) => {
                check_int(ob, $kind, $what)?;
                Err(int_error(ob, e.into(), $kind, $what))
            }
        }
    }};
}

fn extract_float(ob: &Bound<'_, PyAny>, kind: &str, what: &str) -> PyResult<f64> {
    if ob.is_instance_of::<PyString>() || ob.is_instance_of::<PyBytes>() {
        return Err(kind_error(ob, kind, what));
    }
    match ob.extract::<f64>() {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<PyOverflowError>(ob.py()) => Err(e),
        Err(_) => Err(kind_error(ob, kind, what)),
    }
}

macro_rules! int_kind {
    ($t:ty, $name:literal) => {
        impl PyKey for $t {
            #[inline]
            fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
                extract_int!(ob, $t, $name, "key")
            }
            #[inline]
            fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                Ok(self.into_pyobject(py)?.into_any().unbind())
            }
            fn raise_key(e: Infallible) -> PyErr {
                match e {}
            }
        }
    };
}
int_kind!(i64, "int64");
int_kind!(i32, "int32");
int_kind!(u64, "uint64");
int_kind!(u32, "uint32");

impl PyKey for f64 {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        extract_float(ob, "float64", "key")
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyFloat::new(py, *self).into_any().unbind())
    }
    fn raise_key(e: Infallible) -> PyErr {
        match e {}
    }
}

/// float32 keys: a finite float outside float32's range is `OverflowError`;
/// anything else is rounded to the nearest float32, as NumPy does.
fn to_f32(v: f64, what: &str) -> PyResult<f32> {
    let f = v as f32;
    if f.is_infinite() && v.is_finite() {
        return Err(PyOverflowError::new_err(format!("{what} {v} out of range for a float32 map")));
    }
    Ok(f)
}

impl PyKey for f32 {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        to_f32(extract_float(ob, "float32", "key")?, "key")
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyFloat::new(py, *self as f64).into_any().unbind())
    }
    fn raise_key(e: Infallible) -> PyErr {
        match e {}
    }
}

/// A `str` with lone surrogates has no UTF-8 form, so it cannot be a Go string:
/// storing it is `UnicodeEncodeError` (Python's own, from the UTF-8 codec);
/// looking it up finds nothing.
impl PyKey for Box<str> {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        let s = ob.cast::<PyString>().map_err(|_| kind_error(ob, "string", "key"))?;
        Ok(s.to_str()?.into())
    }
    fn from_py_lookup(ob: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        let s = ob.cast::<PyString>().map_err(|_| kind_error(ob, "string", "key"))?;
        Ok(s.to_str().ok().map(Into::into))
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyString::new(py, self).into_any().unbind())
    }
    fn raise_key(e: Infallible) -> PyErr {
        match e {}
    }
}

impl PyKey for Box<[u8]> {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        let b = ob.cast::<PyBytes>().map_err(|_| kind_error(ob, "bytes", "key"))?;
        Ok(b.as_bytes().into())
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyBytes::new(py, self).into_any().unbind())
    }
    fn raise_key(e: Infallible) -> PyErr {
        match e {}
    }
}

/// An `object` key: the object and its Python hash, computed once on the way in.
/// Equality follows `dict`: identity, then equal hashes and `==`.
pub struct ObjKey {
    pub hash: isize,
    pub obj: Py<PyAny>,
}

impl MapKey for ObjKey {
    type Error = PyErr;
    const NAME: &'static str = "object";
    const GO_SIZE: usize = 16; // an interface{}: type word + data word
    const GO_POINTERS: bool = true;
    const REFLEXIVE: bool = true; // identity implies equality, as in dict
    const NEED_KEY_UPDATE: bool = false; // dict keeps the first key object
    #[inline]
    fn hash(&self, seed: u64, hashkey0: u64, _rand: &FastRand) -> u64 {
        hash::memhash64(self.hash as u64, seed, hashkey0)
    }
    #[inline]
    fn equal(&self, other: &Self) -> PyResult<bool> {
        if self.obj.is(&other.obj) {
            return Ok(true);
        }
        if self.hash != other.hash {
            return Ok(false);
        }
        // The stored key is compared with the probe, in dict's order.
        Python::attach(|py| other.obj.bind(py).eq(self.obj.bind(py)))
    }
    fn clone_key(&self) -> Self {
        Python::attach(|py| ObjKey { hash: self.hash, obj: self.obj.clone_ref(py) })
    }
}

impl PyKey for ObjKey {
    const HOLDS_OBJECTS: bool = true;
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ObjKey { hash: ob.hash()?, obj: ob.clone().unbind() })
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.obj.clone_ref(py))
    }
    fn raise_key(e: PyErr) -> PyErr {
        e
    }
    fn object(&self) -> Option<&Py<PyAny>> {
        Some(&self.obj)
    }
}

impl PyVal for i64 {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        extract_int!(ob, i64, "int64", "value")
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.into_pyobject(py)?.into_any().unbind())
    }
    fn clone_val(&self, _py: Python<'_>) -> Self {
        *self
    }
    fn copy_out(&self) -> Self {
        *self
    }
    fn eq_val(&self, other: &Self, _py: Python<'_>) -> PyResult<bool> {
        Ok(self == other)
    }
}

impl PyVal for f64 {
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        extract_float(ob, "float64", "value")
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyFloat::new(py, *self).into_any().unbind())
    }
    fn clone_val(&self, _py: Python<'_>) -> Self {
        *self
    }
    fn copy_out(&self) -> Self {
        *self
    }
    fn eq_val(&self, other: &Self, _py: Python<'_>) -> PyResult<bool> {
        Ok(self == other)
    }
}

impl MapValue for Py<PyAny> {
    const NAME: &'static str = "object";
    const GO_SIZE: usize = 16;
    const GO_POINTERS: bool = true;
}

impl PyVal for Py<PyAny> {
    const HOLDS_OBJECTS: bool = true;
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ob.clone().unbind())
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.clone_ref(py))
    }
    fn clone_val(&self, py: Python<'_>) -> Self {
        self.clone_ref(py)
    }
    fn copy_out(&self) -> Self {
        Python::attach(|py| self.clone_ref(py))
    }
    fn eq_val(&self, other: &Self, py: Python<'_>) -> PyResult<bool> {
        self.bind(py).eq(other.bind(py))
    }
    fn object(&self) -> Option<&Py<PyAny>> {
        Some(self)
    }
}
