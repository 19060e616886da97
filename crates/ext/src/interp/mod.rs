//! Interpreters: the Python-facing functions, the `InterpreterID` type, the process-global
//! bookkeeping of the interpreters we made, running a script in one, making a call in one (the
//! protocol's fast path), serving a queue with one,
//! interrupting a run, keeping a busy one from starving the others on 3.11, how they end (finalization, exit clean-up), and the per-OS-thread cache
//! of thread states used to visit them.

use crate::py::trampoline::method_def;

pub(crate) mod api;
pub(crate) mod call;
pub(crate) mod id;
pub(crate) mod interrupt;
pub(crate) mod lifecycle;
pub(crate) mod nudge;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod thread_cache;

/// The module functions of this area, added to each module object by `module.rs`.
pub(crate) static mut METHODS: [pyo3_ffi::PyMethodDef; 15] = [
    method_def!(kw c"create", api::create, c"create(*, isolated=True) -> ID\n\nCreate a new interpreter and return its ID. On 3.12+ an isolated interpreter has its\nown GIL; isolated=False gives a legacy one that shares the main interpreter's GIL."),
    method_def!(kw c"destroy", api::destroy, c"destroy(id)\n\nDestroy the identified interpreter.\n\nDestroying the current interpreter, a running one or an unknown ID raises RuntimeError."),
    method_def!(noargs c"list_all", api::list_all, c"list_all() -> [ID]\n\nReturn the IDs of every existing interpreter, in ascending order."),
    method_def!(noargs c"get_current", api::get_current, c"get_current() -> ID\n\nReturn the ID of the current interpreter."),
    method_def!(noargs c"get_main", api::get_main, c"get_main() -> ID\n\nReturn the ID of the main interpreter."),
    method_def!(kw c"is_running", api::is_running, c"is_running(id) -> bool\n\nReturn whether the identified interpreter is running code."),
    method_def!(fast c"run_string", api::run_string, c"run_string(id, script, shared=None)\n\nExecute the source string in the identified interpreter's __main__ module, after\ncopying the shareable values of the dict `shared` into it. A failure raises\nRunFailedError carrying the remote exception's type name and traceback."),
    method_def!(kw c"interrupt", interrupt::interrupt, c"interrupt(id, exc) -> bool\n\nRaise exc (a built-in exception class) asynchronously in the code our run in the\nidentified interpreter is executing. Return False if nothing of ours runs there."),
    method_def!(kw c"is_shareable", api::is_shareable_fn, c"is_shareable(obj) -> bool\n\nReturn True if the object's data may be shared between interpreters."),
    method_def!(noargs c"_clean_up_at_exit", lifecycle::clean_up_at_exit, c"Destroy every idle interpreter made by create() (registered with atexit)."),
    method_def!(fast c"_serve_queue", serve::serve_queue, c"_serve_queue(id, qid, script, name) -> None | (item, exception) (private): run script in\nthe interpreter for each item of the queue, bound to name in its __main__, until a None item."),
    method_def!(fast c"_call_code", call::call_code, c"_call_code(id, fdata, akind, adata) -> (status, payload) | None (private): make one call of\nthe call protocol (code, scalar arguments) in the interpreter, as run_string runs a script;\nNone if the code cannot be called so (nothing ran)."),
    method_def!(kw c"_uses_threading", api::uses_threading, c"_uses_threading(id) -> bool (private): whether the interpreter has imported threading."),
    method_def!(kw c"_whence", api::whence, c"_whence(id) -> int (private): how the interpreter was created."),
    pyo3_ffi::PyMethodDef::zeroed(),
];
