fn main() {
    // Exposes `Py_3_11`, `Py_3_12`… cfgs so version-specific frame layouts
    // can be selected at compile time.
    pyo3_build_config::use_pyo3_cfgs();
}
