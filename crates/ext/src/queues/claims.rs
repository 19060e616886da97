//! `_claim_open`, `_claim_take`, `_claim_count`: the core's one-time claims (see
//! `subinterpreters_core::claims`), by which a pool's worker and the task's submitter settle
//! whether a queued task runs or is cancelled, from any interpreter.

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
    /// `_claim_take(id) -> bool`: True for the one caller that takes the open claim.
    claim_take, |_state, fa| {
        let [id] = <[_; 1]>::try_from(positional(&fa, "_claim_take", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(id, "claim ID")?;
        let taken = u64::try_from(id).is_ok_and(claims::take);
        Ok(ffi::PyBool_FromLong(taken.into()))
    }
);

noargs_entry!(
    /// `_claim_count() -> int`: how many claims are open, in the whole process.
    claim_count, |_state| {
        Ok(ffi::PyLong_FromSize_t(claims::open_count()))
    }
);
