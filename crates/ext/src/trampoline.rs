//! The entry guard for every `extern "C"` function: errors become Python exceptions and a Rust
//! panic becomes a `SystemError` instead of unwinding into C.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3_ffi as ffi;

use crate::error::{Error, Result};
use crate::module::ModState;

/// Runs `body`; on `Err` raises it (using `state` for the module's own classes) and returns
/// `on_error`, which must be the C API's error value for the slot (`NULL`, `-1`).
///
/// # Safety
/// The current thread must hold the GIL of the interpreter that `state` (if any) belongs to, and
/// `body` must leave that same thread state current when it returns or panics.
pub unsafe fn guard<R>(
    state: Option<&ModState>,
    on_error: R,
    body: impl FnOnce() -> Result<R>,
) -> R {
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return value,
        Ok(Err(err)) => err,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Error::System(format!(
                "subinterpreters: internal error (Rust panic): {what}"
            ))
        }
    };
    // SAFETY: the caller holds the GIL of `state`'s interpreter.
    unsafe { err.restore(state) };
    on_error
}

/// [`guard`] for functions returning an object: `NULL` on error.
///
/// # Safety
/// As for [`guard`].
pub unsafe fn guard_obj(
    state: Option<&ModState>,
    body: impl FnOnce() -> Result<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: forwarded contract.
    unsafe { guard(state, std::ptr::null_mut(), body) }
}
