//! `_queue_wait(queues, timeout) -> list`, behind `interpreters.wait()`: blocks with the GIL
//! released until at least one of the queues has an item (or is destroyed: its `get` then
//! fails at once), and returns those, in the order given; `[]` once `timeout` has passed.
//!
//! The core's `wait_any` does the waiting (one waker per queue ringing one bell, no polling).
//! As the blocking `get` does, the wait comes back for signal handlers every
//! [`SIGNAL_CHECK`](super::api::SIGNAL_CHECK), and an interrupt of this thread's run cuts it
//! short.

use pyo3_ffi as ffi;
use subinterpreters_core::queue::{wait_any, QueueRef, Selected, Wait};

use crate::error::{Error, Result};
use crate::interp::interrupt::Waiting;
use crate::py::args::positional;
use crate::py::pyref::PyRef;
use crate::py::text::type_name;
use crate::py::trampoline::fast_entry;
use crate::py::tstate;

use super::api::{wait_arg, SIGNAL_CHECK};
use super::handle::handle_of;

fast_entry!(
    /// `_queue_wait(queues, timeout) -> list` (see the module documentation).
    queue_wait, |state, fa| {
        let [queues, timeout] = <[_; 2]>::try_from(positional(&fa, "_queue_wait", 2, 2)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let wait = wait_arg(std::ptr::null_mut(), timeout)?;
        // A tuple of our own: the objects (and so their handles) stay alive while the GIL is
        // released, whatever other threads do to the caller's sequence.
        let queues = PyRef::from_owned(ffi::PySequence_Tuple(queues))?;
        let n = ffi::PyTuple_GET_SIZE(queues.as_ptr());
        let mut handles: Vec<&QueueRef> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let obj = ffi::PyTuple_GET_ITEM(queues.as_ptr(), i);
            if ffi::PyObject_TypeCheck(obj, state.queue_base_type.cast()) == 0 {
                return Err(Error::Type(format!(
                    "wait() expects queues (subinterpreters.interpreters.Queue), got {}",
                    type_name(obj)
                )));
            }
            handles.push(handle_of(obj)?);
        }
        let ready = match wait_any(&handles, Wait::NoWait, None) {
            Selected::Ready(ready) => ready,
            _ if wait == Wait::NoWait => Vec::new(),
            _ => wait_blocking(&handles, wait)?,
        };
        let picked = ready.into_iter().map(|i| {
            Ok(PyRef::from_borrowed(ffi::PyTuple_GET_ITEM(queues.as_ptr(), i as ffi::Py_ssize_t)))
        });
        Ok(crate::py::pyref::new_list(picked)?.into_ptr())
    }
);

/// The blocking part: slices of [`SIGNAL_CHECK`] with the GIL released; the positions ready,
/// empty once `wait` has expired.
///
/// # Safety
/// GIL held; `handles` stay alive throughout (the caller owns their objects).
unsafe fn wait_blocking(handles: &[&QueueRef], wait: Wait) -> Result<Vec<usize>> {
    // SAFETY: GIL held (contract).
    let waiting = unsafe { Waiting::begin()? };
    loop {
        // SAFETY: GIL held; the wait touches only Rust data.
        let found = unsafe {
            tstate::detached(|| {
                wait_any(handles, wait.capped(SIGNAL_CHECK), Some(waiting.cancel()))
            })
        };
        match found {
            Selected::Ready(ready) => return Ok(ready),
            // SAFETY: GIL held again, on the thread that began the wait.
            Selected::Cancelled => return Err(unsafe { waiting.raise() }),
            Selected::TimedOut if wait.is_expired() => return Ok(Vec::new()),
            Selected::TimedOut => {
                // SAFETY: GIL held again.
                if unsafe { ffi::PyErr_CheckSignals() } < 0 {
                    return Err(Error::Raised);
                }
            }
        }
    }
}
