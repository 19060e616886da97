//! The small unsafe vocabulary every other module is written in: owned references, the
//! thread-state switches, the trampoline for `extern "C"` entries, argument parsing, the C-API
//! declarations `pyo3-ffi` lacks, and the one file that knows how CPython versions differ.

pub(crate) mod args;
pub(crate) mod capi;
pub(crate) mod heap_type;
pub(crate) mod parked;
pub(crate) mod pyref;
pub(crate) mod text;
pub(crate) mod trampoline;
pub(crate) mod tstate;
pub(crate) mod version;
