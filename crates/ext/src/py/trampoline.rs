//! The entry guard for every `extern "C"` function: errors become Python exceptions and a Rust
//! panic becomes a `SystemError` instead of unwinding into C; a thread that CPython ends by
//! unwinding it (`pthread_exit` at finalization, 3.11-3.13) parks instead. Also the macros
//! that define module functions and methods (one shared prologue, [`enter_module`] or
//! [`enter_method`]) and the `PyMethodDef` rows each area lists them in.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3_ffi as ffi;

use crate::error::{Error, Result};
use crate::py::parked;
use crate::state::{state_of_module, ModState};

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
    let err = match catch_unwind(AssertUnwindSafe(|| {
        let hang = HangOnForcedUnwind;
        let result = call(body);
        std::mem::forget(hang);
        result
    })) {
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

/// Calls `body` as a call that may unwind, never inlined: its frame is where a forced unwind
/// coming out of CPython meets [`HangOnForcedUnwind`]'s landing pad.
#[inline(never)]
fn call<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Dropped only by unwinding (it is forgotten on return). A Rust panic passes on to
/// `catch_unwind`. Any other unwind is CPython 3.11-3.13 ending a daemon thread with
/// `pthread_exit` because it tried to take a GIL while the runtime finalizes: that unwind
/// must neither be caught (`catch_unwind` would abort the process: "FATAL: exception not
/// rethrown") nor reach an `extern "C"` frame (abort), and the thread holds no GIL, so it may
/// not touch Python either. It parks forever instead, as CPython 3.14 does with such threads
/// (and pyo3-ffi's `PyEval_RestoreThread`); the process exits around it.
struct HangOnForcedUnwind;

impl Drop for HangOnForcedUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        loop {
            std::thread::park();
        }
    }
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

/// The prologue of every module function: the module's state, after releasing the buffers
/// this interpreter shared and others dropped meanwhile.
///
/// # Safety
/// Called by an entry with the GIL held, `module` being our module.
pub unsafe fn enter_module<'a>(module: *mut ffi::PyObject) -> &'a ModState {
    // SAFETY: GIL held and `module` ours (contract).
    unsafe {
        parked::drain_current();
        state_of_module(module)
    }
}

/// The prologue of every method of our heap types, as [`enter_module`]: the state comes from
/// the class that defines the method, whatever subclass `self` belongs to, without walking the
/// MRO.
///
/// # Safety
/// Called by an entry with the GIL held, `defining_class` a type created by
/// `PyType_FromModuleAndSpec` with our module.
pub unsafe fn enter_method<'a>(defining_class: *mut ffi::PyTypeObject) -> &'a ModState {
    // SAFETY: GIL held; the defining class's module state is our ModState (contract).
    unsafe {
        parked::drain_current();
        &*ffi::PyType_GetModuleState(defining_class).cast::<ModState>()
    }
}

/// Defines a module function taking `(args, kwargs)`: an `extern "C"` entry whose body runs
/// under [`guard_obj`] with the module's state bound to `$state`.
macro_rules! kw_entry {
    ($(#[$doc:meta])* $name:ident, |$state:ident, $args:ident, $kwds:ident| $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by CPython with the GIL held, `module` being our module.
        pub unsafe extern "C" fn $name(
            module: *mut pyo3_ffi::PyObject,
            $args: *mut pyo3_ffi::PyObject,
            $kwds: *mut pyo3_ffi::PyObject,
        ) -> *mut pyo3_ffi::PyObject {
            // SAFETY: called by CPython with the GIL held; `module` is our module.
            unsafe {
                let $state = $crate::py::trampoline::enter_module(module);
                $crate::py::trampoline::guard_obj(Some($state), || $body)
            }
        }
    };
}

/// Defines a module function without arguments (`METH_NOARGS`), as [`kw_entry`] does.
macro_rules! noargs_entry {
    ($(#[$doc:meta])* $name:ident, |$state:ident| $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by CPython with the GIL held, `module` being our module.
        pub unsafe extern "C" fn $name(
            module: *mut pyo3_ffi::PyObject,
            _: *mut pyo3_ffi::PyObject,
        ) -> *mut pyo3_ffi::PyObject {
            // SAFETY: called by CPython with the GIL held; `module` is our module.
            unsafe {
                let $state = $crate::py::trampoline::enter_module(module);
                $crate::py::trampoline::guard_obj(Some($state), || $body)
            }
        }
    };
}

/// Defines a fastcall module function (`METH_FASTCALL | METH_KEYWORDS`), binding its
/// arguments as an [`crate::py::args::FastArgs`] to `$fa`, as [`kw_entry`] does.
macro_rules! fast_entry {
    ($(#[$doc:meta])* $name:ident, |$state:ident, $fa:ident| $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by CPython (fastcall) with the GIL held, `module` being our module.
        pub unsafe extern "C" fn $name(
            module: *mut pyo3_ffi::PyObject,
            args: *const *mut pyo3_ffi::PyObject,
            nargs: pyo3_ffi::Py_ssize_t,
            kwnames: *mut pyo3_ffi::PyObject,
        ) -> *mut pyo3_ffi::PyObject {
            // SAFETY: called by CPython with the GIL held; `module` is our module and the
            // argument pointers are valid for the call.
            unsafe {
                let $state = $crate::py::trampoline::enter_module(module);
                let $fa = $crate::py::args::FastArgs::new(args, nargs, kwnames);
                $crate::py::trampoline::guard_obj(Some($state), || $body)
            }
        }
    };
}

/// Defines a method of one of our heap types with the defining-class calling convention
/// (`METH_METHOD | METH_FASTCALL | METH_KEYWORDS`), binding the module state, `self` and the
/// arguments, as [`fast_entry`] does.
macro_rules! method_entry {
    ($(#[$doc:meta])* $name:ident, |$state:ident, $slf:ident, $fa:ident| $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by CPython (`METH_METHOD` fastcall) with the GIL held, `defining_class` being
        /// a type created by `PyType_FromModuleAndSpec` with our module.
        pub unsafe extern "C" fn $name(
            $slf: *mut pyo3_ffi::PyObject,
            defining_class: *mut pyo3_ffi::PyTypeObject,
            args: *const *mut pyo3_ffi::PyObject,
            nargs: pyo3_ffi::Py_ssize_t,
            kwnames: *mut pyo3_ffi::PyObject,
        ) -> *mut pyo3_ffi::PyObject {
            // SAFETY: called by CPython with the GIL held; `defining_class` is one of our types;
            // the argument pointers are valid for the call.
            unsafe {
                let $state = $crate::py::trampoline::enter_method(defining_class);
                let $fa = $crate::py::args::FastArgs::new(args, nargs, kwnames);
                $crate::py::trampoline::guard_obj(Some($state), || $body)
            }
        }
    };
}

/// A `PyMethodDef` row of an area's method table, by calling convention: `kw` for a
/// [`kw_entry`], `fast` for a [`fast_entry`], `noargs` for a [`noargs_entry`].
macro_rules! method_def {
    (kw $name:literal, $func:path, $doc:literal) => {
        pyo3_ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: pyo3_ffi::PyMethodDefPointer {
                PyCFunctionWithKeywords: $func,
            },
            ml_flags: pyo3_ffi::METH_VARARGS | pyo3_ffi::METH_KEYWORDS,
            ml_doc: $doc.as_ptr(),
        }
    };
    (fast $name:literal, $func:path, $doc:literal) => {
        pyo3_ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: pyo3_ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: $func,
            },
            ml_flags: pyo3_ffi::METH_FASTCALL | pyo3_ffi::METH_KEYWORDS,
            ml_doc: $doc.as_ptr(),
        }
    };
    (noargs $name:literal, $func:path, $doc:literal) => {
        pyo3_ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: pyo3_ffi::PyMethodDefPointer { PyCFunction: $func },
            ml_flags: pyo3_ffi::METH_NOARGS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

pub(crate) use {fast_entry, kw_entry, method_def, method_entry, noargs_entry};
