//! How interpreters end: finalization (on `destroy()`, on the last counted `InterpreterID`,
//! deferred while this thread is already finalizing one), the retry of `Pending` ones whose
//! threads still ran, exit clean-up (`_clean_up_at_exit`, the refusals once it has begun, the
//! last-resort exit, the exit status of an uncaught `KeyboardInterrupt`), and the Python
//! snippets that join or stop an interpreter's threads before it ends. The thread-state
//! switches themselves are `py::tstate`'s; the bookkeeping is the registry's.

use std::cell::{Cell, RefCell};
use std::ffi::CString;

use pyo3_ffi as ffi;

use crate::error::Error;
use crate::interp::api::lookup;
use crate::interp::registry::{self, Doomed};
use crate::interp::thread_cache;
use crate::py::trampoline::noargs_entry;
use crate::py::tstate::{self, InterpPtr};
use crate::py::version;

/// What a finalization waits for before it counts the interpreter's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Nothing (a dying `InterpreterID`: blocking there could deadlock its caller).
    Nothing,
    /// The non-daemon `threading` threads, joined without limit (`destroy()`, as CPython's own
    /// finalization does).
    NonDaemon,
    /// The non-daemon threads, then the daemon ones after a `SystemExit` raised in each, for up
    /// to this long (exit: a daemon thread left running makes CPython abort at exit).
    Exit(std::time::Duration),
}

thread_local! {
    /// This thread is running exit cleanup (code it runs, such as a finalizing interpreter's
    /// own atexit hooks, must not wait for that cleanup to end).
    static CLEANING_UP: Cell<bool> = const { Cell::new(false) };
}

/// The error for a `create()` or `run_string` refused because exit cleanup has begun. A daemon
/// thread of the main interpreter first waits, with the GIL released, until cleanup has
/// finished: retrying in a loop it would otherwise keep the main GIL, which cleanup's
/// finalizations need (a waiter for a shared GIL asks only its own interpreter to drop it).
/// Threads of other interpreters do not wait: cleanup joins or stops them.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn exiting() -> Error {
    // SAFETY: GIL held (contract).
    let in_main = unsafe { tstate::current_interp() } == tstate::main_interp();
    if in_main && !CLEANING_UP.with(Cell::get) {
        // SAFETY: GIL held (contract); released around a wait that touches no Python; this
        // thread holds no lock or registry right of ours here.
        unsafe { tstate::detached(|| registry::wait_exit_cleanup(EXIT_CLEANUP_LIMIT)) };
    }
    Error::Runtime("the process is exiting: interpreters can no longer be created or run".into())
}

/// How long a refused call waits for exit cleanup to finish (cleanup itself is bounded by
/// `EXIT_GRACE` per step, then leaves the process).
const EXIT_CLEANUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

thread_local! {
    /// How many finalizations this thread is inside; while non-zero, finalizations requested by
    /// dying `InterpreterID`s are deferred to `DEFERRED` instead of nesting.
    static FINALIZING: Cell<u32> = const { Cell::new(0) };
    static DEFERRED: RefCell<Vec<Doomed>> = const { RefCell::new(Vec::new()) };
}

/// Finalizes an interpreter taken from the registry, then any whose last reference died during
/// that finalization. First waits for its threads as `wait` says; an interpreter that still has
/// threads is left alive with everything it had (retried later, see `reap_pending`). Returns
/// whether `doomed` itself was finalized.
///
/// # Safety
/// GIL held on the current thread state, which must not belong to `doomed`.
pub(super) unsafe fn finalize(doomed: Doomed, wait: Wait) -> bool {
    let first = doomed.id();
    let mut first_done = false;
    let mut queue = vec![(doomed, wait)];
    while let Some((d, wait)) = queue.pop() {
        FINALIZING.with(|f| f.set(f.get() + 1));
        // SAFETY: GIL held (contract).
        if unsafe { lookup(d.id()) } != Some(d.interp()) {
            // Finalized by someone else (CPython's own module, given our id): its thread
            // states went with it, so only our record is left to drop.
            registry::finalized(d);
            FINALIZING.with(|f| f.set(f.get() - 1));
            continue;
        }
        let id = d.id();
        // SAFETY: GIL held (contract); its runs have ended, so no nudger starts in it again.
        unsafe { crate::interp::nudge::quiesce(d.interp()) };
        let idle = registry::thread_states(id);
        // SAFETY: the registry handed `d` to this thread alone (`Finalizing`), so nobody else
        // of ours runs code in it or finalizes it (CPython's modules are seen by their running
        // mark, which `end_interpreter` checks); `idle` are its cached visitors, all idle (no
        // run is in progress), and they are deleted only if the finalization goes through. The
        // two snippets run with the keeper current, holding the interpreter's GIL.
        let done = unsafe {
            tstate::end_interpreter(
                d.keeper(),
                &idle,
                d.made_keeper(),
                || wind_down(wait),
                || {
                    if version::THREADING_SHUTDOWN_FIX {
                        release_foreign_threading_lock();
                    }
                },
            )
        };
        if id == first {
            first_done = done;
        }
        if done {
            // Its queued items now follow their unbound rule (values it put are owned Rust
            // data, so nothing of the dead interpreter is touched).
            subinterpreters_core::queue::interp_destroyed(id);
            registry::finalized(d);
        } else {
            registry::refused(d);
        }
        FINALIZING.with(|f| f.set(f.get() - 1));
        DEFERRED.with(|q| queue.extend(q.borrow_mut().drain(..).map(|d| (d, Wait::Nothing))));
    }
    first_done
}

/// Retries interpreters whose finalization was refused earlier because threads were running.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn reap_pending() {
    for doomed in registry::take_pending() {
        // SAFETY: GIL held; pending interpreters are never the current one (it would be running).
        unsafe { finalize(doomed, Wait::Nothing) };
    }
}

/// Called when the last counted `InterpreterID` dies: finalize now, or later if this thread is
/// already finalizing one, or if the interpreter dying is the current one.
///
/// # Safety
/// GIL held.
pub unsafe fn finalize_from_dealloc(doomed: Doomed) {
    // SAFETY: GIL held.
    let current = unsafe { tstate::interp_id(tstate::current_interp()) };
    if current == doomed.id() {
        // Dying inside itself (a thread of its own dropped the last ID): it cannot be finalized
        // from here; leave it pending for the next create/destroy, or exit.
        registry::refused(doomed);
        return;
    }
    if FINALIZING.with(|f| f.get()) > 0 {
        DEFERRED.with(|q| q.borrow_mut().push(doomed));
        return;
    }
    // SAFETY: GIL held, current interpreter is not `doomed`; the pending exception (a dealloc
    // can run while one is set) is kept aside.
    unsafe {
        with_saved_exception(|| {
            finalize(doomed, Wait::Nothing);
        })
    };
}

/// Keeps a pending exception intact while `f` runs (a dealloc finalizing from inside it).
///
/// # Safety
/// GIL held.
unsafe fn with_saved_exception(f: impl FnOnce()) {
    // SAFETY: GIL held; what is set aside is put back on this thread after `f`.
    unsafe {
        let saved = version::save_exception();
        f();
        version::restore_saved(saved);
    }
}

noargs_entry!(
    /// Finalizes every interpreter of ours; registered with `atexit` in the main interpreter,
    /// because CPython aborts at exit if subinterpreters remain (3.11, 3.12: "remaining
    /// subinterpreters"; 3.13+ ends them itself, and aborts on one that still has threads).
    clean_up_at_exit, |state| {
        // Nothing new starts from here on (daemon threads keep running during atexit), and
        // creations already under way in other threads are waited for with the GIL released
        // (they need it to finish), so every interpreter of ours is registered: one left
        // half made would be finalized by CPython with its creator still inside it.
        CLEANING_UP.with(|c| c.set(true));
        registry::close_for_exit();
        let mut settled = tstate::detached(|| registry::wait_creations(EXIT_GRACE));
        // Like `threading._shutdown` for the main interpreter: join each one's non-daemon
        // threads (a thread of one may be running code in another, so one at a time), then
        // stop its daemon threads.
        finalize_all_idle();
        // Runs of ours still in progress (in daemon threads), in our interpreters or in others'
        // (which CPython 3.13+ ends at exit, aborting on one still in use), get a `SystemExit`
        // and a moment to stop.
        let busy = registry::runs_in_progress();
        for &(id, _, runner) in &busy {
            // Checked again under the list lock, which keeps our own finalizations (of a run
            // that ended meanwhile) from freeing it while we visit.
            let _list = tstate::lock_interp_list(false, false);
            if let Some(interp) = registry::running_on(id, runner) {
                interrupt_at_exit(id, interp, runner);
            }
        }
        settled &= tstate::detached(|| {
            for &(id, _, _) in &busy {
                registry::wait_until_idle(id, EXIT_GRACE);
            }
            // Finalizations other threads have under way (a `destroy()` or a dying
            // `InterpreterID` in a daemon thread) end before CPython finalizes.
            registry::wait_finalizations(EXIT_GRACE)
        });
        finalize_all_idle();
        // Nudging (3.11) went on until now: a daemon thread's pure loop in one of ours lets
        // the GIL go for the steps above. A nudger left blocked when CPython finalizes would be
        // ended by it, so none may be.
        settled &= crate::interp::nudge::close(EXIT_GRACE);
        let left = registry::left_at_exit();
        if !left.is_empty() || !settled {
            exit_without_finalizing(&left);
        }
        registry::exit_cleanup_done();
        CLEANING_UP.with(|c| c.set(false));
        keep_sigint_exit();
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

/// A program ended by an uncaught `KeyboardInterrupt` exits as if killed by SIGINT: CPython
/// keeps a runtime-wide record of that uncaught interrupt, which 3.11-3.13 clear whenever code
/// runs from a string (`exec("...")`, as a `namedtuple` or a first import of `linecache` does)
/// during exit, ours included. If the program's last reported exception (non-interactive: only
/// an uncaught one is reported) is a `KeyboardInterrupt`, we set the record again the one public
/// way there is: a string run that ends in `KeyboardInterrupt`.
///
/// # Safety
/// GIL held, in the main interpreter.
unsafe fn keep_sigint_exit() {
    let code = c"import sys
if not sys.flags.interactive and not hasattr(sys, 'ps1'):
    if isinstance(getattr(sys, 'last_exc', None) or getattr(sys, 'last_value', None),
                  KeyboardInterrupt):
        raise KeyboardInterrupt
";
    // SAFETY: GIL held (contract); every reference made here is released, and the failure
    // (the point of the snippet, or any other) is cleared.
    unsafe {
        let ns = ffi::PyDict_New();
        if ns.is_null() {
            ffi::PyErr_Clear();
            return;
        }
        let builtins = ffi::PyEval_GetBuiltins();
        if !builtins.is_null() {
            ffi::PyDict_SetItemString(ns, c"__builtins__".as_ptr(), builtins);
        }
        let res = ffi::PyRun_StringFlags(
            code.as_ptr(),
            ffi::Py_file_input,
            ns,
            ns,
            std::ptr::null_mut(),
        );
        if res.is_null() {
            ffi::PyErr_Clear();
        } else {
            ffi::Py_DECREF(res);
        }
        ffi::Py_DECREF(ns);
    }
}

/// Exit-time finalization of every idle interpreter of ours, one at a time.
///
/// # Safety
/// GIL held, in the main interpreter.
unsafe fn finalize_all_idle() {
    for id in registry::remaining_created() {
        if let Ok(doomed) = registry::take_for_destroy(id) {
            // SAFETY: GIL held in the main interpreter, which is not `doomed`.
            unsafe { finalize(doomed, Wait::Exit(EXIT_GRACE)) };
        }
    }
}

/// The last resort at exit, when an interpreter of ours still has a thread that would not stop
/// (it swallowed the `SystemExit` for longer than `EXIT_GRACE`): CPython's own finalization
/// would abort the process on it (every version), and nothing can take the interpreter out
/// of CPython's list. So: say so, flush, and leave without finalizing anything, as
/// `os._exit` does; the status is 1 if an uncaught exception was reported, else 0.
///
/// # Safety
/// GIL held, in the main interpreter.
unsafe fn exit_without_finalizing(left: &[i64]) {
    let what = if left.is_empty() {
        "an interpreter being created or finalized by another thread did not settle".to_string()
    } else {
        let ids: Vec<String> = left.iter().map(i64::to_string).collect();
        format!("a thread in interpreter(s) {} did not stop", ids.join(", "))
    };
    let code = format!(
        "import sys, os
try:
    sys.stderr.write('subinterpreters: {what} at exit; exiting without finalizing\\n')
except BaseException:
    pass
for _f in (sys.stdout, sys.stderr):
    try:
        _f.flush()
    except BaseException:
        pass
_last = getattr(sys, 'last_exc', None) or getattr(sys, 'last_value', None)
if isinstance(_last, KeyboardInterrupt):
    import signal
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        pass
    os._exit(130)
os._exit(1 if _last is not None else 0)
"
    );
    if let Ok(code) = CString::new(code) {
        // SAFETY: GIL held in the main interpreter; `os._exit` (or SIGINT) does not return.
        unsafe { run_quietly(&code) };
    }
}

/// How long exit-time cleanup waits for interrupted threads (runs in progress, daemon threads of
/// an interpreter) to stop.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Raises `SystemExit` asynchronously in the thread running `run_string` in `interp` (it sees
/// it at its next bytecode boundary), so that a run in a daemon thread ends before exit.
///
/// # Safety
/// GIL held; `interp` is alive and cannot be finalized by us during the call (a run of ours
/// was in progress in it under the list lock the caller holds).
unsafe fn interrupt_at_exit(id: i64, interp: InterpPtr, runner: std::ffi::c_ulong) {
    // SAFETY: visiting an interpreter that another thread is running is what its own threads
    // do too; it cannot be finalized meanwhile (contract: a finalization of ours waits for the
    // list lock, and finds our visitor among its threads and refuses).
    // SetAsyncExc reaches only the current (visited) interpreter's thread state of that OS
    // thread, which is the runner's visitor.
    unsafe {
        thread_cache::visit_running(id, interp, || {
            ffi::PyThreadState_SetAsyncExc(runner as std::ffi::c_long, ffi::PyExc_SystemExit);
        });
    }
}

/// Inside an interpreter about to be finalized (on its keeper): waits for its threads as
/// `wait` says.
///
/// # Safety
/// The interpreter must be current, holding its GIL.
unsafe fn wind_down(wait: Wait) {
    // SAFETY: forwarded contract.
    unsafe {
        // Both waits look only at `threading`'s threads: an interpreter that never imported
        // it (most do not) has none, and skipping the snippets keeps close() at CPython's cost.
        if !threading_loaded() {
            return;
        }
        if wait != Wait::Nothing {
            // Join like `threading._shutdown` does, without running it (3.12 asserts if it
            // runs twice in a subinterpreter, and finalization runs it again).
            run_quietly(JOIN_NON_DAEMON);
        }
        if let Wait::Exit(grace) = wait {
            stop_daemon_threads(grace);
        }
    }
}

/// Whether the current interpreter may have imported `threading` (`sys.modules` has it).
///
/// # Safety
/// The interpreter must be current, holding its GIL.
pub(super) unsafe fn threading_loaded() -> bool {
    // SAFETY: GIL held (contract); both lookups return borrowed references and set no error.
    unsafe {
        let modules = ffi::PyImport_GetModuleDict();
        // Not a plain dict (replaced by user code): assume it is there, and let the snippets look.
        modules.is_null()
            || ffi::PyDict_CheckExact(modules) == 0
            || !ffi::PyDict_GetItemString(modules, c"threading".as_ptr()).is_null()
    }
}

/// Joins the current interpreter's non-daemon `threading` threads, until none is left. Dummy
/// threads (OS threads that ran code here, like our visitors) were not started by `threading`
/// and cannot be joined; on 3.12+ they are non-daemon where daemon threads are not allowed.
const JOIN_NON_DAEMON: &std::ffi::CStr = c"import sys as _s
_t = _s.modules.get('threading')
while _t is not None:
    _w = [_x for _x in _t.enumerate() if not _x.daemon and _x is not _t._main_thread
          and not isinstance(_x, _t._DummyThread)]
    if not _w:
        break
    for _x in _w:
        _x.join()
";

/// Raises `SystemExit` in every daemon `threading` thread of the current interpreter (they see
/// it at their next bytecode boundary), then joins them for up to `grace` in all.
///
/// # Safety
/// The interpreter must be current, holding its GIL.
unsafe fn stop_daemon_threads(grace: std::time::Duration) {
    const FIND: &std::ffi::CStr = c"import sys as _s
_t = _s.modules.get('threading')
_r = []
if _t is not None:
    _me = _t.get_ident()
    _r = [_x.ident for _x in _t.enumerate()
          if _x.daemon and _x.ident is not None and _x.ident != _me
          and not isinstance(_x, _t._DummyThread) and _x is not _t._main_thread]
";
    // SAFETY: the interpreter is current (contract). SetAsyncExc looks the idents up among the
    // current interpreter's thread states only, under the runtime's own lock.
    unsafe {
        let idents = run_for_idents(FIND);
        if idents.is_empty() {
            return;
        }
        for ident in idents {
            ffi::PyThreadState_SetAsyncExc(ident as std::ffi::c_long, ffi::PyExc_SystemExit);
        }
        let join = format!(
            "import sys as _s, time as _time
_t = _s.modules.get('threading')
_d = _time.monotonic() + {}
_me = _t.get_ident()
for _x in _t.enumerate():
    if _x.daemon and _x.ident != _me and not isinstance(_x, _t._DummyThread) and _x is not _t._main_thread:
        _x.join(max(0.0, _d - _time.monotonic()))
",
            grace.as_secs_f64()
        );
        if let Ok(join) = std::ffi::CString::new(join) {
            run_quietly(&join);
        }
    }
}

/// Runs `code`, which leaves a list of ints in `_r`, and returns them (empty on any failure).
///
/// # Safety
/// A thread state must be current, holding its GIL.
unsafe fn run_for_idents(code: &std::ffi::CStr) -> Vec<std::ffi::c_ulong> {
    let mut out = Vec::new();
    // SAFETY: GIL held (contract); the namespace is ours and released here; borrowed items of
    // `_r` are read while the namespace keeps the list alive.
    unsafe {
        let Some(ns) = run_in_fresh_namespace(code) else {
            return out;
        };
        let list = ffi::PyDict_GetItemString(ns, c"_r".as_ptr());
        if !list.is_null() && ffi::PyList_Check(list) != 0 {
            for i in 0..ffi::PyList_Size(list) {
                let v = ffi::PyLong_AsUnsignedLong(ffi::PyList_GetItem(list, i));
                if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                    continue;
                }
                out.push(v);
            }
        }
        ffi::Py_DECREF(ns);
    }
    out
}

/// Runs a snippet in a fresh namespace of the current interpreter, ignoring any failure.
///
/// # Safety
/// A thread state must be current, holding its GIL.
unsafe fn run_quietly(code: &std::ffi::CStr) {
    // SAFETY: forwarded contract; the namespace is released at once.
    unsafe {
        if let Some(ns) = run_in_fresh_namespace(code) {
            ffi::Py_DECREF(ns);
        }
    }
}

/// Runs a snippet in a fresh namespace and returns that namespace (a new reference), or `None`
/// if it failed (the failure is cleared).
///
/// # Safety
/// A thread state must be current, holding its GIL.
unsafe fn run_in_fresh_namespace(code: &std::ffi::CStr) -> Option<*mut ffi::PyObject> {
    // SAFETY: GIL held (contract); every reference made here is released or returned; a
    // failure is cleared (the caller goes on regardless).
    unsafe {
        let ns = ffi::PyDict_New();
        if ns.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let builtins = ffi::PyEval_GetBuiltins();
        if !builtins.is_null() {
            ffi::PyDict_SetItemString(ns, c"__builtins__".as_ptr(), builtins);
        }
        // Compiled and evaluated rather than `PyRun_String`: that one clears CPython's record
        // of an uncaught KeyboardInterrupt in `__main__`, whose exit status (killed by SIGINT)
        // our exit-time cleanup must not turn into 1.
        let compiled = ffi::Py_CompileString(
            code.as_ptr(),
            c"<subinterpreters>".as_ptr(),
            ffi::Py_file_input,
        );
        if compiled.is_null() {
            ffi::PyErr_Clear();
            ffi::Py_DECREF(ns);
            return None;
        }
        let res = ffi::PyEval_EvalCode(compiled, ns, ns);
        ffi::Py_DECREF(compiled);
        if res.is_null() {
            ffi::PyErr_Clear();
            ffi::Py_DECREF(ns);
            return None;
        }
        ffi::Py_DECREF(res);
        Some(ns)
    }
}

/// Works around CPython gh-122517 (docs/threads.md#destroying-from-another-thread).
/// `threading._shutdown()`, which finalization calls, expects to run on the OS thread that imported
/// `threading` in this interpreter, holding the `_main_thread` lock that thread's state owns; from
/// any other thread (or after the importing thread state is gone) it waits forever on that lock, or
/// trips an assertion. We make the current thread the interpreter's "main thread" with a fresh lock
/// of its own, so `_shutdown` takes its normal path: releases that lock, then still joins the
/// non-daemon threads.
///
/// # Safety
/// The interpreter to finalize must be current, holding its GIL.
unsafe fn release_foreign_threading_lock() {
    const FIX: &std::ffi::CStr = c"import sys as _s
_t = _s.modules.get('threading')
if _t is not None and not _t._main_thread._is_stopped:
    _m = _t._main_thread
    _old = _m._tstate_lock
    if _m.ident != _t.get_ident() or _old is None or not _old.locked():
        with _t._shutdown_locks_lock:
            _t._shutdown_locks.discard(_old)
        _new = _t._allocate_lock()
        _new.acquire()
        _m._tstate_lock = _new
        _m._ident = _t.get_ident()
";
    // SAFETY: the target interpreter is current (contract).
    unsafe {
        if threading_loaded() {
            run_quietly(FIX);
        }
    }
}
