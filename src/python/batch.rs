//! Batch operations (`get_many`, `contains_many`, `set_many`, `delete_many`):
//! keys and values are copied out of the caller's buffer (or sequence) while
//! the GIL is held, then the map work runs with the GIL released.
//!
//! Buffers are read through the raw buffer protocol rather than PyO3's
//! `PyBuffer<T>`, whose format check (0.30) treats `>` as the native byte order
//! on little-endian machines: we parse the format ourselves, accept native and
//! explicitly little-endian layouts, and refuse big-endian ones instead of
//! misreading them.

use super::convert::{memory_error, ObjKey, PyKey, PyVal};
use super::map::Shared;
use pyo3::exceptions::{PyImportError, PyKeyError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::ffi::CStr;
use std::mem::MaybeUninit;

/// What a buffer element is: 'i' signed, 'u' unsigned, 'f' float; and its size.
type ElemType = (char, usize);

fn parse_format(format: &str) -> Result<ElemType, String> {
    let (native, code) = match format.as_bytes() {
        [c] | [b'@', c] => (true, *c),
        [b'=', c] | [b'<', c] if cfg!(target_endian = "little") => (false, *c),
        [b'=', c] | [b'>', c] | [b'!', c] if cfg!(target_endian = "big") => (false, *c),
        [b'>' | b'!' | b'<', _] => return Err(format!("byte order of format {format:?} is not this machine's; convert it first (e.g. arr.astype(arr.dtype.newbyteorder('=')))")),
        _ => return Err(format!("unsupported buffer format {format:?}")),
    };
    let long = if native { std::mem::size_of::<std::ffi::c_long>() } else { 4 };
    Ok(match code {
        b'b' => ('i', 1),
        b'B' => ('u', 1),
        b'h' => ('i', 2),
        b'H' => ('u', 2),
        b'i' => ('i', 4),
        b'I' => ('u', 4),
        b'l' => ('i', long),
        b'L' => ('u', long),
        b'q' => ('i', 8),
        b'Q' => ('u', 8),
        b'n' if native => ('i', std::mem::size_of::<isize>()),
        b'N' if native => ('u', std::mem::size_of::<usize>()),
        b'f' => ('f', 4),
        b'd' => ('f', 8),
        _ => return Err(format!("unsupported buffer format {format:?}")),
    })
}

/// A fixed-size element that can be copied out of a buffer.
pub trait BufferElem: Copy + Send + Sync + 'static {
    const ELEM: ElemType;
    const DTYPE: &'static str;
}

macro_rules! buffer_elem {
    ($t:ty, $k:literal, $dtype:literal) => {
        impl BufferElem for $t {
            const ELEM: ElemType = ($k, std::mem::size_of::<$t>());
            const DTYPE: &'static str = $dtype;
        }
    };
}
buffer_elem!(i64, 'i', "int64");
buffer_elem!(i32, 'i', "int32");
buffer_elem!(u64, 'u', "uint64");
buffer_elem!(u32, 'u', "uint32");
buffer_elem!(f64, 'f', "float64");
buffer_elem!(f32, 'f', "float32");

/// Copies a C-contiguous buffer of `T` into a Vec. `Ok(None)` when `ob` does
/// not support the buffer protocol at all (the caller then treats it as a
/// sequence).
pub fn copy_buffer<T: BufferElem>(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<Vec<T>>> {
    let py = ob.py();
    // SAFETY: PyObject_CheckBuffer only inspects the type.
    if unsafe { ffi::PyObject_CheckBuffer(ob.as_ptr()) } == 0 {
        return Ok(None);
    }
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: `view` is written by PyObject_GetBuffer on success and released
    // below on every path; the GIL is held.
    if unsafe { ffi::PyObject_GetBuffer(ob.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_FORMAT | ffi::PyBUF_STRIDES) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: initialised by the successful call above.
    let mut view = unsafe { view.assume_init() };
    let result = (|| {
        let format = if view.format.is_null() {
            "B".to_owned()
        } else {
            // SAFETY: a non-null format is a NUL-terminated string owned by the view.
            unsafe { CStr::from_ptr(view.format) }.to_string_lossy().into_owned()
        };
        let elem = parse_format(&format).map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))?;
        if elem != T::ELEM || view.itemsize as usize != std::mem::size_of::<T>() {
            return Err(PyTypeError::new_err(format!(
                "{what}: buffer of format {format:?} does not hold {} elements; convert it (e.g. arr.astype('{}'))",
                T::DTYPE,
                T::DTYPE
            )));
        }
        // SAFETY: `view` is a live buffer view.
        if unsafe { ffi::PyBuffer_IsContiguous(&view, b'C' as std::ffi::c_char) } == 0 {
            return Err(PyValueError::new_err(format!(
                "{what}: buffer is not C-contiguous; pass np.ascontiguousarray(...)"
            )));
        }
        if view.ndim > 1 {
            return Err(PyValueError::new_err(format!(
                "{what}: buffer must be one-dimensional, not {}-dimensional",
                view.ndim
            )));
        }
        let n = view.len as usize / std::mem::size_of::<T>();
        let mut out: Vec<T> = Vec::new();
        out.try_reserve_exact(n).map_err(|_| memory_error())?;
        // SAFETY: the view holds `n` contiguous elements of T's layout (checked
        // above); the copy happens under the GIL, so the exporter cannot be
        // resized meanwhile, and `out` has room for `n` elements. Byte copies
        // need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(
                view.buf as *const u8,
                out.as_mut_ptr() as *mut u8,
                n * std::mem::size_of::<T>(),
            );
            out.set_len(n);
        }
        Ok(Some(out))
    })();
    // SAFETY: releases the view obtained above, exactly once.
    unsafe { ffi::PyBuffer_Release(&mut view) };
    result
}

fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy")
        .map_err(|_| PyImportError::new_err("gomap's batch operations return NumPy arrays: pip install numpy"))
}

/// A NumPy array holding `data`.
pub fn to_array<T: BufferElem>(py: Python<'_>, data: &[T]) -> PyResult<Py<PyAny>> {
    let np = numpy(py)?;
    // SAFETY: reinterpreting a slice of plain numbers as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, std::mem::size_of_val(data)) };
    let raw = PyBytes::new(py, bytes);
    Ok(np.call_method1("frombuffer", (raw, T::DTYPE))?.call_method0("copy")?.unbind())
}

fn bool_array(py: Python<'_>, data: &[bool]) -> PyResult<Py<PyAny>> {
    let np = numpy(py)?;
    // SAFETY: bool is one byte, 0 or 1, which is NumPy's bool layout.
    let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, data.len()) };
    Ok(np.call_method1("frombuffer", (PyBytes::new(py, bytes), "bool"))?.call_method0("copy")?.unbind())
}

/// Collecting a batch of keys or values from a buffer or a sequence, and
/// returning a batch of values as an array.
pub trait Batch: Sized + Send + Sync {
    /// Whether work on this kind may run with the GIL released (no Python
    /// objects inside).
    const DETACHABLE: bool;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>>;
    /// For lookups: the keys, and the position and object of each key that no
    /// stored key can equal (a `str` with lone surrogates), which holds a
    /// placeholder in the Vec and reads as absent.
    #[allow(clippy::type_complexity)]
    fn collect_lookup(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<Self>, Vec<(usize, Py<PyAny>)>)> {
        Ok((Self::collect(ob, what)?, Vec::new()))
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>>;
}

fn collect_seq<T>(
    ob: &Bound<'_, PyAny>,
    what: &str,
    mut one: impl FnMut(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    if ob.is_instance_of::<PyString>() || ob.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!("{what} must be a buffer or a sequence, not a single str/bytes")));
    }
    let it = ob.try_iter().map_err(|_| PyTypeError::new_err(format!("{what} must be a buffer or an iterable")))?;
    it.map(|x| x.and_then(|x| one(&x))).collect()
}

macro_rules! numeric_batch {
    ($t:ty) => {
        impl Batch for $t {
            const DETACHABLE: bool = true;
            fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
                match copy_buffer::<$t>(ob, what)? {
                    Some(v) => Ok(v),
                    None => collect_seq(ob, what, |x| <$t as PyKey>::from_py(x)),
                }
            }
            fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
                to_array(py, &data)
            }
        }
    };
}
numeric_batch!(i32);
numeric_batch!(u64);
numeric_batch!(u32);
numeric_batch!(f32);

// i64 and f64 are both key and value kinds: values convert as values.
impl Batch for i64 {
    const DETACHABLE: bool = true;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        match copy_buffer::<i64>(ob, what)? {
            Some(v) => Ok(v),
            None if what == "values" => collect_seq(ob, what, <i64 as PyVal>::from_py),
            None => collect_seq(ob, what, <i64 as PyKey>::from_py),
        }
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        to_array(py, &data)
    }
}

impl Batch for f64 {
    const DETACHABLE: bool = true;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        match copy_buffer::<f64>(ob, what)? {
            Some(v) => Ok(v),
            None if what == "values" => collect_seq(ob, what, <f64 as PyVal>::from_py),
            None => collect_seq(ob, what, <f64 as PyKey>::from_py),
        }
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        to_array(py, &data)
    }
}

fn object_array(py: Python<'_>, objs: Vec<Py<PyAny>>) -> PyResult<Py<PyAny>> {
    let np = numpy(py)?;
    let n = objs.len();
    let arr = np.call_method1("empty", (n, "object"))?;
    for (i, o) in objs.into_iter().enumerate() {
        arr.set_item(i, o)?;
    }
    Ok(arr.unbind())
}

impl Batch for Box<str> {
    const DETACHABLE: bool = true;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        collect_seq(ob, what, <Box<str> as PyKey>::from_py)
    }
    fn collect_lookup(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<Self>, Vec<(usize, Py<PyAny>)>)> {
        let mut absent = Vec::new();
        let mut i = 0;
        let keys = collect_seq(ob, what, |x| {
            let k = <Box<str> as PyKey>::from_py_lookup(x)?.unwrap_or_else(|| {
                absent.push((i, x.clone().unbind()));
                "".into()
            });
            i += 1;
            Ok(k)
        })?;
        Ok((keys, absent))
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        object_array(py, data.iter().map(|k| k.to_py(py)).collect::<PyResult<_>>()?)
    }
}

impl Batch for Box<[u8]> {
    const DETACHABLE: bool = true;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        collect_seq(ob, what, <Box<[u8]> as PyKey>::from_py)
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        object_array(py, data.iter().map(|k| k.to_py(py)).collect::<PyResult<_>>()?)
    }
}

impl Batch for ObjKey {
    const DETACHABLE: bool = false;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        collect_seq(ob, what, ObjKey::from_py)
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        object_array(py, data.into_iter().map(|k| k.obj).collect())
    }
}

impl Batch for Py<PyAny> {
    const DETACHABLE: bool = false;
    fn collect(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Self>> {
        collect_seq(ob, what, |x| Ok(x.clone().unbind()))
    }
    fn array(py: Python<'_>, data: Vec<Self>) -> PyResult<Py<PyAny>> {
        object_array(py, data)
    }
}

/// One flag per key, true where the key reads as absent (empty when none does).
fn absent_mask(n: usize, absent: &[(usize, Py<PyAny>)]) -> Vec<bool> {
    let mut mask = Vec::new();
    if !absent.is_empty() {
        mask.resize(n, false);
        for (i, _) in absent {
            mask[*i] = true;
        }
    }
    mask
}

/// Runs `f` with the GIL released when the kinds allow it.
fn run<R: Send>(py: Python<'_>, detach: bool, f: impl FnOnce() -> R + Send) -> R {
    if detach {
        py.detach(f)
    } else {
        f()
    }
}

impl<K: PyKey + Batch, V: PyVal + Batch> Shared<K, V> {
    pub fn get_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let (ks, absent) = K::collect_lookup(keys, "keys")?;
        let is_absent = absent_mask(ks.len(), &absent);
        let default = default.map(V::from_py).transpose()?;
        let found: Result<Vec<V>, usize> = run(py, K::DETACHABLE && V::DETACHABLE, || {
            self.read(false, |h, fl| {
                let mut out = Vec::new();
                out.try_reserve_exact(ks.len()).map_err(|_| memory_error())?;
                for (i, k) in ks.iter().enumerate() {
                    let hit =
                        if is_absent.get(i) == Some(&true) { None } else { h.mapaccess(fl, k).map_err(K::raise)? };
                    match (hit, &default) {
                        (Some(v), _) => out.push(v.copy_out()),
                        (None, Some(d)) => out.push(d.copy_out()),
                        (None, None) => return Ok(Err(i)),
                    }
                }
                Ok(Ok(out))
            })
        })?;
        match found {
            Ok(vals) => V::array(py, vals),
            Err(i) => match absent.iter().find(|(j, _)| *j == i) {
                Some((_, ob)) => Err(PyKeyError::new_err((ob.clone_ref(py),))),
                None => Err(PyKeyError::new_err((ks[i].to_py(py)?,))),
            },
        }
    }

    pub fn contains_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let (ks, absent) = K::collect_lookup(keys, "keys")?;
        let is_absent = absent_mask(ks.len(), &absent);
        let found: Vec<bool> = run(py, K::DETACHABLE, || {
            self.read(false, |h, fl| {
                (ks.iter().enumerate())
                    .map(
                        |(i, k)| Ok(is_absent.get(i) != Some(&true) && h.mapaccess(fl, k).map_err(K::raise)?.is_some()),
                    )
                    .collect()
            })
        })?;
        bool_array(py, &found)
    }

    pub fn set_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let ks = K::collect(keys, "keys")?;
        let vs = V::collect(values, "values")?;
        if ks.len() != vs.len() {
            return Err(PyValueError::new_err(format!("{} keys but {} values", ks.len(), vs.len())));
        }
        // Our own reference to every key and value object (the batch may hold the
        // only ones, e.g. from a generator): whatever the engine drops under the
        // claim (a key already present, the rest of the batch after an error) is
        // then never the last reference. Typed kinds hold no objects.
        let keep: Vec<Py<PyAny>> = ks
            .iter()
            .filter_map(PyKey::object)
            .chain(vs.iter().filter_map(PyVal::object))
            .map(|o| o.clone_ref(py))
            .collect();
        let (replaced, err): (Vec<V>, Option<PyErr>) = run(py, K::DETACHABLE && V::DETACHABLE, || {
            self.write(|h, fl| {
                let mut replaced = Vec::new();
                for (k, v) in ks.into_iter().zip(vs) {
                    match h.mapassign(fl, k, v) {
                        Ok(old) => replaced.extend(old),
                        // The values replaced so far leave with the error.
                        Err(e) => return Ok((replaced, Some(K::raise(e)))),
                    }
                }
                Ok((replaced, None))
            })
        })?;
        // After the claim: these may run __del__.
        drop(replaced);
        drop(keep);
        err.map_or(Ok(()), Err)
    }

    pub fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let (ks, absent) = K::collect_lookup(keys, "keys")?;
        let is_absent = absent_mask(ks.len(), &absent);
        let mut found: Vec<bool> = Vec::new();
        found.try_reserve_exact(ks.len()).map_err(|_| memory_error())?;
        let (found, removed, err) = run(py, K::DETACHABLE && V::DETACHABLE, || {
            self.write(|h, fl| {
                let mut removed: Vec<(K, V)> = Vec::new();
                for (i, k) in ks.iter().enumerate() {
                    if is_absent.get(i) == Some(&true) {
                        found.push(false);
                        continue;
                    }
                    match h.mapdelete(fl, k) {
                        Ok(r) => {
                            found.push(r.is_some());
                            removed.extend(r);
                        }
                        // The entries removed so far leave with the error.
                        Err(e) => return Ok((found, removed, Some(K::raise(e)))),
                    }
                }
                Ok((found, removed, None))
            })
        })?;
        // After the claim: these may run __del__.
        drop(removed);
        drop(ks);
        if let Some(e) = err {
            return Err(e);
        }
        bool_array(py, &found)
    }
}
