//! Exposes PyO3's configuration cfgs (notably `Py_GIL_DISABLED` on free-threaded
//! CPython) to this crate, so code that relies on the GIL can say so.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
