//! Python <-> Rust conversions for every key and value kind, and the `object`
//! key, which carries its Python hash so that growth never calls back into Python.

use crate::hash;
use crate::hmap::MapError;
use crate::kinds::{MapKey, MapValue};
use crate::rand::FastRand;
use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyTypeError};
use pyo3::ffi;
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
    /// The key as a Python object. Runs no Python code and allocates no
    /// GC-tracked object, so it may run inside a read (`Shared::read_attached`).
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
    /// Whether comparing keys of this kind may run Python code (`object` keys).
    const PYTHON_EQ: bool = false;
    /// Whether hashing and comparing this key runs no Python code and draws
    /// nothing (false for `object` keys, whose `==` is Python's, and for NaN
    /// floats, whose hash draws from the map's generator, which may be a Python
    /// callable): such a lookup may be a `Shared::read_attached`.
    #[inline(always)]
    fn pure_lookup(&self) -> bool {
        true
    }
    /// For keys hashed and compared as bytes (`string`, `bytes`): the bytes of
    /// an exact `str`/`bytes` probe, borrowed from the object, so that a lookup
    /// needs no owned key. `None` otherwise (build one with `from_py`).
    #[inline(always)]
    fn probe_bytes<'a>(_ob: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
        None
    }
    /// The bytes `probe_bytes` compares against: `K::hash` of the key is
    /// `hash::memhash` of them and `K::equal` is their equality.
    #[inline(always)]
    fn key_bytes(&self) -> &[u8] {
        &[]
    }
}

/// An exact `int` that fits an i64, read without the general extraction (whose
/// float check costs a subtype walk). `None`: not an exact int, or out of range;
/// the general path then decides and words the error.
#[inline(always)]
fn exact_i64(ob: &Bound<'_, PyAny>) -> Option<i64> {
    let p = ob.as_ptr();
    // SAFETY: `p` is a live object and we are attached (the `Bound` proves it).
    // For an exact int PyLong_AsLongLongAndOverflow cannot raise: out of range
    // it sets `overflow` and returns -1.
    unsafe {
        if ffi::PyLong_CheckExact(p) == 0 {
            return None;
        }
        let mut overflow = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
        (overflow == 0).then_some(v)
    }
}

/// An exact `float`'s value.
#[inline(always)]
fn exact_f64(ob: &Bound<'_, PyAny>) -> Option<f64> {
    let p = ob.as_ptr();
    // SAFETY: `p` is a live object; PyFloat_AS_DOUBLE reads an exact float's field.
    unsafe { (ffi::PyFloat_CheckExact(p) != 0).then(|| ffi::PyFloat_AS_DOUBLE(p)) }
}

/// `a == b` without running Python code when both are exact `str`s, exact
/// `int`s that fit in an i64, or exact `float`s: types whose `==` is CPython's
/// own and cannot be overridden. `None` otherwise (mixed types included):
/// Python's `==` decides. An `object`-keyed map compares the probe with every
/// stored key of equal hash; for the common key types this skips the rich
/// comparison, its bool object and its truth test.
#[inline]
fn exact_eq(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> Option<bool> {
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: live objects, attached (the `Bound`s prove both); PyUnicode_Compare
    // of two exact strs cannot fail, and returns 0 exactly when they are equal.
    unsafe {
        if ffi::PyUnicode_CheckExact(pa) != 0 && ffi::PyUnicode_CheckExact(pb) != 0 {
            return Some(ffi::PyUnicode_Compare(pa, pb) == 0);
        }
    }
    if let (Some(x), Some(y)) = (exact_i64(a), exact_i64(b)) {
        return Some(x == y);
    }
    if let (Some(x), Some(y)) = (exact_f64(a), exact_f64(b)) {
        return Some(x == y);
    }
    None
}

/// An exact `str`'s UTF-8 bytes (CPython caches them in the object; for an
/// ASCII string they are its data), borrowed from it. `None` for other types
/// and for strings that are not valid UTF-8 (lone surrogates): the general
/// path words those errors.
#[inline(always)]
fn exact_str_utf8<'a>(ob: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    let p = ob.as_ptr();
    // SAFETY: `p` is a live object; on success PyUnicode_AsUTF8AndSize returns a
    // buffer of `n` bytes owned by the string, which `ob` keeps alive for 'a
    // (a str is immutable and its UTF-8 cache is never freed before it).
    unsafe {
        if ffi::PyUnicode_CheckExact(p) == 0 {
            return None;
        }
        let mut n: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(p, &mut n);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(std::slice::from_raw_parts(data as *const u8, n as usize))
    }
}

/// An exact `bytes` object's contents, borrowed from it.
#[inline(always)]
fn exact_bytes<'a>(ob: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    let p = ob.as_ptr();
    // SAFETY: `p` is a live object; an exact bytes object's buffer is immutable
    // and lives as long as the object, which `ob` keeps alive for 'a.
    unsafe {
        if ffi::PyBytes_CheckExact(p) == 0 {
            return None;
        }
        let data = ffi::PyBytes_AsString(p);
        Some(std::slice::from_raw_parts(data as *const u8, ffi::PyBytes_Size(p) as usize))
    }
}

pub trait PyVal: MapValue + Send + Sync {
    /// Whether values of this kind hold Python objects (that the GC must see).
    const HOLDS_OBJECTS: bool = false;
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self>;
    /// The value as a Python object. Runs no Python code and allocates no
    /// GC-tracked object, so it may run inside a read (`Shared::read_attached`).
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

#[inline]
fn extract_float(ob: &Bound<'_, PyAny>, kind: &str, what: &str) -> PyResult<f64> {
    if let Some(v) = exact_f64(ob) {
        return Ok(v);
    }
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
                if let Some(v) = exact_i64(ob).and_then(|v| <$t>::try_from(v).ok()) {
                    return Ok(v);
                }
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
    #[inline]
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        extract_float(ob, "float64", "key")
    }
    #[inline(always)]
    fn pure_lookup(&self) -> bool {
        !self.is_nan()
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
    #[inline]
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        to_f32(extract_float(ob, "float32", "key")?, "key")
    }
    #[inline(always)]
    fn pure_lookup(&self) -> bool {
        !self.is_nan()
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
    #[inline]
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Some(b) = exact_str_utf8(ob) {
            // SAFETY: CPython's UTF-8 form of a str is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) }.into());
        }
        let s = ob.cast::<PyString>().map_err(|_| kind_error(ob, "string", "key"))?;
        Ok(s.to_str()?.into())
    }
    fn from_py_lookup(ob: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        if let Some(b) = exact_str_utf8(ob) {
            // SAFETY: CPython's UTF-8 form of a str is valid UTF-8.
            return Ok(Some(unsafe { std::str::from_utf8_unchecked(b) }.into()));
        }
        let s = ob.cast::<PyString>().map_err(|_| kind_error(ob, "string", "key"))?;
        Ok(s.to_str().ok().map(Into::into))
    }
    #[inline(always)]
    fn probe_bytes<'a>(ob: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
        exact_str_utf8(ob)
    }
    #[inline(always)]
    fn key_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyString::new(py, self).into_any().unbind())
    }
    fn raise_key(e: Infallible) -> PyErr {
        match e {}
    }
}

impl PyKey for Box<[u8]> {
    #[inline(always)]
    fn probe_bytes<'a>(ob: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
        exact_bytes(ob)
    }
    #[inline(always)]
    fn key_bytes(&self) -> &[u8] {
        self
    }
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
    fn hash(&self, seed: u64, key: &hash::FallbackKey, _rand: &FastRand) -> u64 {
        hash::memhash64(self.hash as u64, seed, key)
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
        Python::attach(|py| {
            let (stored, probe) = (other.obj.bind(py), self.obj.bind(py));
            match exact_eq(stored, probe) {
                Some(eq) => Ok(eq),
                None => stored.eq(probe),
            }
        })
    }
    fn clone_key(&self) -> Self {
        Python::attach(|py| ObjKey { hash: self.hash, obj: self.obj.clone_ref(py) })
    }
}

impl PyKey for ObjKey {
    const PYTHON_EQ: bool = true;
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
    fn pure_lookup(&self) -> bool {
        false // `==` is Python's
    }
}

impl PyVal for i64 {
    #[inline]
    fn from_py(ob: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Some(v) = exact_i64(ob) {
            return Ok(v);
        }
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
    #[inline]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `probe_bytes` lookups hash with `hash::memhash` of the bytes: that must
    /// be exactly `K::hash` of the owned key, or a borrowed probe would miss.
    #[test]
    fn byte_keys_hash_as_their_bytes() {
        let rand = FastRand::new(1, None);
        for (seed, hk0) in [(0u64, 1u64), (0x1234_5678, 0xdead_beef_0000_0001), (u32::MAX as u64, u64::MAX)] {
            let hk = &crate::hash::FallbackKey::new([hk0, 3, 5, 7], crate::release::GoRelease::Go123);
            for s in ["", "a", "hello, world", "0123456789abcdef0123456789abcdef!", "\u{e9}t\u{e9}"] {
                let k: Box<str> = s.into();
                assert_eq!(MapKey::hash(&k, seed, hk, &rand), hash::memhash(k.key_bytes(), seed, hk));
                let b: Box<[u8]> = s.as_bytes().into();
                assert_eq!(MapKey::hash(&b, seed, hk, &rand), hash::memhash(b.key_bytes(), seed, hk));
            }
        }
    }
}
