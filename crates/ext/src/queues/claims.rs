//! `_claim_open`, `_claim_take`, `_claim_is_open`, `_claim_release`, `_claim_count`: the core's
//! one-time claims (see `subinterpreters_core::claims`), by which a pool's worker and the
//! task's submitter settle whether a queued task runs or is cancelled, and the pool finds the
//! task a dead worker had started, from any interpreter.

use pyo3_ffi as ffi;
use subinterpreters_core::claims;

use crate::error::Error;
use crate::py::args::{int_arg, positional};
use crate::py::trampoline::{fast_entry, noargs_entry};

noargs_entry!(
    /// `_claim_open() -> int`: a new open claim.
    claim_open, |_state| {
        Ok(ffi::PyLong_FromUnsignedLongLong(claims::open()))
    }
);

fast_entry!(
    /// `_claim_take(id, holder=0) -> bool`: True for the one caller that takes the open claim;
    /// a nonzero `holder` then holds it (see `_claim_release`).
    claim_take, |_state, fa| {
        let args = positional(&fa, "_claim_take", 1, 2)?;
        let id = int_arg(args[0], "claim ID")?;
        let holder = match args.get(1) {
            Some(&h) => u64::try_from(int_arg(h, "holder")?)
                .map_err(|_| Error::Value("holder must be a non-negative integer".into()))?,
            None => 0,
        };
        let taken = u64::try_from(id).is_ok_and(|id| claims::take_as(id, holder));
        Ok(ffi::PyBool_FromLong(taken.into()))
    }
);

fast_entry!(
    /// `_claim_is_open(id) -> bool`: whether nobody has taken the claim yet.
    claim_is_open, |_state, fa| {
        let [id] = <[_; 1]>::try_from(positional(&fa, "_claim_is_open", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(id, "claim ID")?;
        let open = u64::try_from(id).is_ok_and(claims::is_open);
        Ok(ffi::PyBool_FromLong(open.into()))
    }
);

fast_entry!(
    /// `_claim_release(holder) -> int`: the claim `holder` held (0 if none), let go of.
    claim_release, |_state, fa| {
        let [holder] = <[_; 1]>::try_from(positional(&fa, "_claim_release", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let held = u64::try_from(int_arg(holder, "holder")?).map_or(0, claims::release);
        Ok(ffi::PyLong_FromUnsignedLongLong(held))
    }
);

noargs_entry!(
    /// `_claim_count() -> int`: how many claims are open or held, in the whole process.
    claim_count, |_state| {
        Ok(ffi::PyLong_FromSize_t(claims::count()))
    }
);
