//! `subinterpreters.lowlevel`: CPython 3.11's `_xxsubinterpreters` API as an isolated,
//! multi-phase extension module on raw `pyo3-ffi`.
//!
//! Layers, bottom up: the small unsafe vocabulary ([`pyref`], [`tstate`], [`trampoline`],
//! [`args`], [`capi`]); conversions and errors ([`convert`], [`error`]); the Python-facing
//! areas ([`interpreters`], [`interp_id`], [`channel_id`]); and [`module`], which ties them into
//! a module object. Process-global state lives in [`interp_registry`] (interpreters) and in the
//! core crate (channels).

pub mod args;
pub mod capi;
pub mod channel_id;
pub mod channels;
pub mod convert;
pub mod error;
pub mod id_slots;
pub mod interp_id;
pub mod interp_registry;
pub mod interpreters;
pub mod module;
pub mod pyref;
pub mod run;
pub mod thread_cache;
pub mod trampoline;
pub mod tstate;

pub use subinterpreters_core::Value;

use pyo3_ffi as ffi;

/// The module's entry point: hands CPython the definition for multi-phase initialisation.
///
/// # Safety
/// Called by CPython's import machinery with the GIL held.
#[allow(non_snake_case)]
#[no_mangle]
pub unsafe extern "C" fn PyInit_lowlevel() -> *mut ffi::PyObject {
    // SAFETY: MODULE_DEF is a static that lives for the whole process; CPython initialises its
    // base on first use, under the import lock.
    unsafe { ffi::PyModuleDef_Init(&raw mut module::MODULE_DEF) }
}
