//! Queues of the PEP 734 layer: private module functions (`_queue_*`) over the core's queue
//! registry, which `subinterpreters.interpreters.Queue` wraps. Blocking waits happen in Rust
//! with the caller's GIL released.

pub(crate) mod api;
pub(crate) mod fd_waker;
