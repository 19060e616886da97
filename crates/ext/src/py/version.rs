//! Every difference between the CPython versions we build for, in one file: adding a version
//! means reading this file against the new release and changing it (and `capi.rs` when a new
//! declaration is needed), nothing else.
//!
//! What differs, and since when:
//! - **3.11**: one GIL shared by every interpreter. We move between interpreters by swapping
//!   thread states and never release and re-take that GIL (that hangs). The current thread
//!   state is runtime-wide, which tells a thread without the GIL whether it is held.
//!   Interpreters are made by `_Py_NewInterpreter(isolated)`. Exceptions are a (type, value, traceback) triple, the value
//!   possibly unnormalized. An interpreter with a thread of its own running user code counts as
//!   running when one of its thread states has a frame; `destroy`/`is_running`/`run_string`
//!   refuse an interpreter with threads other than ours ("more than one thread").
//! - **3.12**: each isolated interpreter has its own GIL: we detach from the caller's before
//!   attaching to the target's. Each interpreter has its own pending calls, run by any of its
//!   threads (how `interrupt()` reaches a run; on 3.11 it visits the interpreter instead). Interpreters are made from a `PyInterpreterConfig`. Exceptions
//!   are single objects, normalized when raised. CPython keeps a "running main" flag per
//!   interpreter, which is how we see runs of interpreters we did not make. The module declares
//!   per-interpreter-GIL support with `Py_mod_multiple_interpreters`.
//!   Its `pickle.loads(..., buffers=...)` corrupts the heap when run in a subinterpreter (an
//!   abort at exit, seen on 3.12.1 even with an empty list); we could not tell which 3.12
//!   release fixed that, so no 3.12 uses out-of-band pickle buffers.
//! - **3.13**: the argument parser's keyword list became `const` and its wording for an unknown
//!   keyword changed (we put 3.11's back). `threading` no longer needs our shutdown fix before
//!   an interpreter is finalized from another OS thread (CPython gh-122517 is fixed there).
//! - **3.14, 3.15**: reviewed against everything this crate calls: the thread-state and
//!   interpreter functions, `PyInterpreterConfig` (same fields), the private
//!   `_PyInterpreterState_LookUpID`/`_PyInterpreterState_IsRunningMain` exports (still there)
//!   and `PyThreadState_GetUnchecked` behave as in 3.13, so they take 3.13's branches. What
//!   changed for users (wording of some CPython errors, no `__annotations__` in a fresh
//!   `__main__`) is CPython's own text and passes through unchanged.
//! - **Running marks (3.12+)**: CPython's modules mark an interpreter as running its
//!   `__main__` for each run and refuse to run or destroy a marked one; we set the same mark
//!   around our runs (`mark_running`) and honour theirs. 3.11 has no mark (a frame on one of
//!   its thread states is the sign). From 3.13 an interpreter made by someone else has no
//!   thread state at rest (`FOREIGN_KEEPS_CREATION_TSTATE`).

use std::ffi::c_char;

use pyo3_ffi as ffi;

use crate::py::capi;
use crate::py::pyref::PyRef;

/// Whether interpreters can have their own GIL (3.12+): switching then releases the caller's.
pub(crate) const OWN_GIL: bool = cfg!(Py_3_12);

/// Whether 3.11's "interpreter has more than one thread" rule applies to `destroy`,
/// `is_running` and `run_string`.
pub(crate) const SINGLE_THREAD_RULE: bool = !cfg!(Py_3_12);

/// 3.11: the thread that made an interpreter of ours runs code there on its keeper (see
/// `interp/thread_cache.rs`); 3.12+, where CPython's own module may attach any existing thread
/// state of an interpreter, every thread uses its own.
pub(crate) const RUN_ON_KEEPER: bool = !cfg!(Py_3_12);

/// Whether pickled values may carry out-of-band buffers (`buffer_callback=` when pickling,
/// `buffers=` when unpickling). Not on 3.12: its `pickle.loads(..., buffers=...)` corrupts the
/// heap in a subinterpreter (3.12.1 aborts at exit; the release that fixed it, if any, is not
/// known to us, so the whole series pickles in band: such buffers are copied).
pub(crate) const PICKLE_OUT_OF_BAND: bool = !cfg!(Py_3_12) || cfg!(Py_3_13);

/// Whether `threading` must be made to believe the finalizing OS thread is its main thread
/// before an interpreter is finalized (CPython gh-122517, fixed in 3.13).
pub(crate) const THREADING_SHUTDOWN_FIX: bool = !cfg!(Py_3_13);

/// `Py_AddPendingCall` queues its call for the main interpreter's main thread, whichever
/// interpreter the caller is in (3.12+). On 3.11 it targets the caller's current interpreter, so
/// it cannot reach the main interpreter from a subinterpreter.
pub(crate) const PENDING_CALLS_RUN_IN_MAIN: bool = cfg!(Py_3_12);

/// Queues `func(arg)` to run in `interp` at its next check between bytecodes, on whichever of
/// its threads gets there first (3.12+: each interpreter has its own pending calls, which any
/// of its threads runs). False if the queue is full. On 3.11 pending calls are run by the main
/// thread only, so callers never use this there (and it answers false).
///
/// # Safety
/// `interp` is alive for the duration of the call.
pub(crate) unsafe fn add_pending_call(
    interp: crate::py::tstate::InterpPtr,
    func: extern "C" fn(*mut std::ffi::c_void) -> std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) -> bool {
    #[cfg(Py_3_12)]
    // SAFETY: alive (contract); the call takes the interpreter's own pending-call lock.
    return unsafe { capi::_PyEval_AddPendingCall(interp.0, func, arg, 0) } == 0;
    #[cfg(not(Py_3_12))]
    {
        let _ = (interp, func, arg);
        false
    }
}

/// Whether the argument parser words an unknown keyword the 3.13 way (we restore 3.11's).
pub(crate) const REWORD_UNKNOWN_KEYWORD: bool = cfg!(Py_3_13);

/// The module slot declaring per-interpreter GIL support; on 3.11, where the slot does not
/// exist, an end-of-list marker (so the slot table simply ends one entry early).
pub(crate) const MULTIPLE_INTERPRETERS_SLOT: ffi::PyModuleDef_Slot = ffi::PyModuleDef_Slot {
    #[cfg(Py_3_12)]
    slot: ffi::Py_mod_multiple_interpreters,
    #[cfg(Py_3_12)]
    value: ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
    #[cfg(not(Py_3_12))]
    slot: 0,
    #[cfg(not(Py_3_12))]
    value: std::ptr::null_mut(),
};

/// The keyword-name list as `PyArg_ParseTupleAndKeywords` takes it on this version.
#[cfg(not(Py_3_13))]
pub(crate) type KeywordList = *mut *mut c_char;
/// The keyword-name list as `PyArg_ParseTupleAndKeywords` takes it on this version.
#[cfg(Py_3_13)]
pub(crate) type KeywordList = *const *const c_char;

/// `kw` (NULL-terminated) in the parser's pointer type.
pub(crate) fn keyword_list(kw: &mut [*mut c_char]) -> KeywordList {
    kw.as_mut_ptr().cast()
}

/// Detaches the current thread state (3.12+: releasing its GIL; 3.11: only unsetting it, the
/// shared GIL stays with this thread).
///
/// # Safety
/// A thread state must be current.
pub(crate) unsafe fn detach() {
    // SAFETY: a thread state is current, by contract.
    unsafe {
        #[cfg(not(Py_3_12))]
        ffi::PyThreadState_Swap(std::ptr::null_mut());
        #[cfg(Py_3_12)]
        ffi::PyEval_SaveThread();
    }
}

/// Makes `ts` current (3.12+: taking its interpreter's GIL; 3.11: the shared GIL is already
/// this thread's).
///
/// # Safety
/// No thread state may be current; on 3.11 this thread must hold the shared GIL; `ts` must be
/// alive and not current on another thread.
pub(crate) unsafe fn attach(ts: *mut ffi::PyThreadState) {
    // SAFETY: no thread state is current, by contract.
    unsafe {
        #[cfg(not(Py_3_12))]
        ffi::PyThreadState_Swap(ts);
        #[cfg(Py_3_12)]
        ffi::PyEval_RestoreThread(ts);
    }
}

/// How long [`before_taking_gil`] waits at most.
#[cfg(not(Py_3_12))]
const GIL_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// How long the GIL's holder takes from clearing the current thread state to unlocking the GIL.
#[cfg(not(Py_3_12))]
const GIL_HANDOVER: std::time::Duration = std::time::Duration::from_micros(2);

/// Called with no GIL held right before taking it back: on 3.11, waits a little (spinning, at
/// most [`GIL_SPIN`]) while another thread holds the one shared GIL. Taking a held GIL puts
/// the taker to sleep on its condition variable, and on a virtual machine waking a thread
/// that slept costs tens of microseconds; the holder is often about to let go (an event loop
/// on its way to `epoll_wait` after queueing a task). On 3.11 the current thread state is
/// runtime-wide, so whether it is set tells whether a thread holds the GIL. No-op on 3.12+,
/// where it is per thread and each interpreter has its own GIL.
pub(crate) fn before_taking_gil() {
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: on 3.11 this is an atomic read of the runtime's current thread state, which
        // any thread may do without the GIL.
        let held = || !unsafe { capi::current_tstate_unchecked() }.is_null();
        if !held() {
            return;
        }
        let start = std::time::Instant::now();
        while held() && start.elapsed() < GIL_SPIN {
            std::thread::yield_now();
        }
        // The holder clears the current thread state first and unlocks the GIL right after:
        // give it that moment, or we would find the GIL still locked and sleep after all.
        let cleared = std::time::Instant::now();
        while cleared.elapsed() < GIL_HANDOVER {
            std::hint::spin_loop();
        }
    }
}

/// Creates an interpreter and returns its first thread state, current and holding the new
/// interpreter's GIL, or NULL (CPython then puts the caller's thread state back, with or
/// without an exception set). Isolated: own GIL and the isolated config on 3.12+, 3.11's
/// restricted mode (no threads, fork or subprocesses) on 3.11.
///
/// # Safety
/// The current thread must hold the GIL of its current thread state.
pub(crate) unsafe fn new_interpreter(isolated: bool) -> *mut ffi::PyThreadState {
    // SAFETY: GIL held (contract); CPython's own creation entry points.
    unsafe {
        #[cfg(not(Py_3_12))]
        let ts = capi::_Py_NewInterpreter(std::ffi::c_int::from(isolated));
        #[cfg(Py_3_12)]
        let ts = {
            let config = if isolated {
                ffi::_PyInterpreterConfig_INIT
            } else {
                ffi::_PyInterpreterConfig_LEGACY_INIT
            };
            let mut ts: *mut ffi::PyThreadState = std::ptr::null_mut();
            let status = ffi::Py_NewInterpreterFromConfig(&mut ts, &config);
            if ffi::PyStatus_Exception(status) != 0 {
                ts = std::ptr::null_mut();
            }
            ts
        };
        ts
    }
}

/// Makes a thread state of `interp` current in place of `caller`: `reuse` if given, else a new
/// one, which is returned.
///
/// # Safety
/// `caller` must be current, holding its GIL; `interp` alive; `reuse` idle and of `interp`.
pub(crate) unsafe fn switch_to(
    interp: *mut ffi::PyInterpreterState,
    reuse: Option<*mut ffi::PyThreadState>,
) -> *mut ffi::PyThreadState {
    // SAFETY: (whole body) the version's switching sequence; see the module docs. On 3.12+ the
    // visitor is made after detaching, so that creating it never waits for the target's GIL
    // while holding the caller's.
    unsafe {
        #[cfg(not(Py_3_12))]
        {
            let visitor = reuse.unwrap_or_else(|| ffi::PyThreadState_New(interp));
            ffi::PyThreadState_Swap(visitor);
            visitor
        }
        #[cfg(Py_3_12)]
        {
            ffi::PyEval_SaveThread();
            let visitor = reuse.unwrap_or_else(|| ffi::PyThreadState_New(interp));
            ffi::PyEval_RestoreThread(visitor);
            visitor
        }
    }
}

/// Clears and deletes the current thread state `visitor`, then makes `caller` current again.
///
/// # Safety
/// `visitor` must be current, with no frame, holding its GIL; `caller` idle and alive.
pub(crate) unsafe fn delete_visitor(
    visitor: *mut ffi::PyThreadState,
    caller: *mut ffi::PyThreadState,
) {
    // SAFETY: clearing needs the visitor current on 3.12+; 3.11 deletes it after the switch
    // back (its PyThreadState_Delete refuses the current one), 3.12+ deletes it as current.
    unsafe {
        ffi::PyThreadState_Clear(visitor);
        #[cfg(not(Py_3_12))]
        {
            ffi::PyThreadState_Swap(caller);
            ffi::PyThreadState_Delete(visitor);
        }
        #[cfg(Py_3_12)]
        {
            ffi::PyThreadState_DeleteCurrent();
            ffi::PyEval_RestoreThread(caller);
        }
    }
}

/// Whether an interpreter we did not make is running code: 3.11 asks whether one of its thread
/// states has a frame (3.11's own test); 3.12+ reads CPython's "running main" flag, because
/// another interpreter's thread list and frames are not ours to walk under another GIL.
///
/// # Safety
/// GIL held; `interp` alive.
pub(crate) unsafe fn foreign_running(interp: *mut ffi::PyInterpreterState) -> bool {
    // SAFETY: 3.11: walking the thread list under the one GIL that guards it;
    // PyThreadState_GetFrame returns a new reference or NULL, released at once. 3.12+: a flag
    // CPython's own modules read the same way.
    unsafe {
        #[cfg(not(Py_3_12))]
        {
            let mut ts = ffi::PyInterpreterState_ThreadHead(interp);
            while !ts.is_null() {
                let frame = ffi::PyThreadState_GetFrame(ts);
                let busy = !frame.is_null();
                ffi::Py_XDECREF(frame.cast());
                if busy {
                    return true;
                }
                ts = ffi::PyThreadState_Next(ts);
            }
            false
        }
        #[cfg(Py_3_12)]
        {
            capi::_PyInterpreterState_IsRunningMain(interp) != 0
        }
    }
}

/// Marks `interp`, whose thread state is current on this thread, as running its `__main__`
/// the way CPython's own interpreter modules do around each of their runs (3.12+), so that
/// they see our runs: their `is_running()` says so and their `destroy()`/`exec()` refuse it.
/// Returns false, with nothing set, if it is marked already (CPython's module is running
/// it). 3.11 keeps no such mark: always true.
///
/// # Safety
/// GIL held by a thread state of `interp`, current on this thread.
pub(crate) unsafe fn mark_running(interp: *mut ffi::PyInterpreterState) -> bool {
    #[cfg(Py_3_12)]
    // SAFETY: the current thread state belongs to `interp` (contract), which is what the call
    // requires; the error it sets when the mark is taken is cleared (the caller reports it).
    unsafe {
        if capi::_PyInterpreterState_SetRunningMain(interp) < 0 {
            ffi::PyErr_Clear();
            return false;
        }
    }
    #[cfg(not(Py_3_12))]
    let _ = interp;
    true
}

/// Whether `interp` carries CPython's "running `__main__`" mark (3.12+; set by CPython's
/// modules or by our own runs). Always false on 3.11, which keeps no mark.
///
/// # Safety
/// `interp` alive. A plain read of a field another interpreter's thread may change (CPython's
/// modules read it the same way, under another GIL).
pub(crate) unsafe fn marked_running(interp: *mut ffi::PyInterpreterState) -> bool {
    #[cfg(Py_3_12)]
    // SAFETY: `interp` alive (contract).
    let marked = unsafe { capi::_PyInterpreterState_IsRunningMain(interp) != 0 };
    #[cfg(not(Py_3_12))]
    let marked = {
        let _ = interp;
        false
    };
    marked
}

/// Clears the mark [`mark_running`] set.
///
/// # Safety
/// The same thread state as when it was set is current, holding `interp`'s GIL.
pub(crate) unsafe fn unmark_running(interp: *mut ffi::PyInterpreterState) {
    #[cfg(Py_3_12)]
    // SAFETY: forwarded contract.
    unsafe {
        capi::_PyInterpreterState_SetNotRunningMain(interp)
    };
    #[cfg(not(Py_3_12))]
    let _ = interp;
}

/// Whether CPython's own module runs and finalizes an interpreter it did not make on the
/// thread state left from its creation (3.11, 3.12: we then do the same), or leaves none and
/// makes a fresh one for each use (3.13+: a thread state found there belongs to a thread
/// using it right now, never ours to take).
pub(crate) const FOREIGN_KEEPS_CREATION_TSTATE: bool = !cfg!(Py_3_13);

/// A pending exception taken out of the thread state.
pub(crate) struct Fetched {
    /// Its type.
    pub(crate) tp: PyRef,
    /// The exception instance (normalized, with its traceback attached), if there is one.
    pub(crate) value: Option<PyRef>,
    /// 3.11 only: the value as raised, before normalization (an argument tuple, a string, or
    /// nothing), which is what 3.11's messages show. `None` on 3.12+, where exceptions are
    /// normalized when raised.
    pub(crate) raw: Option<Option<PyRef>>,
}

/// Takes the pending exception, if any, normalized.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn fetch_exception() -> Option<Fetched> {
    // SAFETY: (whole body) GIL held; each reference taken is owned by a PyRef.
    unsafe {
        #[cfg(not(Py_3_12))]
        {
            let (mut t, mut v, mut tb) = (
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
            if t.is_null() {
                ffi::Py_XDECREF(v);
                ffi::Py_XDECREF(tb);
                return None;
            }
            let raw = (!v.is_null()).then(|| PyRef::from_borrowed(v));
            ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
            if !tb.is_null() && !v.is_null() {
                ffi::PyException_SetTraceback(v, tb);
            }
            ffi::Py_XDECREF(tb);
            Some(Fetched {
                tp: PyRef::from_owned(t).ok()?,
                value: PyRef::from_owned(v).ok(),
                raw: Some(raw),
            })
        }
        #[cfg(Py_3_12)]
        {
            let exc = PyRef::from_owned(ffi::PyErr_GetRaisedException()).ok()?;
            Some(Fetched {
                tp: PyRef::from_borrowed(ffi::Py_TYPE(exc.as_ptr()).cast()),
                value: Some(exc),
                raw: None,
            })
        }
    }
}

/// A pending exception set aside untouched (not normalized), to be put back later.
pub(crate) struct Saved {
    #[cfg(not(Py_3_12))]
    triple: [*mut ffi::PyObject; 3],
    #[cfg(Py_3_12)]
    exc: *mut ffi::PyObject,
}

/// Sets the pending exception (if any) aside, leaving none pending.
///
/// # Safety
/// GIL held; the result must be given to [`restore_saved`] on this thread.
pub(crate) unsafe fn save_exception() -> Saved {
    // SAFETY: GIL held; the references move into `Saved` until `restore_saved`.
    unsafe {
        #[cfg(not(Py_3_12))]
        {
            let [mut t, mut v, mut tb] = [std::ptr::null_mut(); 3];
            ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
            Saved { triple: [t, v, tb] }
        }
        #[cfg(Py_3_12)]
        {
            Saved {
                exc: ffi::PyErr_GetRaisedException(),
            }
        }
    }
}

/// Puts back what [`save_exception`] set aside, replacing anything pending since.
///
/// # Safety
/// GIL held, on the thread that saved it.
pub(crate) unsafe fn restore_saved(saved: Saved) {
    // SAFETY: GIL held; the references move back into the thread state.
    unsafe {
        #[cfg(not(Py_3_12))]
        {
            let [t, v, tb] = saved.triple;
            ffi::PyErr_Restore(t, v, tb);
        }
        #[cfg(Py_3_12)]
        ffi::PyErr_SetRaisedException(saved.exc);
    }
}

/// Sets `fetched` as the pending exception again.
///
/// # Safety
/// GIL held; no exception pending.
pub(crate) unsafe fn restore_exception(fetched: Fetched) {
    // SAFETY: GIL held; the references are handed over to the thread state.
    unsafe {
        #[cfg(not(Py_3_12))]
        ffi::PyErr_Restore(
            fetched.tp.into_ptr(),
            fetched.value.map_or(std::ptr::null_mut(), PyRef::into_ptr),
            std::ptr::null_mut(),
        );
        #[cfg(Py_3_12)]
        {
            drop(fetched.tp);
            if let Some(v) = fetched.value {
                ffi::PyErr_SetRaisedException(v.into_ptr());
            }
        }
    }
}

/// How CPython says an interpreter we did not make came to be (`_interpreters.WHENCE_*`
/// numbering); 3.11 and 3.12 do not record it (0, unknown).
///
/// # Safety
/// GIL held; `interp` alive.
pub(crate) unsafe fn whence(interp: *mut ffi::PyInterpreterState) -> i64 {
    // `c_long` is 32 bits on some platforms, so the conversion is not always the identity.
    #[cfg(Py_3_13)]
    #[allow(clippy::useless_conversion)]
    // SAFETY: a read of a field CPython sets at creation; `interp` alive (contract).
    let code = i64::from(unsafe { capi::_PyInterpreterState_GetWhence(interp) });
    #[cfg(not(Py_3_13))]
    let code = {
        let _ = interp;
        0
    };
    code
}
