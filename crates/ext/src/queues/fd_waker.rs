//! Readiness file descriptors for queues: `_queue_add_fd_waker(id, fd) -> token` registers a
//! core waker that writes an 8-byte 1 to `fd` (an eventfd adds 1 to its counter; a pipe gets 8
//! bytes) whenever an item is put, room is freed (bounded queues), or the queue is destroyed; so
//! an event loop watching `fd` (asyncio's `loop.add_reader`) wakes without polling and without
//! a thread.
//! `_queue_remove_waker(id, token)` unregisters it.
//!
//! The write happens on whichever thread changed the queue, with no lock held and no GIL
//! needed. It never blocks on a descriptor opened non-blocking; a full pipe or counter
//! (`EAGAIN`) is ignored, since the reader is due to wake anyway. The caller must remove the
//! waker before closing the descriptor (otherwise a later file reusing the number would get the
//! bytes).

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};

use pyo3_ffi as ffi;
use subinterpreters_core::queue::{QueueRef, WakerId};
use subinterpreters_core::sync::Arc;

use crate::error::Error;
use crate::py::args::{int_arg, positional};
use crate::py::trampoline::fast_entry;

/// Writes one readiness signal to `fd`, ignoring every error (EAGAIN above all).
fn signal(fd: RawFd) {
    // SAFETY: `fd` is a descriptor the registrant keeps open while the waker is registered
    // (module contract); ManuallyDrop keeps the File from closing it.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let _ = (&*file).write(&1u64.to_ne_bytes());
}

fast_entry!(
    /// `_queue_add_fd_waker(id, fd) -> token`: registers a waker writing to `fd` (see the
    /// module documentation); the token is for `_queue_remove_waker`.
    queue_add_fd_waker, |_state, fa| {
        let [qid, fd] = <[_; 2]>::try_from(positional(&fa, "_queue_add_fd_waker", 2, 2)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(qid, "queue ID")?;
        let fd = int_arg(fd, "fd")?;
        let fd = RawFd::try_from(fd)
            .ok()
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| Error::Value(format!("invalid file descriptor {fd}")))?;
        let handle = QueueRef::open(id).map_err(Error::Queue)?;
        let token = handle
            .add_waker(Arc::new(move || signal(fd)))
            .map_err(Error::Queue)?;
        Ok(ffi::PyLong_FromUnsignedLongLong(token.to_raw()))
    }
);

fast_entry!(
    /// `_queue_remove_waker(id, token) -> bool`: unregisters a waker; False if it was not
    /// registered (or the queue is destroyed). An unknown queue id raises QueueNotFoundError.
    queue_remove_waker, |_state, fa| {
        let [qid, token] = <[_; 2]>::try_from(positional(&fa, "_queue_remove_waker", 2, 2)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(qid, "queue ID")?;
        let token = int_arg(token, "token")?;
        let token = u64::try_from(token)
            .map_err(|_| Error::Value(format!("invalid waker token {token}")))?;
        let handle = QueueRef::open(id).map_err(Error::Queue)?;
        let removed = handle.remove_waker(WakerId::from_raw(token));
        Ok(ffi::PyBool_FromLong(removed.into()))
    }
);
