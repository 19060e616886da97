//! Interpreters: the Python-facing functions, the `InterpreterID` type, the process-global
//! bookkeeping of the interpreters we made, running a script in one, serving a queue with one,
//! interrupting a run,
//! and the per-OS-thread cache of thread states used to visit them.

pub(crate) mod api;
pub(crate) mod id;
pub(crate) mod interrupt;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod thread_cache;
