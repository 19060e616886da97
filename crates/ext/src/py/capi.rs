//! C-API declarations that `pyo3-ffi` lacks, gated by the versions that export them.
//!
//! All are exported by libpython on the versions that use them (checked with `nm -D`, see
//! docs/threads.md#build-and-c-api-notes).

#[cfg(not(Py_3_12))]
use std::ffi::c_int;

use pyo3_ffi::{PyInterpreterState, PyThreadState};

extern "C" {
    /// 3.11's creation entry point; `isolated_subinterpreter` forbids threads, fork and
    /// subprocesses in the new interpreter. Returns its first thread state, current and holding
    /// the (shared) GIL, or NULL with an exception set.
    #[cfg(not(Py_3_12))]
    pub fn _Py_NewInterpreter(isolated_subinterpreter: c_int) -> *mut PyThreadState;

    /// The live interpreter with this id, or NULL with `RuntimeError` set. Takes the runtime's
    /// interpreter-list lock, so it is safe while other interpreters are being created.
    pub fn _PyInterpreterState_LookUpID(id: i64) -> *mut PyInterpreterState;

    /// Whether the interpreter is running its `__main__` (3.12's own notion of "running", kept
    /// by CPython's modules): how we see runs of interpreters we did not create.
    #[cfg(Py_3_12)]
    pub fn _PyInterpreterState_IsRunningMain(interp: *mut PyInterpreterState) -> std::ffi::c_int;

    /// Marks the interpreter of the current thread state as running its `__main__` (CPython's
    /// modules do so around each run); -1 with `RuntimeError` set if it is marked already.
    #[cfg(Py_3_12)]
    pub fn _PyInterpreterState_SetRunningMain(interp: *mut PyInterpreterState) -> std::ffi::c_int;

    /// Clears that mark; the thread state that set it must be current.
    #[cfg(Py_3_12)]
    pub fn _PyInterpreterState_SetNotRunningMain(interp: *mut PyInterpreterState);

    /// Queues `func(arg)` for `interp`, run by whichever of its threads checks for pending work
    /// next (`flags` 0; 3.12 names the argument `mainthreadonly`). Needs no GIL. Returns 0, or
    /// -1 when the interpreter's queue is full (3.13+ as an enum of the same values).
    #[cfg(Py_3_12)]
    pub fn _PyEval_AddPendingCall(
        interp: *mut PyInterpreterState,
        func: extern "C" fn(*mut std::ffi::c_void) -> std::ffi::c_int,
        arg: *mut std::ffi::c_void,
        flags: std::ffi::c_int,
    ) -> std::ffi::c_int;

    /// How the interpreter was created (`_PyInterpreterState_WHENCE_*`), 3.13+.
    #[cfg(Py_3_13)]
    pub fn _PyInterpreterState_GetWhence(interp: *mut PyInterpreterState) -> std::ffi::c_long;

    /// The GIL's switch interval in microseconds (3.11: one for the whole runtime). A plain
    /// read, needing no GIL.
    #[cfg(not(Py_3_12))]
    pub fn _PyEval_GetSwitchInterval() -> std::ffi::c_ulong;

    /// Whether the runtime is being finalized (3.11's name; 3.13 made it public).
    #[cfg(not(Py_3_12))]
    pub fn _Py_IsFinalizing() -> c_int;

    /// The current thread state or NULL, without the fatal error of `PyThreadState_Get`.
    #[cfg(not(Py_3_13))]
    #[link_name = "_PyThreadState_UncheckedGet"]
    pub fn current_tstate_unchecked() -> *mut PyThreadState;

    /// The current thread state or NULL, without the fatal error of `PyThreadState_Get`.
    #[cfg(Py_3_13)]
    #[link_name = "PyThreadState_GetUnchecked"]
    pub fn current_tstate_unchecked() -> *mut PyThreadState;
}

/// One entry of a heap type's slot table (`PyType_Spec.slots`); `type_slot(0, null)` ends it.
pub const fn type_slot(
    slot: std::ffi::c_int,
    pfunc: *mut std::ffi::c_void,
) -> pyo3_ffi::PyType_Slot {
    pyo3_ffi::PyType_Slot { slot, pfunc }
}
