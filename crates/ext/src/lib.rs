//! `subinterpreters.lowlevel`: CPython 3.11's `_xxsubinterpreters` API as an isolated,
//! multi-phase extension module on raw `pyo3-ffi`.
//!
//! The rooms, bottom up; each uses only rooms below it (`scripts/check_layers.py` checks):
//! [`state`] is the per-interpreter module state; [`error`] the one place Rust errors become
//! Python exceptions; [`py`] the small unsafe vocabulary for talking to CPython (owned
//! references, thread-state switches, the trampoline and entry macros, argument parsing, text,
//! heap types, parked buffers, and [`py::version`], the one file that knows how CPython
//! versions differ); [`id_slots`] what both ID types share; [`values`] what crosses between
//! interpreters; [`queues`], [`interp`] and [`chan`] the Python-facing areas, each with its
//! method table; [`module`] assembles them into a module object. Process-global state lives in
//! [`interp::registry`] (interpreters) and in the core crate
//! (channels, queues).

pub(crate) mod chan;
pub(crate) mod error;
pub(crate) mod id_slots;
pub(crate) mod interp;
pub(crate) mod module;
pub(crate) mod py;
pub(crate) mod queues;
pub(crate) mod state;
pub(crate) mod values;

/// The module's entry point: hands CPython the definition for multi-phase initialisation.
///
/// # Safety
/// Called by CPython's import machinery with the GIL held.
#[allow(non_snake_case)]
#[no_mangle]
pub unsafe extern "C" fn PyInit_lowlevel() -> *mut pyo3_ffi::PyObject {
    // SAFETY: called by CPython's import machinery with the GIL held (this function's contract).
    unsafe { module::init() }
}
