//! The process-global interpreter registry: the core's state machine
//! ([`subinterpreters_core::interps`], with its model test) over our interpreter and
//! thread-state pointers, behind one lock, with the waits exit cleanup needs and the gate that
//! counts creations under way.
//!
//! ```text
//! INTERPS: Mutex<Interps<InterpPtr, TStatePtr>>   one per process, shared by all interpreters
//! RUN_ENDED: Condvar                              a run or a finalization attempt ended
//! GATE: Mutex<Gate> + GATE_CHANGED                `create()` calls between their decision to
//!                                                 create and their entry here (or failure);
//!                                                 whether exit cleanup has finished
//! ```
//!
//! Exit cleanup closes the registry first ([`close_for_exit`]): no run or creation starts
//! after that, and cleanup waits for the creations already under way ([`wait_creations`]),
//! so an interpreter half made by a daemon thread is registered (and finalized) before CPython
//! finalizes, never left in CPython's list behind our back.
//!
//! Every operation resolves what it needs in one trip through the lock: a run gets a
//! [`RunTicket`] (the interpreter pointer, whether it is ours, the exited threads' states to
//! delete; the state moved to `Running`) and gives it back in one more trip; a finalization
//! gets a [`Doomed`] (the interpreter and its keeper, the state moved to `Finalizing`). Nobody looks an interpreter
//! up, unlocks, and then marks it. Holding the lock never spans a call into Python.

use std::time::{Duration, Instant};

use subinterpreters_core::interps::{self, Interps};
use subinterpreters_core::sync::{Condvar, Mutex, MutexGuard};

use crate::py::tstate::{InterpPtr, TStatePtr};

pub use subinterpreters_core::interps::Busy;

/// The right to finalize one interpreter: the core's [`interps::Doomed`] (handed out only with
/// the state moved to `Finalizing`, so at most one exists per interpreter), plus what only the
/// extension needs to know. Give it back with [`finalized`] or [`refused`].
#[must_use]
pub struct Doomed {
    core: interps::Doomed<InterpPtr, TStatePtr>,
    made_keeper: bool,
}

impl Doomed {
    fn ours(core: interps::Doomed<InterpPtr, TStatePtr>) -> Doomed {
        Doomed {
            core,
            made_keeper: false,
        }
    }

    /// The interpreter's id.
    pub fn id(&self) -> i64 {
        self.core.id
    }

    /// The interpreter as the registry recorded it (compared with CPython's list before use:
    /// CPython's own module may have finalized one of ours behind our back).
    pub fn interp(&self) -> InterpPtr {
        self.core.interp
    }

    /// Its keeper thread state (for interpreters made by others, the one `Py_EndInterpreter`
    /// will run on).
    pub fn keeper(&self) -> TStatePtr {
        self.core.keeper
    }

    /// Whether the keeper was made for this finalization (an interpreter made by someone else
    /// that had no thread state): deleted again if the finalization is refused.
    pub fn made_keeper(&self) -> bool {
        self.made_keeper
    }
}

type Registry = Interps<InterpPtr, TStatePtr>;

/// An OS thread's id as CPython gives it (`PyThread_get_thread_ident`); the core keeps it as a
/// `u64`, which `c_ulong` is on the platforms we build for.
type Runner = std::ffi::c_ulong;

static INTERPS: Mutex<Registry> = Mutex::new(Interps::new());

/// Signalled (with INTERPS) whenever a run or a finalization attempt ends, for `wait_until_idle`.
static RUN_ENDED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Registry> {
    INTERPS.lock()
}

/// The exit gate: how many `create()` calls are under way (counted under INTERPS's lock, never
/// after [`close_for_exit`]), and whether exit cleanup has finished. `GATE_CHANGED` is signalled with
/// every change.
struct Gate {
    creating: usize,
    cleaned_up: bool,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    creating: 0,
    cleaned_up: false,
});
static GATE_CHANGED: Condvar = Condvar::new();

fn gate() -> MutexGuard<'static, Gate> {
    GATE.lock()
}

/// Waits on `GATE_CHANGED` until `done` holds or `timeout` passes; returns whether it holds.
fn wait_gate(timeout: Duration, done: impl Fn(&Gate) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut g = gate();
    while !done(&g) {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        g = GATE_CHANGED.wait_timeout(g, deadline - now).0;
    }
    true
}

/// One `create()` under way: counted from before CPython makes the interpreter until it is
/// registered ([`Creation::register`]) or the creation failed (dropped), so that exit cleanup
/// can wait for it.
#[must_use]
pub struct Creation(());

/// Starts a creation, unless exit cleanup has begun.
pub fn begin_create() -> Result<Creation, Busy> {
    // Decided and counted under INTERPS's lock: exit cleanup, which closes the registry under
    // that lock, then sees every creation that may still register.
    let map = lock();
    map.may_create()?;
    gate().creating += 1;
    drop(map);
    Ok(Creation(()))
}

impl Creation {
    /// Records the interpreter it made, with no counted references yet, then ends the
    /// creation (in that order: cleanup that sees the count drop finds the entry).
    pub fn register(self, id: i64, interp: InterpPtr, keeper: TStatePtr) {
        lock().register(id, interp, keeper);
    }
}

impl Drop for Creation {
    fn drop(&mut self) {
        let mut g = gate();
        g.creating = g.creating.saturating_sub(1);
        GATE_CHANGED.notify_all();
    }
}

/// Exit cleanup begins: from now on no run starts and no interpreter is created.
pub fn close_for_exit() {
    lock().close_for_exit();
}

/// Waits (blocking, so call it without any GIL) until no creation is under way, or `timeout`
/// passes; returns whether none is. Only meaningful after [`close_for_exit`].
pub fn wait_creations(timeout: Duration) -> bool {
    wait_gate(timeout, |g| g.creating == 0)
}

/// Exit cleanup has finished (whatever it left is CPython's to finalize).
pub fn exit_cleanup_done() {
    gate().cleaned_up = true;
    GATE_CHANGED.notify_all();
}

/// Waits (blocking, so call it without any GIL) until exit cleanup has finished, or `timeout`
/// passes.
pub fn wait_exit_cleanup(timeout: Duration) {
    wait_gate(timeout, |g| g.cleaned_up);
}

/// Whether `id` is one of ours (made by `create()` and not finalized).
pub fn is_created(id: i64) -> bool {
    lock().is_created(id)
}

/// Counts one more `InterpreterID` object for `id`; returns whether it counts (only interpreters
/// made by `create()` are counted: others never end by count). A `Pending` interpreter counted
/// again is no longer due for finalization.
pub fn incref(id: i64) -> bool {
    lock().incref(id)
}

/// Drops one count; when the last goes, the interpreter is due for finalization now (returned)
/// or, if it is busy, when its run ends (see [`RunTicket::finish`]) or its finalization is
/// refused (it becomes `Pending`).
pub fn decref(id: i64) -> Option<Doomed> {
    lock().decref(id).map(Doomed::ours)
}

/// Whether a run or a finalization is in progress for `id`.
pub fn is_running(id: i64) -> bool {
    lock().is_busy(id)
}

/// The right to run code in one interpreter, with everything the run needs from the registry,
/// from one lock trip that found it, checked that nobody else uses it and marked it `Running`.
/// While it lives nobody finalizes the interpreter, so [`RunTicket::interp`] stays valid.
/// [`RunTicket::finish`] ends the run in one more trip. Dropped without it (a panic), it ends
/// the run but never finalizes: an orphaned interpreter becomes `Pending`.
pub struct RunTicket {
    id: i64,
    interp: InterpPtr,
    ours: bool,
    /// Cached thread states of exited OS threads, the run's to delete once inside
    /// ([`RunTicket::take_dead`]); those left are given back at the end.
    dead: Vec<TStatePtr>,
    ended: bool,
}

/// Takes `id` for a run on OS thread `runner`. Interpreters of ours are found in the
/// registry; for one we did not create, pass the pointer CPython's lookup found (`foreign`),
/// which the caller must keep from being finalized by us meanwhile (the interpreter-list lock).
pub fn begin_run(id: i64, runner: Runner, foreign: Option<InterpPtr>) -> Result<RunTicket, Busy> {
    let start = lock().begin_run(id, runner, foreign)?;
    if start.ours {
        crate::interp::nudge::run_started(id, start.interp);
    }
    Ok(RunTicket {
        id,
        interp: start.interp,
        ours: start.ours,
        dead: start.dead,
        ended: false,
    })
}

impl RunTicket {
    /// The interpreter to run in; alive while the ticket is.
    pub fn interp(&self) -> InterpPtr {
        self.interp
    }

    /// The interpreter's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether the interpreter is ours (made by `create()`): its visitors are cached.
    pub fn ours(&self) -> bool {
        self.ours
    }

    /// The exited threads' thread states to delete, once inside the interpreter.
    pub fn take_dead(&mut self) -> Vec<TStatePtr> {
        std::mem::take(&mut self.dead)
    }

    /// Ends the run. If the interpreter lost its last count meanwhile, it is due for
    /// finalization (returned, already `Finalizing`).
    pub fn finish(mut self) -> Option<Doomed> {
        self.ended = true;
        end_run(self.id, true, std::mem::take(&mut self.dead))
    }
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        if !self.ended {
            let _ = end_run(self.id, false, std::mem::take(&mut self.dead));
        }
    }
}

fn end_run(id: i64, may_finalize: bool, dead: Vec<TStatePtr>) -> Option<Doomed> {
    let mut reg = lock();
    RUN_ENDED.notify_all();
    // Under the lock: an interrupt still owed to this run is dropped before another run can
    // start, so it never reaches the next one.
    crate::interp::interrupt::run_ended(id);
    crate::interp::nudge::run_ended(id);
    reg.end_run(id, may_finalize, dead).map(Doomed::ours)
}

/// Takes an interpreter of ours for finalization by `destroy()`.
pub fn take_for_destroy(id: i64) -> Result<Doomed, Busy> {
    lock().take_for_destroy(id).map(Doomed::ours)
}

/// Takes an interpreter made by someone else for finalization through `keeper`, its only
/// thread state (made for this finalization if `made_keeper`); fails if we are running code in
/// it. The caller keeps `interp` from being finalized by us meanwhile (the interpreter-list
/// lock).
pub fn take_foreign(
    id: i64,
    interp: InterpPtr,
    keeper: TStatePtr,
    made_keeper: bool,
) -> Result<Doomed, Busy> {
    let core = lock().take_foreign(id, interp, keeper)?;
    Ok(Doomed { core, made_keeper })
}

/// Forgets an interpreter once it has been finalized.
pub fn finalized(doomed: Doomed) {
    lock().finalized(doomed.core);
    RUN_ENDED.notify_all();
}

/// A finalization was refused (threads still running) and nothing was deleted: the
/// interpreter is usable again, `Pending` if nothing counts on it any more. Its cached thread
/// states stay where they are (their OS threads may reuse them).
pub fn refused(doomed: Doomed) {
    lock().refused(doomed.core);
    RUN_ENDED.notify_all();
}

/// `Pending` interpreters, each moved to `Finalizing` for another attempt.
pub fn take_pending() -> Vec<Doomed> {
    let pending = lock().take_pending();
    pending.into_iter().map(Doomed::ours).collect()
}

/// The ids of every interpreter of ours not finalized yet.
pub fn remaining_created() -> Vec<i64> {
    lock().remaining_created()
}

/// The ids of the interpreters that exit-time cleanup could not leave in a state CPython's own
/// finalization survives: ours not finalized, and any we are still running code in.
pub fn left_at_exit() -> Vec<i64> {
    lock().left_at_exit()
}

/// Records a thread state made on OS thread `thread` to visit `id`, kept for reuse.
pub fn cache_add(id: i64, thread: u64, ts: TStatePtr) {
    lock().cache_add(id, thread, ts);
}

/// Takes the cached thread states of OS threads that have exited (to delete them).
pub fn take_dead_threads(id: i64) -> Vec<TStatePtr> {
    lock().take_dead_threads(id)
}

/// OS thread `thread` is exiting: its cached thread states can no longer be used, and will be
/// deleted by the next visit or the finalization of their interpreter.
pub fn thread_exited(thread: u64, states: impl IntoIterator<Item = (i64, TStatePtr)>) {
    lock().thread_exited(thread, states);
}

/// Every thread state of ours in `id` besides its keeper (cached visitors, live or of exited
/// threads), for a finalization, which needs the keeper alone. They stay recorded: only a
/// finalization that goes through deletes them (and then forgets the whole entry).
pub fn thread_states(id: i64) -> Vec<TStatePtr> {
    lock().thread_states(id)
}

/// How many thread states of `id` are ours besides its keeper (cached visitors).
pub fn cached_count(id: i64) -> usize {
    lock().cached_count(id)
}

/// The interpreters (ours or not) that a `run_string` of ours is running now, with the OS
/// thread running it.
pub fn runs_in_progress() -> Vec<(i64, InterpPtr, Runner)> {
    lock().runs_in_progress()
}

/// Calls `f` with the interpreter and OS thread of the run of ours in progress in `id` (`None`
/// if there is none), under the registry lock: the run cannot end (nor the interpreter be
/// finalized) before `f` returns. `f` must not call into Python nor take this lock again.
pub fn with_run<R>(id: i64, f: impl FnOnce(Option<(InterpPtr, Runner)>) -> R) -> R {
    let reg = lock();
    f(reg.run_of(id))
}

/// The interpreter `id` if a run on OS thread `runner` is still in progress in it.
pub fn running_on(id: i64, runner: Runner) -> Option<InterpPtr> {
    lock().running_on(id, runner)
}

/// Waits (blocking, so call it without any GIL) until no interpreter is being finalized (by
/// another thread), or `timeout` passes; returns whether none is.
pub fn wait_finalizations(timeout: Duration) -> bool {
    wait_for(timeout, |reg| !reg.any_finalizing())
}

/// Waits (blocking, so call it without any GIL) until `id` is neither running nor being
/// finalized, or `timeout` passes; returns whether it is idle (or gone).
pub fn wait_until_idle(id: i64, timeout: Duration) -> bool {
    wait_for(timeout, |reg| !reg.is_busy(id))
}

/// Waits on `RUN_ENDED` until `done` holds for the registry, or `timeout` passes; returns
/// whether it holds.
fn wait_for(timeout: Duration, done: impl Fn(&Registry) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut reg = lock();
    loop {
        if done(&reg) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        reg = RUN_ENDED.wait_timeout(reg, deadline - now).0;
    }
}
