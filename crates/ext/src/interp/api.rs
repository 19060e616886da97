//! The interpreter half of the module: `create`, `destroy`, `list_all`, `get_current`,
//! `get_main`, `is_running`, `run_string`, `is_shareable`, and finalization on last reference
//! and at exit.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void, CString};

use pyo3_ffi as ffi;

use crate::error::{Error, InterpError, Result};
use crate::id_slots::{id_arg, IdKind};
use crate::interp::id as interp_id;
use crate::interp::registry::{self as registry, Busy, Doomed, RunTicket};
use crate::interp::run::{execute, Job};
use crate::py::args;
use crate::py::capi;
use crate::py::trampoline::{fast_entry, kw_entry, noargs_entry};
use crate::py::tstate::{self, InterpPtr, Wait};
use crate::py::version;
use crate::state::ModState;
use crate::values::convert::{is_shareable, to_value};

/// The live interpreter with this id, ours or not, as CPython's list has it now. To use it
/// beyond a check, take a `RunTicket` or a `Doomed` (which resolve it again under the
/// registry lock).
///
/// # Safety
/// GIL held (a miss sets and clears an exception in the current interpreter).
pub unsafe fn lookup(id: i64) -> Option<InterpPtr> {
    // SAFETY: a plain lookup by id under the runtime's own lock; the error it sets for an
    // unknown id is cleared (we raise our own), with the GIL held (contract).
    unsafe {
        let interp = capi::_PyInterpreterState_LookUpID(id);
        if interp.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(InterpPtr(interp))
    }
}

fn unrecognized(id: i64) -> Error {
    Error::Interp(InterpError::NotFound(id))
}

pub(super) fn already_running() -> Error {
    Error::Interp(InterpError::Running)
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
unsafe fn exiting() -> Error {
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

/// 3.11's "more than one thread" rule (only on versions where it applies): an interpreter may
/// have only its own thread states (our keeper, plus the cached visitors of our runs); any
/// other means user threads exist.
///
/// # Safety
/// GIL held; `interp` alive.
unsafe fn check_single_thread(id: i64, interp: InterpPtr) -> Result<()> {
    if !version::SINGLE_THREAD_RULE {
        return Ok(());
    }
    // SAFETY: on the versions with this rule one GIL guards every thread list (contract: held).
    let count = unsafe { tstate::thread_count(interp) };
    if count > 1 + registry::cached_count(id) {
        return Err(Error::Runtime(
            "interpreter has more than one thread".into(),
        ));
    }
    Ok(())
}

/// Whether `id` is running: main always is; ours when a run is in progress; others as
/// `foreign_running` sees them.
///
/// # Safety
/// GIL held; `interp` alive.
unsafe fn running(id: i64, interp: InterpPtr) -> bool {
    if id == 0 || registry::is_running(id) {
        return true;
    }
    if registry::is_created(id) {
        // Ours, run by CPython's own module (3.12+).
        // SAFETY: forwarded contract.
        return unsafe { version::marked_running(interp.0) };
    }
    // SAFETY: forwarded contract.
    unsafe { version::foreign_running(interp.0) }
}

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
    let first = doomed.id;
    let mut first_done = false;
    let mut queue = vec![(doomed, wait)];
    while let Some((d, wait)) = queue.pop() {
        FINALIZING.with(|f| f.set(f.get() + 1));
        // SAFETY: GIL held (contract).
        if unsafe { lookup(d.id) } != Some(d.interp) {
            // Finalized by someone else (CPython's own module, given our id): its thread
            // states went with it, so only our record is left to drop.
            registry::finalized(d);
            FINALIZING.with(|f| f.set(f.get() - 1));
            continue;
        }
        let idle = registry::thread_states(d.id);
        // SAFETY: the registry handed `d` to this thread alone (`Finalizing`), so nobody else
        // of ours runs code in it or finalizes it (CPython's modules are seen by their running
        // mark, which `end_interpreter` checks); `idle` are its cached visitors, all idle (no
        // run is in progress), and they are deleted only if the finalization goes through.
        let done = unsafe { tstate::end_interpreter(d.keeper, &idle, wait, d.made_keeper) };
        if d.id == first {
            first_done = done;
        }
        if done {
            // Its queued items now follow their unbound rule (values it put are owned Rust
            // data, so nothing of the dead interpreter is touched).
            subinterpreters_core::queue::interp_destroyed(d.id);
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
unsafe fn reap_pending() {
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
    if current == doomed.id {
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
        interp_id::with_saved_exception(|| {
            finalize(doomed, Wait::Nothing);
        })
    };
}

/// Looks `id` up for a function that needs an existing interpreter.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn existing(id: i64) -> Result<InterpPtr> {
    // SAFETY: GIL held (contract).
    unsafe { lookup(id) }.ok_or_else(|| unrecognized(id))
}

fn to_cstring_checked(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes)
        .map_err(|_| Error::Value("source code string cannot contain null bytes".into()))
}

/// A `str` argument as a C string, refusing NULs as 3.11's `run_string` does.
///
/// # Safety
/// GIL held; `obj` a `str`.
pub(super) unsafe fn c_text(obj: *mut ffi::PyObject) -> Result<CString> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: GIL held, `obj` a str (contract); the UTF-8 buffer lives as long as `obj`.
    unsafe {
        let text = ffi::PyUnicode_AsUTF8AndSize(obj, &mut len);
        if text.is_null() {
            return Err(Error::Raised);
        }
        to_cstring_checked(std::slice::from_raw_parts(text.cast::<u8>(), len as usize))
    }
}

kw_entry!(
    /// `create(*, isolated=True) -> InterpreterID`
    create, |state, args, kwds| {
        let mut isolated: c_int = 1;
        if !args::parse(
            args,
            kwds,
            c"|$i:create",
            &[c"isolated"],
            &mut [(&raw mut isolated).cast::<c_void>()],
        ) {
            return Err(Error::Raised);
        }
        // Counted until registered, so that exit cleanup waits for it (refused once that has
        // begun): an interpreter CPython has made but we have not registered would outlive it.
        let creation = registry::begin_create().map_err(|_| exiting())?;
        reap_pending();
        // Once registered it may be finalized by another thread at any time (a `destroy()` of
        // a guessed id, exit cleanup): only its id is used after that.
        let id = tstate::new_interpreter(isolated != 0, |interp, keeper| {
            let id = tstate::interp_id(interp);
            creation.register(id, interp, keeper);
            id
        })?;
        match interp_id::new(state, id) {
            Ok(obj) => Ok(obj.into_ptr()),
            Err(err) => {
                // Nobody can reach it: finalize rather than leak it.
                if let Ok(doomed) = registry::take_for_destroy(id) {
                    finalize(doomed, Wait::Nothing);
                }
                Err(err)
            }
        }
    }
);

kw_entry!(
    /// `destroy(id)`
    destroy, |state, args, kwds| {
        let [id_obj] = args::objects(args, kwds, c"O:destroy", &[c"id"])?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        let interp = existing(id)?;
        if interp == tstate::current_interp() {
            return Err(Error::Runtime(
                "cannot destroy the current interpreter".into(),
            ));
        }
        check_single_thread(id, interp)?;
        // Main always runs; others may be run by CPython's own module (its mark, 3.12+).
        if id == 0 || version::marked_running(interp.0) {
            return Err(already_running());
        }
        let doomed = match registry::take_for_destroy(id) {
            Ok(d) => d,
            Err(Busy::Running) => return Err(already_running()),
            Err(Busy::Exiting) => return Err(exiting()),
            Err(Busy::Unknown) => foreign_keeper(id)?,
        };
        if !finalize(doomed, Wait::NonDaemon) {
            return Err(Error::Runtime(
                "interpreter has more than one thread".into(),
            ));
        }
        reap_pending();
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

/// An interpreter made by someone else: finalize it through its only thread state, as CPython's
/// module does, if that is safe. Found again under the interpreter-list lock, so that none of
/// our own finalizations can free it before the registry records that we take it.
///
/// # Safety
/// GIL held.
unsafe fn foreign_keeper(id: i64) -> Result<Doomed> {
    // SAFETY: GIL held; `interp` is in CPython's list and we hold the list lock against our
    // own finalizations; walking its thread list as CPython's module does.
    unsafe {
        let _list = tstate::lock_interp_list(false, false);
        let interp = lookup(id).ok_or_else(|| unrecognized(id))?;
        if version::foreign_running(interp.0) {
            return Err(already_running());
        }
        let head = ffi::PyInterpreterState_ThreadHead(interp.0);
        let (keeper, made) = if head.is_null() {
            // None at rest (3.13+, or made through the C-API): make the one thread state
            // `Py_EndInterpreter` needs, as CPython's module does.
            (ffi::PyThreadState_New(interp.0), true)
        } else if !version::FOREIGN_KEEPS_CREATION_TSTATE {
            // A thread is using it right now (not with CPython's running mark): ending it
            // would pull the interpreter from under that thread.
            return Err(already_running());
        } else if !ffi::PyThreadState_Next(head).is_null() {
            return Err(Error::Runtime(
                "interpreter has more than one thread".into(),
            ));
        } else {
            (head, false)
        };
        if keeper.is_null() {
            return Err(Error::Raised);
        }
        let keeper = tstate::TStatePtr(keeper);
        registry::take_foreign(id, interp, keeper, made).map_err(|_| {
            if made {
                // SAFETY: made just now, never attached: deleted unused.
                tstate::delete_unused(keeper);
            }
            already_running()
        })
    }
}

/// Takes `id` for a run on OS thread `runner`: ours from the registry alone; one made by
/// someone else through CPython's lookup, under the interpreter-list lock so that none of our
/// own finalizations can free it before the registry records the run.
///
/// # Safety
/// GIL held.
unsafe fn run_ticket(id: i64, runner: std::ffi::c_ulong) -> Result<RunTicket> {
    let busy = match registry::begin_run(id, runner, None) {
        Ok(ticket) => return Ok(ticket),
        Err(Busy::Unknown) => {
            // SAFETY: GIL held; the list lock keeps the interpreter found from being finalized
            // by us until the registry has it (`foreign_running` reads it meanwhile).
            let _list = unsafe { tstate::lock_interp_list(false, false) };
            // SAFETY: GIL held (contract).
            let interp = unsafe { lookup(id) }.ok_or_else(|| unrecognized(id))?;
            // SAFETY: GIL held; `interp` alive (under the list lock).
            if unsafe { version::foreign_running(interp.0) } {
                return Err(already_running());
            }
            match registry::begin_run(id, runner, Some(interp)) {
                Ok(ticket) => return Ok(ticket),
                Err(busy) => busy,
            }
        }
        Err(busy) => busy,
    };
    // The list lock is released: a refusal at exit waits for cleanup, which may need it.
    Err(match busy {
        Busy::Running => already_running(),
        // SAFETY: GIL held (contract).
        Busy::Exiting => unsafe { exiting() },
        Busy::Unknown => unrecognized(id),
    })
}

noargs_entry!(
    /// `list_all() -> list[InterpreterID]`, ascending ids.
    list_all, |state| {
        let mut ids = Vec::new();
        {
            let _list = tstate::lock_interp_list(false, false);
            let mut interp = ffi::PyInterpreterState_Head();
            while !interp.is_null() {
                ids.push(ffi::PyInterpreterState_GetID(interp));
                interp = ffi::PyInterpreterState_Next(interp);
            }
        }
        ids.sort_unstable();
        ids_to_list(state, &ids)
    }
);

/// A new list of `InterpreterID`s.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub unsafe fn ids_to_list(state: &ModState, ids: &[i64]) -> Result<*mut ffi::PyObject> {
    // SAFETY: GIL held; `state` of the current interpreter (contract).
    unsafe {
        let items = ids.iter().map(|&id| interp_id::new(state, id));
        Ok(crate::py::pyref::new_list(items)?.into_ptr())
    }
}

noargs_entry!(
    /// `get_current() -> InterpreterID`
    get_current, |state| {
        Ok(interp_id::new(state, tstate::interp_id(tstate::current_interp()))?.into_ptr())
    }
);

noargs_entry!(
    /// `get_main() -> InterpreterID`
    get_main, |state| {
        Ok(interp_id::new(state, tstate::interp_id(tstate::main_interp()))?.into_ptr())
    }
);

kw_entry!(
    /// `is_running(id) -> bool`
    is_running, |state, args, kwds| {
        let [id_obj] = args::objects(args, kwds, c"O:is_running", &[c"id"])?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        let interp = existing(id)?;
        check_single_thread(id, interp)?;
        Ok(ffi::PyBool_FromLong(running(id, interp).into()))
    }
);

kw_entry!(
    /// `is_shareable(obj) -> bool`
    is_shareable_fn, |state, args, kwds| {
        let [obj] = args::objects(args, kwds, c"O:is_shareable", &[c"obj"])?;
        Ok(ffi::PyBool_FromLong(is_shareable(obj, state).into()))
    }
);

/// Converts `shared` (a dict or None) into owned names and values, all or nothing.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
unsafe fn convert_shared(
    shared: *mut ffi::PyObject,
    state: &ModState,
) -> Result<Vec<(CString, subinterpreters_core::Value)>> {
    // SAFETY: (whole body) GIL held; PyDict_Next hands out borrowed references that stay valid
    // while the dict is not mutated, and our conversions run no code that could mutate it
    // except `str()` on an unshareable value, after which we stop iterating.
    unsafe {
        if shared.is_null() || shared == ffi::Py_None() {
            return Ok(Vec::new());
        }
        if ffi::PyDict_Check(shared) == 0 {
            return Err(Error::Type(format!(
                "run_string() argument 'shared' must be a dict or None, not {}",
                crate::py::text::type_name(shared)
            )));
        }
        let mut out = Vec::with_capacity(ffi::PyDict_Size(shared).max(0) as usize);
        let mut pos: ffi::Py_ssize_t = 0;
        let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
        while ffi::PyDict_Next(shared, &mut pos, &mut key, &mut value) != 0 {
            let k = ffi::PyUnicode_AsUTF8(key);
            if k.is_null() {
                return Err(Error::Raised);
            }
            // A C string: 3.11 cuts the name at an embedded NUL.
            let name = std::ffi::CStr::from_ptr(k).to_owned();
            out.push((name, to_value(value, state)?));
        }
        Ok(out)
    }
}

/// Runs code in interpreter `id` as `run_string` does: refuses the main and the current
/// interpreter (and, on 3.11, one with threads of its own), takes the run, calls `prepare` in
/// the caller's interpreter and `body` with its result in the target, then finalizes the
/// interpreter if it lost its last reference meanwhile.
///
/// # Safety
/// GIL held; `body` must leave the target as `thread_cache::visit` requires (no object of the
/// target survives it).
pub(super) unsafe fn run_in<P, T>(
    id: i64,
    prepare: impl FnOnce() -> Result<P>,
    body: impl FnOnce(P) -> Result<T>,
) -> Result<T> {
    // SAFETY: GIL held (contract).
    let interp = unsafe { existing(id)? };
    // SAFETY: GIL held (contract) for the checks; the ticket keeps the interpreter `Running`
    // for us, so nobody finalizes it or runs in it until it is finished; it is not the current
    // interpreter (its id is not the current one's, checked first).
    unsafe {
        if id == 0 || interp == tstate::current_interp() {
            return Err(already_running());
        }
        check_single_thread(id, interp)?;
        // From here on only the ticket's pointer is used: `interp` may have been finalized by
        // another thread since the lookup above (3.12+).
        let ticket = run_ticket(id, ffi::PyThread_get_thread_ident())?;
        let target = ticket.interp();
        // CPython's own module may be running it (3.12+; on 3.12 on a thread state that may be
        // one of ours): refused before attaching, and again by the mark, which cannot be set
        // twice.
        let result = if version::marked_running(target.0) {
            Err(already_running())
        } else {
            prepare().and_then(|prepared| {
                crate::interp::thread_cache::visit(id, target, || {
                    // SAFETY (of the enclosing block): a thread state of `target` is current;
                    // the mark is dropped before the visit ends.
                    let _mark = tstate::RunMark::set(target).ok_or_else(already_running)?;
                    body(prepared)
                })
            })
        };
        if let Some(doomed) = ticket.finish() {
            finalize(doomed, Wait::Nothing);
        }
        result
    }
}

fast_entry!(
    /// `run_string(id, script, shared=None)`
    run_string, |state, fa| {
        // The hot path: positional, with a str script (what "U" would check).
        let [id_obj, script, shared] = fa.objects(
            2,
            c"OU|O:run_string",
            &[c"id", c"script", c"shared"],
            |given| ffi::PyUnicode_Check(given[1]) != 0,
        )?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        existing(id)?;
        let script = c_text(script)?;
        let result = run_in(
            id,
            || convert_shared(shared, state),
            |shared| execute(Job { script, shared }),
        );
        result.map(|()| ffi::Py_NewRef(ffi::Py_None()))
    }
);

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
                interrupt(id, interp, runner);
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
        unsafe { tstate::run_quietly(&code) };
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
unsafe fn interrupt(id: i64, interp: InterpPtr, runner: std::ffi::c_ulong) {
    // SAFETY: visiting an interpreter that another thread is running is what its own threads
    // do too; it cannot be finalized meanwhile (contract: a finalization of ours waits for the
    // list lock, and finds our visitor among its threads and refuses).
    // SetAsyncExc reaches only the current (visited) interpreter's thread state of that OS
    // thread, which is the runner's visitor.
    unsafe {
        crate::interp::thread_cache::visit(id, interp, || {
            ffi::PyThreadState_SetAsyncExc(runner as std::ffi::c_long, ffi::PyExc_SystemExit);
        });
    }
}

/// How an interpreter came to be, in the numbering of CPython 3.14's `_interpreters.WHENCE_*`:
/// 0 unknown, 1 runtime init (main), 2 legacy C-API, 3 C-API, 4 cross-interpreter C-API,
/// 5 the stdlib module (ours report this: we play that module's part).
const WHENCE_RUNTIME: i64 = 1;
const WHENCE_STDLIB: i64 = 5;

kw_entry!(
    /// `_whence(id) -> int`, for `subinterpreters.interpreters.Interpreter.whence`.
    whence, |state, args, kwds| {
        let [id_obj] = args::objects(args, kwds, c"O:_whence", &[c"id"])?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        let code = if id == 0 {
            WHENCE_RUNTIME
        } else if registry::is_created(id) {
            WHENCE_STDLIB
        } else {
            let _list = tstate::lock_interp_list(false, false);
            let interp = existing(id)?;
            version::whence(interp.0)
        };
        Ok(ffi::PyLong_FromLongLong(code))
    }
);
