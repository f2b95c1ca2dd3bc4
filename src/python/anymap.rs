//! The key kind × value kind table, said once.
//!
//! Every engine the Python layer exposes (`Map`'s [`Shared`], and any other typed
//! engine) is monomorphised per key kind × value kind, and the Python class holds
//! an enum with one variant per pair. [`with_kinds!`] is the only list of those
//! pairs; [`engine_enum!`] declares such an enum (and `From` for each variant),
//! [`dispatch!`] runs code on whichever variant is there, and [`construct!`] picks
//! the variant from the kind names. Adding a kind means adding one line to
//! `with_kinds!`.

use super::map::Shared;

/// Calls `$callback! { { $args } Variant KeyType, ValueType, "key", "value"; ... }`
/// with the whole table.
macro_rules! with_kinds {
    ($callback:ident ! { $($args:tt)* }) => {
        $crate::python::anymap::$callback! { { $($args)* }
            I64I64 i64, i64, "int64", "int64";
            I64F64 i64, f64, "int64", "float64";
            I64Obj i64, ::pyo3::Py<::pyo3::PyAny>, "int64", "object";
            I32I64 i32, i64, "int32", "int64";
            I32F64 i32, f64, "int32", "float64";
            I32Obj i32, ::pyo3::Py<::pyo3::PyAny>, "int32", "object";
            U64I64 u64, i64, "uint64", "int64";
            U64F64 u64, f64, "uint64", "float64";
            U64Obj u64, ::pyo3::Py<::pyo3::PyAny>, "uint64", "object";
            U32I64 u32, i64, "uint32", "int64";
            U32F64 u32, f64, "uint32", "float64";
            U32Obj u32, ::pyo3::Py<::pyo3::PyAny>, "uint32", "object";
            F64I64 f64, i64, "float64", "int64";
            F64F64 f64, f64, "float64", "float64";
            F64Obj f64, ::pyo3::Py<::pyo3::PyAny>, "float64", "object";
            F32I64 f32, i64, "float32", "int64";
            F32F64 f32, f64, "float32", "float64";
            F32Obj f32, ::pyo3::Py<::pyo3::PyAny>, "float32", "object";
            StrI64 Box<str>, i64, "string", "int64";
            StrF64 Box<str>, f64, "string", "float64";
            StrObj Box<str>, ::pyo3::Py<::pyo3::PyAny>, "string", "object";
            BytesI64 Box<[u8]>, i64, "bytes", "int64";
            BytesF64 Box<[u8]>, f64, "bytes", "float64";
            BytesObj Box<[u8]>, ::pyo3::Py<::pyo3::PyAny>, "bytes", "object";
            ObjI64 $crate::python::convert::ObjKey, i64, "object", "int64";
            ObjF64 $crate::python::convert::ObjKey, f64, "object", "float64";
            ObjObj $crate::python::convert::ObjKey, ::pyo3::Py<::pyo3::PyAny>, "object", "object";
        }
    };
}
pub(crate) use with_kinds;

/// `engine_enum!(pub enum Name, Engine)`: an enum with one `Engine<K, V>` variant
/// per pair of the table, and `From<Engine<K, V>>` for each.
macro_rules! engine_enum {
    ($vis:vis enum $name:ident, $engine:ident) => {
        $crate::python::anymap::with_kinds! { engine_enum_impl! { $vis $name $engine } }
    };
}
macro_rules! engine_enum_impl {
    ({ $vis:vis $name:ident $engine:ident } $($v:ident $k:ty, $e:ty, $kn:literal, $en:literal;)*) => {
        /// One typed engine, for every key kind × value kind.
        $vis enum $name {
            $($v($engine<$k, $e>),)*
        }
        $(impl From<$engine<$k, $e>> for $name {
            fn from(x: $engine<$k, $e>) -> $name {
                $name::$v(x)
            }
        })*
    };
}
#[allow(unused_imports)] // used by the engines of other modules
pub(crate) use {engine_enum, engine_enum_impl};

/// `dispatch!(Enum, value, m => body)`: runs `body` with `m` bound to the typed
/// engine inside `value`, monomorphised per kind.
macro_rules! dispatch {
    ($name:ident, $inner:expr, $m:ident => $body:expr) => {
        $crate::python::anymap::with_kinds! { dispatch_impl! { $name, $inner, $m, $body } }
    };
}
macro_rules! dispatch_impl {
    ({ $name:ident, $inner:expr, $m:ident, $body:expr } $($v:ident $k:ty, $e:ty, $kn:literal, $en:literal;)*) => {
        match $inner {
            $($name::$v($m) => $body,)*
        }
    };
}
pub(crate) use {dispatch, dispatch_impl};

/// `construct!(Enum, key_kind, value_kind, <K, V> => expr)`: evaluates `expr`
/// with the type names `K` and `V` bound to the kinds named by the two strings,
/// and wraps it in the enum; `None` for an unknown pair.
macro_rules! construct {
    ($name:ident, $key:expr, $value:expr, <$K:ident, $V:ident> => $make:expr) => {
        $crate::python::anymap::with_kinds! { construct_impl! { $name, $key, $value, $K, $V, $make } }
    };
}
macro_rules! construct_impl {
    ({ $name:ident, $key:expr, $value:expr, $K:ident, $V:ident, $make:expr }
     $($v:ident $k:ty, $e:ty, $kn:literal, $en:literal;)*) => {
        match ($key, $value) {
            $(($kn, $en) => {
                #[allow(dead_code)]
                type $K = $k;
                #[allow(dead_code)]
                type $V = $e;
                Some($name::$v($make))
            })*
            _ => None,
        }
    };
}
pub(crate) use {construct, construct_impl};

engine_enum!(pub enum AnyMap, Shared);
