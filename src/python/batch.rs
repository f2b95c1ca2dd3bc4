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
use super::map::{dispose, Shared};
use crate::flags::FlagWord;
use crate::hmap::HMap;
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

/// The `numpy` module, imported once (a batch call on a small array would
/// otherwise spend a good part of its time in the import machinery).
pub(crate) fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static NUMPY: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    NUMPY
        .get_or_try_init(py, || py.import("numpy").map(Bound::unbind))
        .map(|m| m.bind(py).clone())
        .map_err(|_| PyImportError::new_err("gomap's batch operations return NumPy arrays: pip install numpy"))
}

/// A NumPy array holding `data`: `numpy.empty`, filled through its buffer
/// (one copy).
pub fn to_array<T: BufferElem>(py: Python<'_>, data: &[T]) -> PyResult<Py<PyAny>> {
    let np = numpy(py)?;
    let arr = np.call_method1("empty", (data.len(), T::DTYPE))?;
    let nbytes = std::mem::size_of_val(data);
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: `view` is written by PyObject_GetBuffer on success and released
    // below; the GIL is held.
    if unsafe { ffi::PyObject_GetBuffer(arr.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_WRITABLE | ffi::PyBUF_ND) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: initialised by the successful call above.
    let mut view = unsafe { view.assume_init() };
    let ok = view.len as usize == nbytes;
    if ok {
        // SAFETY: a fresh C-contiguous, writable array of exactly `nbytes` bytes
        // (checked), which nobody else can see yet.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, view.buf as *mut u8, nbytes) };
    }
    // SAFETY: releases the view obtained above, exactly once.
    unsafe { ffi::PyBuffer_Release(&mut view) };
    if !ok {
        return Err(PyValueError::new_err("numpy.empty returned an array of an unexpected size"));
    }
    Ok(arr.unbind())
}

pub(crate) fn bool_array(py: Python<'_>, data: &[bool]) -> PyResult<Py<PyAny>> {
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

/// How many keys ahead a batch hashes and prefetches: enough to cover a DRAM
/// miss with the work of the keys in between.
const AHEAD: usize = 16;

/// Walks `ks` in order, calling `each(i, key, hash)`, after hashing the key
/// `AHEAD` places later and prefetching its bucket, so that the cache misses of
/// successive keys overlap. `hash` is `Some` when the key's hash was taken ahead
/// (never for a key whose hash draws or whose `==` is Python's: those are
/// hashed by the operation itself, in order, as without the pipeline). The
/// prefetches are hints computed from the table at the time: a write between
/// two keys can make one useless, never wrong.
#[inline]
fn pipelined<K: PyKey, V: PyVal, E>(
    h: &HMap<K, V>,
    fl: &FlagWord,
    ks: &[K],
    mut each: impl FnMut(&HMap<K, V>, usize, &K, Option<u64>) -> Result<(), E>,
) -> Result<(), E> {
    let ahead = |i: usize| -> Option<u64> {
        let k = &ks[i];
        if !k.pure_lookup() {
            return None;
        }
        let hash = h.key_hash(k);
        h.prefetch(fl, hash);
        Some(hash)
    };
    let mut ring = [None; AHEAD];
    for (j, slot) in ring.iter_mut().enumerate().take(ks.len()) {
        *slot = ahead(j);
    }
    for (i, k) in ks.iter().enumerate() {
        let hash = ring[i % AHEAD];
        if i + AHEAD < ks.len() {
            ring[i % AHEAD] = ahead(i + AHEAD);
        }
        each(h, i, k, hash)?;
    }
    Ok(())
}

/// `mapaccess2` with the hash the pipeline took ahead, when it took one.
#[inline(always)]
fn access<'h, K: PyKey, V: PyVal>(
    h: &'h HMap<K, V>,
    fl: &FlagWord,
    k: &K,
    hash: Option<u64>,
) -> PyResult<Option<&'h V>> {
    match hash {
        Some(x) => h.mapaccess_hashed(fl, |_, _| x, |stored| k.equal(stored)),
        None => h.mapaccess(fl, k),
    }
    .map_err(K::raise)
}

impl<K: PyKey + Batch, V: PyVal + Batch> Shared<K, V> {
    /// Runs `f` under the write claim, taken while attached (as
    /// `Shared::read_attached` requires of every write), with the GIL released
    /// while `f` runs when `detach`.
    fn write_detached<R: Send>(
        &self,
        py: Python<'_>,
        detach: bool,
        f: impl FnOnce(&mut HMap<K, V>, &FlagWord) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        self.write(|h, fl| run(py, detach, || f(h, fl)))
    }

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
                let mut missing = 0;
                // Err(None): stop at a missing key without a default.
                let r = pipelined(h, fl, &ks, |h, i, k, hash| {
                    let hit =
                        if is_absent.get(i) == Some(&true) { None } else { access(h, fl, k, hash).map_err(Some)? };
                    match (hit, &default) {
                        (Some(v), _) => out.push(v.copy_out()),
                        (None, Some(d)) => out.push(d.copy_out()),
                        (None, None) => {
                            missing = i;
                            return Err(None);
                        }
                    }
                    Ok(())
                });
                match r {
                    Ok(()) => Ok(Ok(out)),
                    Err(None) => Ok(Err(missing)),
                    Err(Some(e)) => Err(e),
                }
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

    /// The keys and/or values in the order of one Go iteration (`for k, v :=
    /// range m`: `mapiterinit` draws the start, as `iter(m)` does), as arrays.
    pub fn export(&self, py: Python<'_>, keys: bool, values: bool) -> PyResult<(Option<Py<PyAny>>, Option<Py<PyAny>>)> {
        numpy(py)?;
        // A counted claim: mapiterinit may draw from a Python source, and object
        // keys and values are only increfed here (nothing is allocated).
        let (ks, vs) = self
            .read(true, |h, fl| {
                let mut ks = Vec::with_capacity(if keys { h.count } else { 0 });
                let mut vs = Vec::with_capacity(if values { h.count } else { 0 });
                let mut it = h.mapiterinit(fl);
                while let Some((k, v)) = h.mapiternext(fl, &mut it).map_err(K::raise)? {
                    if keys {
                        ks.push(k.clone_key());
                    }
                    if values {
                        vs.push(v.copy_out());
                    }
                }
                Ok((ks, vs, it.take_released()))
            })
            .map(|(ks, vs, released)| {
                drop(released);
                (ks, vs)
            })?;
        let ks = if keys { Some(K::array(py, ks)?) } else { None };
        let vs = if values { Some(V::array(py, vs)?) } else { None };
        Ok((ks, vs))
    }

    pub fn contains_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let (ks, absent) = K::collect_lookup(keys, "keys")?;
        let is_absent = absent_mask(ks.len(), &absent);
        let found: Vec<bool> = run(py, K::DETACHABLE, || {
            self.read(false, |h, fl| {
                let mut out = Vec::with_capacity(ks.len());
                pipelined(h, fl, &ks, |h, i, k, hash| {
                    out.push(is_absent.get(i) != Some(&true) && access(h, fl, k, hash)?.is_some());
                    Ok::<(), PyErr>(())
                })?;
                Ok(out)
            })
        })?;
        bool_array(py, &found)
    }

    pub fn set_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        presize: bool,
    ) -> PyResult<()> {
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
        let (replaced, err, let_go): (Vec<V>, Option<PyErr>, Vec<_>) =
            self.write_detached(py, K::DETACHABLE && V::DETACHABLE, |h, fl| {
                let let_go =
                    if presize { h.try_presize(fl, ks.len()).map_err(|_| memory_error())? } else { Vec::new() };
                let mut replaced = Vec::new();
                let n = ks.len();
                let mut ks = ks.into_iter();
                let mut vs = vs.into_iter();
                // The key AHEAD places on is hashed for its prefetch only;
                // mapassign hashes it again when its turn comes (cheap next to a miss).
                let prefetch = |h: &HMap<K, V>, k: &K| {
                    if k.pure_lookup() {
                        h.prefetch(fl, h.key_hash(k));
                    }
                };
                for k in ks.as_slice().iter().take(AHEAD) {
                    prefetch(h, k);
                }
                for _ in 0..n {
                    if let Some(next) = ks.as_slice().get(AHEAD) {
                        prefetch(h, next);
                    }
                    let (k, v) = (ks.next().unwrap(), vs.next().unwrap());
                    match h.mapassign(fl, k, v) {
                        Ok(old) => replaced.extend(old),
                        // The values replaced so far leave with the error.
                        Err(e) => return Ok((replaced, Some(K::raise(e)), let_go)),
                    }
                }
                Ok((replaced, None, let_go))
            })?;
        // After the claim: these may run __del__.
        drop(replaced);
        dispose(let_go);
        drop(keep);
        err.map_or(Ok(()), Err)
    }

    pub fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        numpy(py)?;
        let (ks, absent) = K::collect_lookup(keys, "keys")?;
        let is_absent = absent_mask(ks.len(), &absent);
        let mut found: Vec<bool> = Vec::new();
        found.try_reserve_exact(ks.len()).map_err(|_| memory_error())?;
        let (found, removed, err) = self.write_detached(py, K::DETACHABLE && V::DETACHABLE, |h, fl| {
            let mut removed: Vec<(K, V)> = Vec::new();
            for k in ks.iter().take(AHEAD).filter(|k| k.pure_lookup()) {
                h.prefetch(fl, h.key_hash(k));
            }
            for (i, k) in ks.iter().enumerate() {
                // Prefetch only: mapdelete hashes the key again in its turn
                // (with the hash0 of that moment, which an emptied map redraws).
                if let Some(next) = ks.get(i + AHEAD).filter(|k| k.pure_lookup()) {
                    h.prefetch(fl, h.key_hash(next));
                }
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
