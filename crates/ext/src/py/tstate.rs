//! Thread-state choreography: creating an interpreter, running code in one, finalizing one.
//!
//! These are the only functions that change the current thread state ([`Away`] and [`detached`]
//! step away from the caller's GIL for waits). Each restores the caller's thread state on every
//! path (an RAII guard does it for [`enter`]). How a switch is done differs by version; those
//! primitives live in [`crate::py::version`]. What runs inside an interpreter being finalized
//! (the snippets joining or stopping its threads) is the caller's (`interp/lifecycle.rs`).
//!
//! An interpreter's first thread state (the "keeper") is kept for its whole life and used only to
//! finalize it; code runs on fresh thread states.

use pyo3_ffi as ffi;
use subinterpreters_core::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::py::capi;
use crate::py::version;

/// An interpreter pointer that may be stored in process-global state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterpPtr(pub *mut ffi::PyInterpreterState);

// SAFETY: the pointer is only dereferenced by CPython while the interpreter is alive; the
// registry stops handing it out (under its lock) before the interpreter is finalized.
unsafe impl Send for InterpPtr {}

/// A thread-state pointer that may be stored in process-global state (the keeper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TStatePtr(pub *mut ffi::PyThreadState);

// SAFETY: a keeper is made current only by `end_interpreter`, which the registry lets exactly one
// thread call per interpreter, once.
unsafe impl Send for TStatePtr {}

/// The interpreter of the current thread state.
///
/// # Safety
/// The current thread must have a current thread state.
pub unsafe fn current_interp() -> InterpPtr {
    // SAFETY: a current thread state exists by contract.
    InterpPtr(unsafe { ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get()) })
}

/// The runtime id of an interpreter.
///
/// # Safety
/// `interp` must be alive.
pub unsafe fn interp_id(interp: InterpPtr) -> i64 {
    // SAFETY: alive by contract.
    unsafe { ffi::PyInterpreterState_GetID(interp.0) }
}

/// The main interpreter.
pub fn main_interp() -> InterpPtr {
    // SAFETY: the main interpreter outlives every call into this module.
    InterpPtr(unsafe { ffi::PyInterpreterState_Main() })
}

/// Serializes our own creations and finalizations of interpreters against walks of the
/// runtime's interpreter list (`list_all`). On 3.12+ interpreters with their own GIL run in
/// parallel and the list's own lock is private to CPython, so a walk could otherwise step on an
/// interpreter being freed. On 3.11 the one GIL already serializes all of this.
static INTERP_LIST: RwLock<()> = RwLock::new(());

thread_local! {
    /// This thread holds INTERP_LIST exclusively: code that runs meanwhile (a finalizing
    /// interpreter's atexit hooks calling `list_all`) must not wait for it again.
    static HOLDS_LIST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Held while walking (shared) or changing (exclusive) the interpreter list.
pub struct ListGuard {
    _read: Option<RwLockReadGuard<'static, ()>>,
    _write: Option<RwLockWriteGuard<'static, ()>>,
}

impl Drop for ListGuard {
    fn drop(&mut self) {
        if self._write.is_some() {
            HOLDS_LIST.with(|h| h.set(false));
        }
    }
}

/// Takes the interpreter-list lock, shared or exclusive, waiting with no GIL held: whoever
/// holds it may be waiting for the GIL we would otherwise keep.
///
/// # Safety
/// With `detached`, no thread state may be current; otherwise the current thread must hold the
/// GIL of its current thread state.
pub unsafe fn lock_interp_list(exclusive: bool, detached: bool) -> ListGuard {
    {
        if !version::OWN_GIL || HOLDS_LIST.with(|h| h.get()) {
            return ListGuard {
                _read: None,
                _write: None,
            };
        }
        let take = || {
            if exclusive {
                let w = INTERP_LIST.write();
                HOLDS_LIST.with(|h| h.set(true));
                ListGuard {
                    _read: None,
                    _write: Some(w),
                }
            } else {
                let r = INTERP_LIST.read();
                ListGuard {
                    _read: Some(r),
                    _write: None,
                }
            }
        };
        if detached {
            return take();
        }
        // SAFETY: the caller holds its GIL; we give it up while waiting and take it back.
        unsafe {
            let ts = ffi::PyEval_SaveThread();
            let guard = take();
            ffi::PyEval_RestoreThread(ts);
            guard
        }
    }
}

/// Creates an interpreter: isolated (own GIL on 3.12+, 3.11's restricted mode on 3.11) or legacy.
/// Passes it with its keeper thread state to `register` while the interpreter list is still
/// locked (so no run can find the new interpreter before the registry knows it is ours), with
/// the caller's thread state current again, and returns what `register` returned. Once
/// registered, another thread may finalize the interpreter at any time, so `register` must
/// return what the caller needs rather than the pointers.
///
/// # Safety
/// The current thread must hold the GIL of its current thread state.
pub unsafe fn new_interpreter<R>(
    isolated: bool,
    register: impl FnOnce(InterpPtr, TStatePtr) -> R,
) -> Result<R> {
    // SAFETY: (whole body) the sequence of docs/threads.md#switching-interpreters for this version;
    // `save` is the caller's thread state and is current again on both paths.
    unsafe {
        let save = ffi::PyThreadState_Get();
        let _list = lock_interp_list(true, false);
        let ts = version::new_interpreter(isolated);
        if ts.is_null() {
            // CPython undoes a failed creation and puts the caller's thread state back.
            if capi::current_tstate_unchecked() != save {
                version::attach(save);
            }
            ffi::PyErr_Clear();
            return Err(Error::Runtime("interpreter creation failed".into()));
        }
        let interp = InterpPtr(ffi::PyThreadState_GetInterpreter(ts));
        // The new thread state is current (holding the new interpreter's GIL): leave it.
        version::detach();
        version::attach(save);
        Ok(register(interp, TStatePtr(ts)))
    }
}

/// Switches back to the caller's thread state when dropped, deleting the visiting one unless
/// it is to be kept for reuse.
struct Visit {
    visitor: *mut ffi::PyThreadState,
    caller: *mut ffi::PyThreadState,
    keep: bool,
}

impl Drop for Visit {
    fn drop(&mut self) {
        // SAFETY: `visitor` is current (set by `enter`; code run in it restores its own thread
        // state before returning). Clearing needs it current on 3.12+; deleting after the switch
        // back is what 3.11 requires. A kept visitor is only detached.
        unsafe {
            if self.keep {
                version::detach();
                version::attach(self.caller);
                return;
            }
            version::delete_visitor(self.visitor, self.caller);
        }
    }
}

/// CPython's "running `__main__`" mark on an interpreter we run code in, held for the run
/// (see `version::mark_running`): CPython's own modules then see the run and refuse to run
/// in or destroy that interpreter meanwhile. Cleared when dropped, a panic included, while
/// the visitor that set it is still current.
pub struct RunMark(*mut ffi::PyInterpreterState);

impl RunMark {
    /// Sets the mark on the current interpreter; `None` if it is set already (CPython's module
    /// is running it).
    ///
    /// # Safety
    /// GIL held by a thread state of `interp`, current on this thread; the mark must be dropped
    /// before that thread state is left.
    pub unsafe fn set(interp: InterpPtr) -> Option<RunMark> {
        // SAFETY: forwarded contract.
        unsafe { version::mark_running(interp.0) }.then_some(RunMark(interp.0))
    }
}

impl Drop for RunMark {
    fn drop(&mut self) {
        // SAFETY: the thread state that set the mark is still current (contract of `set`).
        unsafe { version::unmark_running(self.0) };
    }
}

/// Runs `body` in `interp`, then switches back to the caller's thread state.
///
/// The visit uses `reuse` (a thread state of `interp` made earlier on this OS thread) or else a
/// fresh one, which `body` receives; with `keep` the visitor survives for reuse, otherwise it
/// is deleted. `body` must release every Python object it made before returning (return Rust
/// data only); a panic in it still switches back.
///
/// # Safety
/// The current thread must hold the GIL of its current thread state; `interp` must be alive and
/// not the current interpreter, and nothing may finalize it meanwhile (the caller marks it
/// running in the registry); `reuse` must be idle and made for `interp` on this OS thread.
pub unsafe fn enter<R>(
    interp: InterpPtr,
    reuse: Option<TStatePtr>,
    keep: bool,
    body: impl FnOnce(TStatePtr) -> R,
) -> R {
    // SAFETY: the "run code" sequence of docs/threads.md#switching-interpreters; the guard undoes
    // it on every path.
    let visit = unsafe {
        let caller = ffi::PyThreadState_Get();
        let visitor = version::switch_to(interp.0, reuse.map(|ts| ts.0));
        Visit {
            visitor,
            caller,
            keep,
        }
    };
    body(TStatePtr(visit.visitor))
}

/// Detaches the thread state it was made for when dropped (a panic included).
struct Attached;

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: the visitor attached by `enter_detached` is current (code run in it restores
        // its own thread state before returning).
        unsafe { version::detach() };
    }
}

/// Runs `body` in `interp` from a thread with no current thread state (3.12+), on `reuse` or a
/// fresh thread state (kept: the caller records it for reuse), and detaches it again. Unlike
/// [`enter`], no caller's GIL is involved: only the target's is taken.
///
/// # Safety
/// 3.12+ (on 3.11 the shared GIL is never re-taken to move between interpreters); no thread
/// state current; `interp` alive and marked running by the caller; `reuse` idle and made for
/// `interp` on this OS thread.
pub unsafe fn enter_detached<R>(
    interp: InterpPtr,
    reuse: Option<TStatePtr>,
    body: impl FnOnce(TStatePtr) -> R,
) -> R {
    // SAFETY: making a thread state needs no current one (3.12+); attaching takes the target's
    // GIL; the guard detaches on every path.
    let (visitor, _attached) = unsafe {
        let visitor = reuse.map_or_else(|| ffi::PyThreadState_New(interp.0), |ts| ts.0);
        version::attach(visitor);
        (visitor, Attached)
    };
    body(TStatePtr(visitor))
}

/// The caller's thread state, detached while this thread waits or visits other interpreters
/// without it; made current again when dropped (so every path, a panic included, returns to
/// the caller as it came).
pub struct Away {
    caller: *mut ffi::PyThreadState,
    attached: bool,
}

impl Away {
    /// Detaches the current thread state (releasing its GIL).
    ///
    /// # Safety
    /// The current thread must hold the GIL of its current thread state.
    pub unsafe fn leave() -> Away {
        // SAFETY: contract.
        let caller = unsafe { ffi::PyEval_SaveThread() };
        Away {
            caller,
            attached: false,
        }
    }

    /// Makes the caller's thread state current again (no-op if it is).
    ///
    /// # Safety
    /// No other thread state may be current on this thread.
    pub unsafe fn back(&mut self) {
        if !self.attached {
            version::before_taking_gil();
            // Marked first: if CPython ends this thread inside the call (a daemon thread at
            // finalization, 3.11-3.13), the drop during that unwind must not try again.
            self.attached = true;
            // SAFETY: contract; the caller's thread state was detached by `leave`/`away`.
            unsafe { ffi::PyEval_RestoreThread(self.caller) };
        }
    }

    /// Detaches the caller's thread state again (no-op if it is detached).
    ///
    /// # Safety
    /// If attached, the caller's thread state is current (nothing else was attached since).
    pub unsafe fn away(&mut self) {
        if self.attached {
            // SAFETY: contract.
            unsafe { ffi::PyEval_SaveThread() };
            self.attached = false;
        }
    }
}

impl Drop for Away {
    fn drop(&mut self) {
        // SAFETY: every visit detaches before returning, so nothing else is current.
        unsafe { self.back() };
    }
}

/// Runs `f` with the caller's thread state detached (its GIL released), then makes it current
/// again: for waits that touch no Python.
///
/// # Safety
/// The current thread must hold the GIL of its current thread state; `f` must not touch
/// Python.
pub unsafe fn detached<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: contract; dropping `away` takes the caller's GIL back on every path.
    let _away = unsafe { Away::leave() };
    f()
}

/// Deletes idle thread states of the current interpreter that other (finished or finalizing)
/// code left behind.
///
/// # Safety
/// The interpreter owning every `states` entry must be current, holding its GIL; none of them
/// may be current or in use on any thread.
pub unsafe fn delete_idle(states: &[TStatePtr]) {
    for ts in states {
        // SAFETY: idle, not current, of the current interpreter (contract).
        unsafe {
            ffi::PyThreadState_Clear(ts.0);
            ffi::PyThreadState_Delete(ts.0);
        }
    }
}

/// Finalizes an interpreter through its keeper thread state and switches back to the caller.
///
/// First runs `wind_down` inside it, on the keeper (the caller's snippets that wait for its
/// threads, `interp/lifecycle.rs`). Then, if any thread state other than the keeper and `idle`
/// remains (a thread still running, a daemon thread), nothing is deleted or finalized and
/// `false` is returned: `Py_EndInterpreter` would abort the process on it (3.11, 3.12: "not
/// the last thread"; 3.13+ also while a thread is still attached). Also refused while
/// CPython's own module runs it (its running mark). A keeper made for this finalization
/// (`made_keeper`) is deleted again when refused. Otherwise `idle` are deleted, `last_words`
/// runs inside it, and it ends.
///
/// # Safety
/// The current thread must hold the GIL of its current thread state, which must belong to
/// another interpreter; `keeper` must be the interpreter's keeper, with no frame; `idle` must be
/// the interpreter's cached visitor thread states, all idle; the registry must guarantee that
/// no other thread of ours uses the interpreter from now on (it is `Finalizing`); the two
/// callbacks run Python in it and must leave the keeper current.
pub unsafe fn end_interpreter(
    keeper: TStatePtr,
    idle: &[TStatePtr],
    made_keeper: bool,
    wind_down: impl FnOnce(),
    last_words: impl FnOnce(),
) -> bool {
    // SAFETY: the "destroy" sequence of ARCHITECTURE.md; holding the target's GIL keeps its
    // thread list stable while we count it (threads are added and removed by holders of that
    // GIL).
    unsafe {
        let caller = ffi::PyThreadState_Get();
        let interp = ffi::PyThreadState_GetInterpreter(keeper.0);
        // Run by CPython's own module (3.12+): refused before the keeper is attached, since
        // on 3.12 that module runs on an existing thread state, possibly the keeper.
        if version::marked_running(interp) {
            if made_keeper {
                delete_unused(keeper);
            }
            return false;
        }
        version::detach();
        version::attach(keeper.0);
        wind_down();
        let count = thread_count(InterpPtr(interp));
        if count > 1 + idle.len() || version::marked_running(interp) {
            if made_keeper {
                version::delete_visitor(keeper.0, caller);
            } else {
                version::detach();
                version::attach(caller);
            }
            return false;
        }
        // Deleting our visitors may release the lock `threading` holds for the thread that
        // imported it, so what runs last looks at the state after that.
        delete_idle(idle);
        last_words();
        // The list lock is taken detached (see `lock_interp_list`); the interpreter has no
        // other thread, so nothing happens in it meanwhile.
        version::detach();
        let _list = lock_interp_list(true, true);
        version::attach(keeper.0);
        ffi::Py_EndInterpreter(keeper.0);
        // Py_EndInterpreter leaves no thread state current (and on 3.11 the shared GIL held).
        version::attach(caller);
        true
    }
}

/// Deletes a thread state that was made and never used (nothing of it is current).
///
/// # Safety
/// The current thread must hold the GIL of its current thread state; `ts` alive, idle, and
/// its interpreter alive.
pub unsafe fn delete_unused(ts: TStatePtr) {
    // SAFETY: clearing and deleting need `ts`'s own GIL: attached for that, then the caller is
    // made current again by `delete_visitor`.
    unsafe {
        let caller = ffi::PyThreadState_Get();
        version::detach();
        version::attach(ts.0);
        version::delete_visitor(ts.0, caller);
    }
}

/// How many thread states `interp` has.
///
/// # Safety
/// The GIL guarding `interp`'s thread list must be held (its own on 3.12+, the one on 3.11).
pub unsafe fn thread_count(interp: InterpPtr) -> usize {
    let mut count = 0;
    // SAFETY: the list cannot change while its GIL is held (contract).
    unsafe {
        let mut ts = ffi::PyInterpreterState_ThreadHead(interp.0);
        while !ts.is_null() {
            count += 1;
            ts = ffi::PyThreadState_Next(ts);
        }
    }
    count
}
