//! Queues of the PEP 734 layer: private module functions (`_queue_*`) over the core's queue
//! registry, and `_QueueBase`, the Rust half of `subinterpreters.interpreters.Queue`. Blocking
//! waits happen in Rust with the caller's GIL released; `_queue_wait` waits on several queues.

use crate::py::trampoline::method_def;

pub(crate) mod api;
pub(crate) mod claims;
pub(crate) mod fd_waker;
pub(crate) mod handle;
pub(crate) mod wait;

/// The module functions of this area, added to each module object by `module.rs`.
pub(crate) static mut METHODS: [pyo3_ffi::PyMethodDef; 23] = [
    method_def!(fast c"_queue_register", api::queue_register, c"Register the classes of subinterpreters.interpreters (private)."),
    method_def!(fast c"_queue_create", api::queue_create, c"_queue_create(maxsize, unbound, fallback, unlisted=False) -> id (private)."),
    method_def!(fast c"_queue_destroy", api::queue_destroy, c"_queue_destroy(id) (private)."),
    method_def!(fast c"_queue_bind", api::queue_bind, c"_queue_bind(id) (private)."),
    method_def!(fast c"_queue_release", api::queue_release, c"_queue_release(id) (private)."),
    method_def!(fast c"_queue_put", api::queue_put, c"_queue_put(id, obj, unbound, block, timeout) (private)."),
    method_def!(fast c"_queue_get", api::queue_get, c"_queue_get(id, block, timeout) -> (obj, unbound) (private)."),
    method_def!(fast c"_queue_put_get", api::queue_put_get, c"_queue_put_get(put_id, obj, get_id) -> (obj, unbound) (private): put, then wait for an item.\n"),
    method_def!(fast c"_queue_qsize", api::queue_qsize, c"_queue_qsize(id) -> int (private)."),
    method_def!(fast c"_queue_info", api::queue_info, c"_queue_info(id) -> (maxsize, unbound, fallback) (private)."),
    method_def!(fast c"_queue_wait", wait::queue_wait, c"_queue_wait(queues, timeout) -> list (private): the queues that have an item."),
    method_def!(fast c"_queue_add_fd_waker", fd_waker::queue_add_fd_waker, c"_queue_add_fd_waker(id, fd) -> token (private)."),
    method_def!(fast c"_queue_remove_waker", fd_waker::queue_remove_waker, c"_queue_remove_waker(id, token) -> bool (private)."),
    method_def!(noargs c"_queue_list_all", api::queue_list_all, c"_queue_list_all() -> [(id, unbound, fallback)] (private)."),
    method_def!(noargs c"_claim_open", claims::claim_open, c"_claim_open() -> id (private): a new one-time claim."),
    method_def!(fast c"_claim_take", claims::claim_take, c"_claim_take(id, holder=0) -> bool (private): True for the one caller that takes the claim."),
    method_def!(fast c"_claim_is_open", claims::claim_is_open, c"_claim_is_open(id) -> bool (private): nobody has taken the claim yet."),
    method_def!(fast c"_claim_release", claims::claim_release, c"_claim_release(holder) -> id (private): the claim the holder held (0: none), let go of."),
    method_def!(fast c"_claim_run", claims::claim_run, c"_claim_run(id, holder, fn, *args) -> (ok, value, interrupted) | None (private): take the open claim as holder and make its call fn(*args), interruptible."),
    method_def!(fast c"_claim_interrupt", claims::claim_interrupt, c"_claim_interrupt(id, exc) -> bool (private): interrupt the claim's call if it is being made now."),
    method_def!(noargs c"_claim_count", claims::claim_count, c"_claim_count() -> int (private): claims open, held or running in the process."),
    method_def!(fast c"_xi_is_shareable", api::xi_is_shareable, c"_xi_is_shareable(obj) -> bool (private)."),
    pyo3_ffi::PyMethodDef::zeroed(),
];
