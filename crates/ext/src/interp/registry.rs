//! Process-global bookkeeping of interpreters: which ones we created (with their keeper thread
//! states), how many `InterpreterID` objects count on each, and what each is doing now.
//!
//! ```text
//! INTERPS: Mutex<BTreeMap<id, Entry>>        one per process, shared by all interpreters
//! └── Entry
//!     ├── interp, keeper      (raw pointers; owned by CPython, finalized only by the holder of
//!     │                        a `Doomed`, which only a move into `State::Finalizing` hands out)
//!     ├── refs                live counted InterpreterID objects, in any interpreter
//!     ├── state               Idle | Running { runner } | Finalizing | Pending
//!     ├── cached              idle thread states kept for reuse, one per OS thread that ran
//!     │                       code here (see thread_cache.rs); deleted at finalization
//!     └── dead_threads        cached ones whose OS thread has exited: deleted at next visit
//! EXITING: AtomicBool                        set under INTERPS's lock when exit cleanup begins
//! GATE: Mutex<Gate>                         `create()` calls between their decision to create
//!                                            and their entry here (or their failure); whether
//!                                            exit cleanup has finished
//! ```
//!
//! Exit cleanup closes the registry first ([`close_for_exit`]): no run or creation starts
//! after that, and cleanup waits for the creations already under way ([`wait_creations`]),
//! so an interpreter half made by a daemon thread is registered (and finalized) before CPython
//! finalizes, never left in CPython's list behind our back.
//!
//! Every operation resolves what it needs in one trip through the lock: a run gets a
//! [`RunTicket`] (the interpreter pointer, the state moved to `Running`), a finalization a
//! [`Doomed`] (the keeper, the state moved to `Finalizing`); nobody looks an interpreter up,
//! unlocks, and then marks it. Interpreters we did not create (main, or ones made by other
//! modules) get an entry only while we run code in them or finalize them, so that two uses
//! cannot overlap. Holding the lock never spans a call into Python.

use std::collections::BTreeMap;
use std::ffi::c_ulong;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use subinterpreters_core::sync::{Condvar, Mutex, MutexGuard};

use crate::py::tstate::{InterpPtr, TStatePtr};

/// What an interpreter is doing. Every change happens under the registry lock, so a state read
/// there is the truth until the lock is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nobody uses it.
    Idle,
    /// A `run_string` is in progress on the OS thread `runner` (`threading.get_ident()`).
    Running { runner: c_ulong },
    /// One thread holds its `Doomed` and is finalizing it (or waiting for its threads first).
    Finalizing,
    /// Ours, with no counted `InterpreterID` left, but its finalization was refused because
    /// threads still ran in it: retried at the next `create()`/`destroy()` and at exit. It can
    /// still run code (by integer id) meanwhile.
    Pending,
}

/// The state we keep for one interpreter.
struct Entry {
    interp: InterpPtr,
    /// `Some` for interpreters made by our `create()`: their keeper thread state.
    keeper: Option<TStatePtr>,
    refs: usize,
    state: State,
    cached: Vec<(u64, TStatePtr)>,
    dead_threads: Vec<TStatePtr>,
}

impl Entry {
    fn new(interp: InterpPtr, keeper: Option<TStatePtr>, state: State) -> Entry {
        Entry {
            interp,
            keeper,
            refs: 0,
            state,
            cached: Vec::new(),
            dead_threads: Vec::new(),
        }
    }

    /// Moves an idle interpreter of ours to `Finalizing` and hands out its keeper.
    fn doom(&mut self, id: i64) -> Option<Doomed> {
        let keeper = self.keeper?;
        match self.state {
            State::Idle | State::Pending => {
                self.state = State::Finalizing;
                Some(Doomed {
                    id,
                    interp: self.interp,
                    keeper,
                    made_keeper: false,
                })
            }
            State::Running { .. } | State::Finalizing => None,
        }
    }

    fn busy(&self) -> bool {
        matches!(self.state, State::Running { .. } | State::Finalizing)
    }
}

static INTERPS: Mutex<BTreeMap<i64, Entry>> = Mutex::new(BTreeMap::new());

/// Signalled (with INTERPS) whenever a run or a finalization attempt ends, for `wait_until_idle`.
static RUN_ENDED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, BTreeMap<i64, Entry>> {
    INTERPS.lock()
}

/// The right to finalize one interpreter: handed out only with its state moved to
/// `Finalizing`, so at most one exists per interpreter. Give it back with [`finalized`] or
/// [`refused`].
#[must_use]
pub struct Doomed {
    /// The interpreter's id.
    pub id: i64,
    /// The interpreter as the registry recorded it (compared with CPython's list before use:
    /// CPython's own module may have finalized one of ours behind our back).
    pub interp: InterpPtr,
    /// Its keeper thread state (for interpreters made by others, the one `Py_EndInterpreter`
    /// will run on).
    pub keeper: TStatePtr,
    /// Whether `keeper` was made for this finalization (an interpreter made by someone else
    /// that had no thread state): deleted again if the finalization is refused.
    pub made_keeper: bool,
}

/// Why an interpreter cannot be taken for a run or a finalization, or made.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// Another run or finalization is in progress.
    Running,
    /// We have no entry for the interpreter (it is not ours, or it was finalized).
    Unknown,
    /// Exit cleanup has begun: nothing new starts.
    Exiting,
}

/// Set, under INTERPS's lock, when exit cleanup begins; read under that lock by everything that
/// would start a run or a creation, so cleanup's later looks at the registry see all there is.
static EXITING: AtomicBool = AtomicBool::new(false);

/// The exit gate: how many `create()` calls are under way (counted under INTERPS's lock, never
/// after `EXITING`), and whether exit cleanup has finished. `GATE_CHANGED` is signalled with
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
    let map = lock();
    if EXITING.load(Ordering::Relaxed) {
        return Err(Busy::Exiting);
    }
    gate().creating += 1;
    drop(map);
    Ok(Creation(()))
}

impl Creation {
    /// Records the interpreter it made, with no counted references yet, then ends the
    /// creation (in that order: cleanup that sees the count drop finds the entry).
    pub fn register(self, id: i64, interp: InterpPtr, keeper: TStatePtr) {
        lock().insert(id, Entry::new(interp, Some(keeper), State::Idle));
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
    let _map = lock();
    EXITING.store(true, Ordering::Relaxed);
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
    lock().get(&id).is_some_and(|e| e.keeper.is_some())
}

/// Counts one more `InterpreterID` object for `id`; returns whether it counts (only interpreters
/// made by `create()` are counted: others never end by count). A `Pending` interpreter counted
/// again is no longer due for finalization.
pub fn incref(id: i64) -> bool {
    match lock().get_mut(&id) {
        Some(e) if e.keeper.is_some() => {
            e.refs += 1;
            if e.state == State::Pending {
                e.state = State::Idle;
            }
            true
        }
        _ => false,
    }
}

/// Drops one count; when the last goes, the interpreter is due for finalization now (returned)
/// or, if it is busy, when its run ends (see [`RunTicket::finish`]) or its finalization is
/// refused (it becomes `Pending`).
pub fn decref(id: i64) -> Option<Doomed> {
    let mut map = lock();
    let e = map.get_mut(&id)?;
    e.refs = e.refs.saturating_sub(1);
    if e.refs > 0 {
        return None;
    }
    e.doom(id)
}

/// Whether a run or a finalization is in progress for `id`.
pub fn is_running(id: i64) -> bool {
    lock().get(&id).is_some_and(Entry::busy)
}

/// The right to run code in one interpreter, from one lock trip that found it, checked that
/// nobody else uses it and marked it `Running`. While it lives nobody finalizes the
/// interpreter, so [`RunTicket::interp`] stays valid. Dropped without [`RunTicket::finish`]
/// (a panic), it ends the run but never finalizes: an orphaned interpreter becomes `Pending`.
pub struct RunTicket {
    id: i64,
    interp: InterpPtr,
    ended: bool,
}

/// Takes `id` for a `run_string` on OS thread `runner`. Interpreters of ours are found in the
/// registry; for one we did not create, pass the pointer CPython's lookup found (`foreign`),
/// which the caller must keep from being finalized by us meanwhile (the interpreter-list lock).
pub fn begin_run(id: i64, runner: c_ulong, foreign: Option<InterpPtr>) -> Result<RunTicket, Busy> {
    let mut map = lock();
    if EXITING.load(Ordering::Relaxed) {
        return Err(Busy::Exiting);
    }
    match map.get_mut(&id) {
        Some(e) if e.busy() => Err(Busy::Running),
        Some(e) => {
            e.state = State::Running { runner };
            Ok(RunTicket {
                id,
                interp: e.interp,
                ended: false,
            })
        }
        None => {
            let interp = foreign.ok_or(Busy::Unknown)?;
            map.insert(id, Entry::new(interp, None, State::Running { runner }));
            Ok(RunTicket {
                id,
                interp,
                ended: false,
            })
        }
    }
}

impl RunTicket {
    /// The interpreter to run in; alive while the ticket is.
    pub fn interp(&self) -> InterpPtr {
        self.interp
    }

    /// Ends the run. If the interpreter lost its last count meanwhile, it is due for
    /// finalization (returned, already `Finalizing`).
    pub fn finish(mut self) -> Option<Doomed> {
        self.ended = true;
        end_run(self.id, true)
    }
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        if !self.ended {
            let _ = end_run(self.id, false);
        }
    }
}

fn end_run(id: i64, may_finalize: bool) -> Option<Doomed> {
    let mut map = lock();
    RUN_ENDED.notify_all();
    crate::interp::interrupt::run_ended(id);
    let e = map.get_mut(&id)?;
    let Some(keeper) = e.keeper else {
        map.remove(&id);
        return None;
    };
    if e.refs > 0 {
        e.state = State::Idle;
        None
    } else if may_finalize {
        e.state = State::Finalizing;
        Some(Doomed {
            id,
            interp: e.interp,
            keeper,
            made_keeper: false,
        })
    } else {
        e.state = State::Pending;
        None
    }
}

/// Takes an interpreter of ours for finalization by `destroy()`.
pub fn take_for_destroy(id: i64) -> Result<Doomed, Busy> {
    let mut map = lock();
    let e = map.get_mut(&id).ok_or(Busy::Unknown)?;
    if e.busy() {
        return Err(Busy::Running);
    }
    e.doom(id).ok_or(Busy::Unknown)
}

/// Takes an interpreter made by someone else for finalization through `keeper`, its only
/// thread state; fails if we are running code in it. The caller keeps `interp` from being
/// finalized by us meanwhile (the interpreter-list lock).
pub fn take_foreign(
    id: i64,
    interp: InterpPtr,
    keeper: TStatePtr,
    made_keeper: bool,
) -> Result<Doomed, Busy> {
    let mut map = lock();
    if map.contains_key(&id) {
        return Err(Busy::Running);
    }
    map.insert(id, Entry::new(interp, None, State::Finalizing));
    Ok(Doomed {
        id,
        interp,
        keeper,
        made_keeper,
    })
}

/// Forgets an interpreter once it has been finalized.
pub fn finalized(doomed: Doomed) {
    lock().remove(&doomed.id);
    RUN_ENDED.notify_all();
}

/// A finalization was refused (threads still running) and nothing was deleted: the
/// interpreter is usable again, `Pending` if nothing counts on it any more. Its cached thread
/// states stay where they are (their OS threads may reuse them).
pub fn refused(doomed: Doomed) {
    let mut map = lock();
    RUN_ENDED.notify_all();
    let Some(e) = map.get_mut(&doomed.id) else {
        return;
    };
    if e.keeper.is_none() {
        // Not ours: just stop blocking runs.
        map.remove(&doomed.id);
    } else {
        e.state = if e.refs == 0 {
            State::Pending
        } else {
            State::Idle
        };
    }
}

/// `Pending` interpreters, each moved to `Finalizing` for another attempt.
pub fn take_pending() -> Vec<Doomed> {
    let mut map = lock();
    map.iter_mut()
        .filter(|(_, e)| e.state == State::Pending)
        .filter_map(|(&id, e)| e.doom(id))
        .collect()
}

/// The ids of every interpreter of ours not finalized yet.
pub fn remaining_created() -> Vec<i64> {
    lock()
        .iter()
        .filter(|(_, e)| e.keeper.is_some())
        .map(|(&id, _)| id)
        .collect()
}

/// The ids of the interpreters that exit-time cleanup could not leave in a state CPython's own
/// finalization survives: ours not finalized, and any we are still running code in.
pub fn left_at_exit() -> Vec<i64> {
    lock()
        .iter()
        .filter(|(_, e)| e.keeper.is_some() || e.busy())
        .map(|(&id, _)| id)
        .collect()
}

/// Records a thread state made on OS thread `thread` to visit `id`, kept for reuse.
pub fn cache_add(id: i64, thread: u64, ts: TStatePtr) {
    if let Some(e) = lock().get_mut(&id) {
        e.cached.push((thread, ts));
    }
}

/// Takes the cached thread states of OS threads that have exited (to delete them).
pub fn take_dead_threads(id: i64) -> Vec<TStatePtr> {
    lock()
        .get_mut(&id)
        .map(|e| std::mem::take(&mut e.dead_threads))
        .unwrap_or_default()
}

/// OS thread `thread` is exiting: its cached thread states can no longer be used, and will be
/// deleted by the next visit or the finalization of their interpreter.
pub fn thread_exited(thread: u64, states: impl IntoIterator<Item = (i64, TStatePtr)>) {
    let mut map = lock();
    for (id, ts) in states {
        if let Some(e) = map.get_mut(&id) {
            if let Some(pos) = e.cached.iter().position(|&c| c == (thread, ts)) {
                e.cached.swap_remove(pos);
                e.dead_threads.push(ts);
            }
        }
    }
}

/// Every thread state of ours in `id` besides its keeper (cached visitors, live or of exited
/// threads), for a finalization, which needs the keeper alone. They stay recorded: only a
/// finalization that goes through deletes them (and then forgets the whole entry).
pub fn thread_states(id: i64) -> Vec<TStatePtr> {
    let map = lock();
    let Some(e) = map.get(&id) else {
        return Vec::new();
    };
    e.cached
        .iter()
        .map(|&(_, ts)| ts)
        .chain(e.dead_threads.iter().copied())
        .collect()
}

/// How many thread states of `id` are ours besides its keeper (cached visitors).
pub fn cached_count(id: i64) -> usize {
    lock()
        .get(&id)
        .map_or(0, |e| e.cached.len() + e.dead_threads.len())
}

/// The interpreters (ours or not) that a `run_string` of ours is running now, with the OS
/// thread running it.
pub fn runs_in_progress() -> Vec<(i64, InterpPtr, c_ulong)> {
    lock()
        .iter()
        .filter_map(|(&id, e)| match e.state {
            State::Running { runner } => Some((id, e.interp, runner)),
            _ => None,
        })
        .collect()
}

/// Calls `f` with the interpreter and OS thread of the run of ours in progress in `id` (`None`
/// if there is none), under the registry lock: the run cannot end (nor the interpreter be
/// finalized) before `f` returns. `f` must not call into Python nor take this lock again.
pub fn with_run<R>(id: i64, f: impl FnOnce(Option<(InterpPtr, c_ulong)>) -> R) -> R {
    let map = lock();
    let run = map.get(&id).and_then(|e| match e.state {
        State::Running { runner } => Some((e.interp, runner)),
        _ => None,
    });
    f(run)
}

/// The interpreter `id` if a run on OS thread `runner` is still in progress in it.
pub fn running_on(id: i64, runner: c_ulong) -> Option<InterpPtr> {
    lock()
        .get(&id)
        .filter(|e| e.state == State::Running { runner })
        .map(|e| e.interp)
}

/// Waits (blocking, so call it without any GIL) until no interpreter is being finalized (by
/// another thread), or `timeout` passes; returns whether none is.
pub fn wait_finalizations(timeout: Duration) -> bool {
    wait_for(timeout, |map| {
        !map.values().any(|e| e.state == State::Finalizing)
    })
}

/// Waits (blocking, so call it without any GIL) until `id` is neither running nor being
/// finalized, or `timeout` passes; returns whether it is idle (or gone).
pub fn wait_until_idle(id: i64, timeout: Duration) -> bool {
    wait_for(timeout, |map| !map.get(&id).is_some_and(Entry::busy))
}

/// Waits on `RUN_ENDED` until `done` holds for the registry, or `timeout` passes; returns
/// whether it holds.
fn wait_for(timeout: Duration, done: impl Fn(&BTreeMap<i64, Entry>) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut map = lock();
    loop {
        if done(&map) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        map = RUN_ENDED.wait_timeout(map, deadline - now).0;
    }
}
