//! Queues of the PEP 734 layer: private module functions (`_queue_*`) over the core's queue
//! registry, and `_QueueBase`, the Rust half of `subinterpreters.interpreters.Queue`. Blocking
//! waits happen in Rust with the caller's GIL released; `_queue_wait` waits on several queues.

pub(crate) mod api;
pub(crate) mod claims;
pub(crate) mod fd_waker;
pub(crate) mod handle;
pub(crate) mod wait;
