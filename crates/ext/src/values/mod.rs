//! What crosses between interpreters: Python objects to core `Value`s and back (3.11's set in
//! `convert`, PEP 734's in `xi`, ordinary data without pickle in `codec`, zero-copy buffers in
//! `shared`), and the conversion of ID arguments.

use crate::py::trampoline::method_def;

/// The module functions of this area, added to each module object by `module.rs`.
pub(crate) static mut METHODS: [pyo3_ffi::PyMethodDef; 3] = [
    method_def!(fast c"_dumps", codec::dumps_fn, c"_dumps(obj) -> bytes (private): obj in the native format if it is ordinary data, else\npickle.dumps(obj, 5)."),
    method_def!(fast c"_loads", codec::loads_fn, c"_loads(data) -> obj (private): the object _dumps() gave data for."),
    pyo3_ffi::PyMethodDef::zeroed(),
];

pub(crate) mod channel;
pub(crate) mod codec;
pub(crate) mod convert;
pub(crate) mod shared;
pub(crate) mod xi;
