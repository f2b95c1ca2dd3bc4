use super::convert::ObjKey;
use super::map::Shared;
use crate::hmap::{AllocError, HMap};
use crate::rand::FastRand;
use pyo3::prelude::*;

// One variant per key kind × value kind, and the `dispatch!` macro over them.
// Adding a kind means adding its variants here, its arm in `dispatch!` and its name in `AnyMap::new`.

/// The map, for every key kind × value kind.
pub enum AnyMap {
    I64I64(Shared<i64, i64>),
    I64F64(Shared<i64, f64>),
    I64Obj(Shared<i64, Py<PyAny>>),
    I32I64(Shared<i32, i64>),
    I32F64(Shared<i32, f64>),
    I32Obj(Shared<i32, Py<PyAny>>),
    U64I64(Shared<u64, i64>),
    U64F64(Shared<u64, f64>),
    U64Obj(Shared<u64, Py<PyAny>>),
    U32I64(Shared<u32, i64>),
    U32F64(Shared<u32, f64>),
    U32Obj(Shared<u32, Py<PyAny>>),
    F64I64(Shared<f64, i64>),
    F64F64(Shared<f64, f64>),
    F64Obj(Shared<f64, Py<PyAny>>),
    F32I64(Shared<f32, i64>),
    F32F64(Shared<f32, f64>),
    F32Obj(Shared<f32, Py<PyAny>>),
    StrI64(Shared<Box<str>, i64>),
    StrF64(Shared<Box<str>, f64>),
    StrObj(Shared<Box<str>, Py<PyAny>>),
    BytesI64(Shared<Box<[u8]>, i64>),
    BytesF64(Shared<Box<[u8]>, f64>),
    BytesObj(Shared<Box<[u8]>, Py<PyAny>>),
    ObjI64(Shared<ObjKey, i64>),
    ObjF64(Shared<ObjKey, f64>),
    ObjObj(Shared<ObjKey, Py<PyAny>>),
}

impl AnyMap {
    /// `Ok(None)` for an unknown pair of kinds; `Err` when the buckets for `hint`
    /// cannot be allocated.
    pub fn new(
        key: &str,
        value: &str,
        hint: usize,
        hashkey: [u64; 4],
        rand: FastRand,
    ) -> Result<Option<AnyMap>, AllocError> {
        Ok(Some(match (key, value) {
            ("int64", "int64") => AnyMap::I64I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("int64", "float64") => AnyMap::I64F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("int64", "object") => AnyMap::I64Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("int32", "int64") => AnyMap::I32I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("int32", "float64") => AnyMap::I32F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("int32", "object") => AnyMap::I32Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint64", "int64") => AnyMap::U64I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint64", "float64") => AnyMap::U64F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint64", "object") => AnyMap::U64Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint32", "int64") => AnyMap::U32I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint32", "float64") => AnyMap::U32F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("uint32", "object") => AnyMap::U32Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float64", "int64") => AnyMap::F64I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float64", "float64") => AnyMap::F64F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float64", "object") => AnyMap::F64Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float32", "int64") => AnyMap::F32I64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float32", "float64") => AnyMap::F32F64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("float32", "object") => AnyMap::F32Obj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("string", "int64") => AnyMap::StrI64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("string", "float64") => AnyMap::StrF64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("string", "object") => AnyMap::StrObj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("bytes", "int64") => AnyMap::BytesI64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("bytes", "float64") => AnyMap::BytesF64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("bytes", "object") => AnyMap::BytesObj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("object", "int64") => AnyMap::ObjI64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("object", "float64") => AnyMap::ObjF64(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            ("object", "object") => AnyMap::ObjObj(Shared::new(HMap::try_makemap(hint, hashkey, rand)?)),
            _ => return Ok(None),
        }))
    }
}

/// Runs `$body` with `$m` bound to the typed map, monomorphised per kind.
macro_rules! dispatch {
    ($inner:expr, $m:ident => $body:expr) => {
        match $inner {
            $crate::python::anymap::AnyMap::I64I64($m) => $body,
            $crate::python::anymap::AnyMap::I64F64($m) => $body,
            $crate::python::anymap::AnyMap::I64Obj($m) => $body,
            $crate::python::anymap::AnyMap::I32I64($m) => $body,
            $crate::python::anymap::AnyMap::I32F64($m) => $body,
            $crate::python::anymap::AnyMap::I32Obj($m) => $body,
            $crate::python::anymap::AnyMap::U64I64($m) => $body,
            $crate::python::anymap::AnyMap::U64F64($m) => $body,
            $crate::python::anymap::AnyMap::U64Obj($m) => $body,
            $crate::python::anymap::AnyMap::U32I64($m) => $body,
            $crate::python::anymap::AnyMap::U32F64($m) => $body,
            $crate::python::anymap::AnyMap::U32Obj($m) => $body,
            $crate::python::anymap::AnyMap::F64I64($m) => $body,
            $crate::python::anymap::AnyMap::F64F64($m) => $body,
            $crate::python::anymap::AnyMap::F64Obj($m) => $body,
            $crate::python::anymap::AnyMap::F32I64($m) => $body,
            $crate::python::anymap::AnyMap::F32F64($m) => $body,
            $crate::python::anymap::AnyMap::F32Obj($m) => $body,
            $crate::python::anymap::AnyMap::StrI64($m) => $body,
            $crate::python::anymap::AnyMap::StrF64($m) => $body,
            $crate::python::anymap::AnyMap::StrObj($m) => $body,
            $crate::python::anymap::AnyMap::BytesI64($m) => $body,
            $crate::python::anymap::AnyMap::BytesF64($m) => $body,
            $crate::python::anymap::AnyMap::BytesObj($m) => $body,
            $crate::python::anymap::AnyMap::ObjI64($m) => $body,
            $crate::python::anymap::AnyMap::ObjF64($m) => $body,
            $crate::python::anymap::AnyMap::ObjObj($m) => $body,
        }
    };
}
pub(crate) use dispatch;

/// Wraps a typed map into the enum.
macro_rules! impl_from { ($($v:ident: $k:ty, $e:ty;)*) => { $(impl From<Shared<$k, $e>> for AnyMap { fn from(s: Shared<$k, $e>) -> AnyMap { AnyMap::$v(s) } })* }; }
impl_from! {
    I64I64: i64, i64;
    I64F64: i64, f64;
    I64Obj: i64, Py<PyAny>;
    I32I64: i32, i64;
    I32F64: i32, f64;
    I32Obj: i32, Py<PyAny>;
    U64I64: u64, i64;
    U64F64: u64, f64;
    U64Obj: u64, Py<PyAny>;
    U32I64: u32, i64;
    U32F64: u32, f64;
    U32Obj: u32, Py<PyAny>;
    F64I64: f64, i64;
    F64F64: f64, f64;
    F64Obj: f64, Py<PyAny>;
    F32I64: f32, i64;
    F32F64: f32, f64;
    F32Obj: f32, Py<PyAny>;
    StrI64: Box<str>, i64;
    StrF64: Box<str>, f64;
    StrObj: Box<str>, Py<PyAny>;
    BytesI64: Box<[u8]>, i64;
    BytesF64: Box<[u8]>, f64;
    BytesObj: Box<[u8]>, Py<PyAny>;
    ObjI64: ObjKey, i64;
    ObjF64: ObjKey, f64;
    ObjObj: ObjKey, Py<PyAny>;
}
