//! `_claim_open`, `_claim_take`, `_claim_is_open`, `_claim_run`, `_claim_interrupt`,
//! `_claim_release`, `_claim_count`: the core's one-time claims (see
//! `subinterpreters_core::claims`), by which a pool's worker and the task's submitter settle
//! whether a queued task runs or is cancelled, the pool finds the task a dead worker had
//! started, and the submitter interrupts that task (and no other) while it runs, from any
//! interpreter.

use pyo3_ffi as ffi;
use subinterpreters_core::claims;

use crate::error::{Error, Result};
use crate::interp::interrupt;
use crate::py::args::{int_arg, positional};
use crate::py::pyref::PyRef;
use crate::py::trampoline::{fast_entry, noargs_entry};
use crate::py::version;

noargs_entry!(
    /// `_claim_open() -> int`: a new open claim.
    claim_open, |_state| {
        Ok(ffi::PyLong_FromUnsignedLongLong(claims::open()))
    }
);

/// A claim id argument: a claim that cannot exist (negative, too large) is 0, never opened.
///
/// # Safety
/// GIL held; `obj` live.
unsafe fn claim_arg(obj: *mut ffi::PyObject) -> Result<u64> {
    // SAFETY: forwarded contract.
    let id = unsafe { int_arg(obj, "claim ID")? };
    Ok(u64::try_from(id).unwrap_or(0))
}

/// A holder argument: a non-negative integer.
///
/// # Safety
/// GIL held; `obj` live.
unsafe fn holder_arg(obj: *mut ffi::PyObject) -> Result<u64> {
    // SAFETY: forwarded contract.
    let holder = unsafe { int_arg(obj, "holder")? };
    u64::try_from(holder).map_err(|_| Error::Value("holder must be a non-negative integer".into()))
}

fast_entry!(
    /// `_claim_take(id, holder=0) -> bool`: True for the one caller that takes the open claim;
    /// a nonzero `holder` then holds it (see `_claim_release`).
    claim_take, |_state, fa| {
        let args = positional(&fa, "_claim_take", 1, 2)?;
        let id = claim_arg(args[0])?;
        let holder = match args.get(1) {
            Some(&h) => holder_arg(h)?,
            None => 0,
        };
        let taken = claims::take_as(id, holder);
        Ok(ffi::PyBool_FromLong(taken.into()))
    }
);

fast_entry!(
    /// `_claim_is_open(id) -> bool`: whether nobody has taken the claim yet.
    claim_is_open, |_state, fa| {
        let [id] = <[_; 1]>::try_from(positional(&fa, "_claim_is_open", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let open = claims::is_open(claim_arg(id)?);
        Ok(ffi::PyBool_FromLong(open.into()))
    }
);

fast_entry!(
    /// `_claim_run(id, holder, fn, *args) -> None | (ok, value, interrupted)`: takes the open
    /// claim as `holder` (see `_claim_take`) to run its task on this thread, and calls
    /// `fn(*args)`; `None` if the claim was not open. `ok` says whether `fn` returned (`value`)
    /// or raised (`value` is the exception); `interrupted` whether `_claim_interrupt` was asked
    /// meanwhile. An interrupt of the claim strikes only inside `fn`: nothing of it is left
    /// once this returns.
    claim_run, |_state, fa| {
        let given = positional(&fa, "_claim_run", 3, usize::MAX)?;
        let claim = claim_arg(given[0])?;
        let holder = holder_arg(given[1])?;
        let func = given[2];
        let rest = &given[3..];
        // The call runs inside the entry's unsafe block: GIL held, the arguments CPython's,
        // live for this call.
        let ran = interrupt::claim_scope(claim, holder, || {
            PyRef::from_owned(ffi::PyObject_Vectorcall(
                func,
                rest.as_ptr(),
                rest.len(),
                std::ptr::null_mut(),
            ))
        });
        let Some((outcome, interrupted)) = ran else {
            return Ok(ffi::Py_NewRef(ffi::Py_None()));
        };
        let (ok, value) = match outcome {
            Ok(value) => (true, value),
            Err(Error::Raised) => match version::fetch_exception().and_then(|f| f.value) {
                Some(exc) => (false, exc),
                None => return Err(Error::System("an error without an exception".into())),
            },
            Err(err) => return Err(err),
        };
        let out = PyRef::from_owned(ffi::PyTuple_New(3))?;
        ffi::PyTuple_SET_ITEM(out.as_ptr(), 0, ffi::PyBool_FromLong(ok.into()));
        ffi::PyTuple_SET_ITEM(out.as_ptr(), 1, value.into_ptr());
        ffi::PyTuple_SET_ITEM(out.as_ptr(), 2, ffi::PyBool_FromLong(interrupted.into()));
        Ok(out.into_ptr())
    }
);

fast_entry!(
    /// `_claim_interrupt(id, exc) -> bool`: raises `exc` (a built-in exception class)
    /// asynchronously in the task of the claim, if it runs now (see `_claim_run`) and was not
    /// interrupted before: whether this call did.
    claim_interrupt, |_state, fa| {
        let [id, exc] = <[_; 2]>::try_from(positional(&fa, "_claim_interrupt", 2, 2)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let hit = interrupt::interrupt_claim(claim_arg(id)?, exc)?;
        Ok(ffi::PyBool_FromLong(hit.into()))
    }
);

fast_entry!(
    /// `_claim_release(holder) -> int`: the claim `holder` held (0 if none), let go of.
    claim_release, |_state, fa| {
        let [holder] = <[_; 1]>::try_from(positional(&fa, "_claim_release", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let held = claims::release(holder_arg(holder)?);
        Ok(ffi::PyLong_FromUnsignedLongLong(held))
    }
);

noargs_entry!(
    /// `_claim_count() -> int`: how many claims are open, held or running, in the whole
    /// process.
    claim_count, |_state| {
        Ok(ffi::PyLong_FromSize_t(claims::count()))
    }
);
