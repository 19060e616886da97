//! `_serve_queue(id, qid, script, name)`: a thread of the calling interpreter serves a queue by
//! running code in interpreter `id`, one item at a time. It backs `Interpreter.call_async`'s
//! call runner: no thread sits inside the target between items (so the target is not running
//! then, and others may use it), yet an item costs no round through the caller's GIL on 3.12+.
//!
//! Items are taken with no GIL held. A `None` item (the stop marker) or the queue's
//! destruction ends the call, which returns `None`. Any other item is bound to `name` in the
//! target's `__main__` and `script` runs there (taking the item out of `__main__`). The script
//! answers by leaving `(qid, reply)` bound to `name`: `reply` is put on queue `qid` once the run
//! is over, so whoever the reply wakes finds the interpreter no longer running (free for its
//! next `exec`). If the run cannot be made or fails, the call returns `(item, exception)`: the
//! exception `run_string` would have raised, and the item if the script had not taken it yet
//! (else `None`). Unbound items (their interpreter was destroyed) are skipped.
//!
//! How a thread moves (see `docs/threads.md`): on 3.12+, for an interpreter of ours, it waits
//! detached and attaches straight to the target's thread state, taking only the target's GIL,
//! and detaches again; the caller's thread state is attached only to return, to check for
//! signals, or to finalize an interpreter that lost its last reference meanwhile. On 3.11
//! (never move between interpreters by releasing the one GIL) and for interpreters we did not
//! make, each item re-attaches the caller and runs as `run_string` does.

use std::ffi::CString;

use pyo3_ffi as ffi;
use subinterpreters_core::queue::{QueueRef, Received, Wait};
use subinterpreters_core::{QueueError, Value};

use crate::error::{Error, Result};
use crate::id_slots::{id_arg, IdKind};
use crate::interp::api::{already_running, c_text, existing, run_in};
use crate::interp::lifecycle::{finalize, Wait as Finalize};
use crate::interp::registry;
use crate::interp::run::execute_item;
use crate::interp::thread_cache;
use crate::py::pyref::PyRef;
use crate::py::trampoline::fast_entry;
use crate::py::tstate::{self, Away};
use crate::py::version;
use crate::state::ModState;
use crate::values::xi::from_xi;

/// How long a wait for an item lasts before the caller's signal handlers get a chance to run.
const SIGNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

fast_entry!(
    /// `_serve_queue(id, qid, script, name) -> None | (item, exception)` (see the module
    /// documentation).
    serve_queue, |state, fa| {
        let [id_obj, qid, script, name] = fa.objects(
            4,
            c"OOUU:_serve_queue",
            &[c"id", c"qid", c"script", c"name"],
            |given| ffi::PyUnicode_Check(given[2]) != 0 && ffi::PyUnicode_Check(given[3]) != 0,
        )?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        let interp = existing(id)?;
        if id == 0 || interp == tstate::current_interp() {
            return Err(already_running());
        }
        let qid = crate::py::args::int_arg(qid, "queue ID")?;
        let script = c_text(script)?;
        let name = c_text(name)?;
        let handle = QueueRef::open(qid).map_err(Error::Queue)?;
        let direct = version::OWN_GIL && registry::is_created(id);
        serve(state, id, &handle, &script, &name, direct)
    }
);

/// The serving loop; returns with the caller's thread state current.
///
/// # Safety
/// GIL held in the caller's interpreter (`state`'s), which is not interpreter `id`.
unsafe fn serve(
    state: &ModState,
    id: i64,
    handle: &QueueRef,
    script: &CString,
    name: &CString,
    direct: bool,
) -> Result<*mut ffi::PyObject> {
    // SAFETY: GIL held (contract). `PyThread_get_thread_ident` needs no GIL.
    let runner = unsafe { ffi::PyThread_get_thread_ident() };
    // SAFETY: GIL held (contract); dropping `away` makes the caller current again on every
    // path, before the trampoline raises or returns.
    let mut away = unsafe { Away::leave() };
    loop {
        let value = match handle.get(Wait::timeout(Some(SIGNAL_CHECK))) {
            Ok(Received::Value(Value::None)) => break,
            Ok(Received::Value(v)) => v,
            Ok(Received::Unbound | Received::InterpreterDestroyed) => continue,
            Err(QueueError::TimedOut(_) | QueueError::Empty(_)) => {
                // SAFETY: nothing else is attached while waiting; back to the caller to let
                // its signal handlers run, then away again.
                unsafe {
                    away.back();
                    if ffi::PyErr_CheckSignals() < 0 {
                        return Err(Error::Raised);
                    }
                    away.away();
                }
                continue;
            }
            Err(_) => break, // destroyed
        };
        let mut slot = Some(value);
        if direct {
            if let Ok(mut ticket) = registry::begin_run(id, runner, None) {
                let target = ticket.interp();
                // SAFETY: 3.12+, nothing attached; the ticket keeps the interpreter ours,
                // alive and marked running for us until `finish`. CPython's own module
                // running it (its mark) sends us the slow way, which refuses.
                let ran = unsafe {
                    if version::marked_running(target.0) {
                        None
                    } else {
                        thread_cache::visit_detached(&mut ticket, || {
                            // SAFETY (of the enclosing block): a thread state of `target`
                            // is current; the mark is dropped before the visit ends.
                            let _mark = tstate::RunMark::set(target)?;
                            let item = slot.take().expect("the item is taken once");
                            Some(execute_item(script, name, item))
                        })
                        .flatten()
                    }
                };
                let doomed = ticket.finish();
                if let Some(doomed) = doomed {
                    // SAFETY: back in the caller, which is not `doomed`.
                    unsafe {
                        away.back();
                        finalize(doomed, Finalize::Nothing);
                    }
                }
                match ran {
                    Some(Ok(left)) => {
                        // SAFETY: the caller is current if it was made so above.
                        unsafe { away.away() };
                        answer(id, left);
                        continue;
                    }
                    Some(Err((item, err))) => {
                        // SAFETY: nothing else is attached; then the caller is current.
                        unsafe {
                            away.back();
                            return failure(state, item, err);
                        }
                    }
                    None => {} // this thread's cache is gone: the slow way below
                }
            }
            // Refused (busy, gone, exiting): the slow way finds out why, with the GIL.
        }
        // SAFETY: nothing else is attached.
        unsafe { away.back() };
        let mut back = None;
        // SAFETY: GIL held in the caller; the body leaves the target with nothing of it kept.
        // Looked up first, as `run_string` does: the interpreter may be gone since the last item.
        let ran = unsafe {
            existing(id).and_then(|_| {
                run_in(
                    id,
                    || Ok(()),
                    |()| {
                        let item = slot.take().expect("the item is taken once");
                        execute_item(script, name, item).map_err(|(item, err)| {
                            back = item;
                            err
                        })
                    },
                )
            })
        };
        match ran {
            Ok(left) => {
                // SAFETY: the caller is current.
                unsafe { away.away() };
                answer(id, left);
            }
            // SAFETY: the caller is current.
            Err(err) => return unsafe { failure(state, slot.take().or(back), err) },
        }
    }
    drop(away);
    // SAFETY: the caller is current again.
    Ok(unsafe { ffi::Py_NewRef(ffi::Py_None()) })
}

/// Puts the reply a run left, `(qid, reply)`, on its queue, on behalf of interpreter `id` (so
/// the reply follows the queue's rule for items of a destroyed interpreter). Anything else
/// left is dropped, as is a reply whose queue is gone (nobody waits for it).
fn answer(id: i64, left: Option<Value>) {
    let Some(Value::Tuple(mut parts)) = left else {
        return;
    };
    if parts.len() != 2 {
        return;
    }
    let reply = parts.pop();
    if let (Some(Value::Int(qid)), Some(reply)) = (parts.pop(), reply) {
        if let Ok(queue) = QueueRef::open(qid) {
            let _ = queue.put(reply, id, None, Wait::NoWait);
        }
    }
}

/// `(item or None, exception)` for an item that could not be served.
///
/// # Safety
/// GIL held in the interpreter of `state`.
unsafe fn failure(state: &ModState, item: Option<Value>, err: Error) -> Result<*mut ffi::PyObject> {
    // SAFETY: (whole body) GIL held; new references owned by PyRef until the tuple takes them.
    unsafe {
        let item = match item {
            Some(v) => from_xi(v, state)?,
            None => PyRef::from_borrowed(ffi::Py_None()),
        };
        err.restore(Some(state));
        let exc = match version::fetch_exception().and_then(|f| f.value) {
            Some(exc) => exc,
            None => return Err(Error::System("an error without an exception".into())),
        };
        let pair = PyRef::from_owned(ffi::PyTuple_New(2))?;
        ffi::PyTuple_SET_ITEM(pair.as_ptr(), 0, item.into_ptr());
        ffi::PyTuple_SET_ITEM(pair.as_ptr(), 1, exc.into_ptr());
        Ok(pair.into_ptr())
    }
}
