//! Emits the `Py_3_12`/`Py_3_13` cfgs for the Python being built against.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
