//! The interpreter half of the module's entry points: `create`, `destroy`, `list_all`,
//! `get_current`, `get_main`, `is_running`, `run_string`, `is_shareable`, `_whence`, and the
//! checks and run tickets they share. How interpreters end is `lifecycle.rs`'s.

use std::ffi::{c_int, c_void, CString};

use pyo3_ffi as ffi;

use crate::error::{Error, InterpError, Result};
use crate::id_slots::{id_arg, IdKind};
use crate::interp::id as interp_id;
use crate::interp::lifecycle::{exiting, finalize, reap_pending, threading_loaded, Wait};
use crate::interp::registry::{self as registry, Busy, Doomed, RunTicket};
use crate::interp::run::{execute, Job};
use crate::py::args;
use crate::py::capi;
use crate::py::trampoline::{fast_entry, kw_entry, noargs_entry};
use crate::py::tstate::{self, InterpPtr};
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
    // A nudger's thread state (3.11, `nudge.rs`) is ours too, made for a moment.
    if count > 1 + registry::cached_count(id) + crate::interp::nudge::extra_threads(interp) {
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
            crate::interp::thread_cache::created_here(id, keeper);
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
/// interpreter if it lost its last reference meanwhile. The caller has checked that `id`
/// exists; for an interpreter of ours the registry alone is asked after that, once to start
/// (the ticket) and once to end.
///
/// # Safety
/// GIL held; `body` must leave the target as `thread_cache::visit` requires (no object of the
/// target survives it).
pub(super) unsafe fn run_in<P, T>(
    id: i64,
    prepare: impl FnOnce() -> Result<P>,
    body: impl FnOnce(P) -> Result<T>,
) -> Result<T> {
    // SAFETY: GIL held (contract) for the checks; the ticket keeps the interpreter `Running`
    // for us, so nobody finalizes it or runs in it until it is finished; it is not the current
    // interpreter (its id is not the current one's, checked first).
    unsafe {
        // The main and the current interpreter exist: refused by id, with no lookup.
        if id == 0 || id == tstate::interp_id(tstate::current_interp()) {
            return Err(already_running());
        }
        if version::SINGLE_THREAD_RULE {
            check_single_thread(id, existing(id)?)?;
        }
        let mut ticket = run_ticket(id, ffi::PyThread_get_thread_ident())?;
        let target = ticket.interp();
        // CPython's own module may be running it (3.12+; on 3.12 on a thread state that may be
        // one of ours): refused before attaching, and again by the mark, which cannot be set
        // twice.
        let result = if version::marked_running(target.0) {
            Err(already_running())
        } else {
            prepare().and_then(|prepared| {
                crate::interp::thread_cache::visit(&mut ticket, || {
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

kw_entry!(
    /// `_uses_threading(id) -> bool`: whether the interpreter has imported `threading` (so
    /// `Interpreter.close()` has its shutdown callbacks to run; most interpreters have none).
    /// Refused as `run_string` is for a running, the current or the main interpreter.
    uses_threading, |state, args, kwds| {
        let [id_obj] = args::objects(args, kwds, c"O:_uses_threading", &[c"id"])?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        existing(id)?;
        // SAFETY (of the entry's block): the target is current inside the body, with its GIL.
        let loaded = run_in(id, || Ok(()), |()| Ok(threading_loaded()))?;
        Ok(ffi::PyBool_FromLong(loaded.into()))
    }
);

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
