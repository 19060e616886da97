//! Process-global bookkeeping of interpreters: which ones we created (with their keeper thread
//! states), how many `InterpreterID` objects count on each, and which are busy.
//!
//! ```text
//! INTERPS: Mutex<BTreeMap<id, Entry>>        one per process, shared by all interpreters
//! └── Entry
//!     ├── interp, keeper      (raw pointers; owned by CPython, finalized only via `take_for_destroy`)
//!     ├── refs                live counted InterpreterID objects, in any interpreter
//!     ├── running             a `run_string` is in progress (or a finalization)
//!     ├── orphaned            refs fell to 0 while running: finalize when the run ends
//!     ├── cached              idle thread states kept for reuse, one per OS thread that ran
//!     │                       code here (see thread_cache.rs); deleted at finalization
//!     └── dead_threads        cached ones whose OS thread has exited: deleted at next visit
//! ```
//!
//! Interpreters we did not create (main, or ones made by other modules) get an entry only while
//! we run code in them, so that two runs cannot overlap. Holding the lock never spans a call
//! into Python.

use std::collections::BTreeMap;
use std::ffi::c_ulong;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::py::tstate::{InterpPtr, TStatePtr};

/// The state we keep for one interpreter.
struct Entry {
    interp: InterpPtr,
    /// `Some` for interpreters made by our `create()`: their keeper thread state.
    keeper: Option<TStatePtr>,
    refs: usize,
    running: bool,
    /// The OS thread ident (`threading.get_ident()`) of the run in progress, if any.
    runner: Option<c_ulong>,
    orphaned: bool,
    cached: Vec<(u64, TStatePtr)>,
    dead_threads: Vec<TStatePtr>,
}

impl Entry {
    fn new(interp: InterpPtr, keeper: Option<TStatePtr>) -> Entry {
        Entry {
            interp,
            keeper,
            refs: 0,
            running: false,
            runner: None,
            orphaned: false,
            cached: Vec::new(),
            dead_threads: Vec::new(),
        }
    }
}

static INTERPS: Mutex<BTreeMap<i64, Entry>> = Mutex::new(BTreeMap::new());

/// Signalled (with INTERPS) whenever a run ends, for `wait_until_idle`.
static RUN_ENDED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, BTreeMap<i64, Entry>> {
    // A panic while holding this lock cannot leave an entry half-updated (every update is a
    // single field store), so a poisoned lock is still consistent.
    INTERPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the caller must do after a count or run change: finalize this interpreter.
#[must_use]
pub struct Doomed {
    /// The interpreter's id.
    pub id: i64,
    /// Its keeper thread state, to pass to `tstate::end_interpreter`.
    pub keeper: TStatePtr,
}

/// Why an interpreter cannot be taken for a run or a finalization.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// Another run or finalization is in progress.
    Running,
    /// We do not know the interpreter (it was finalized, or is not ours to finalize).
    Unknown,
}

/// Records an interpreter made by `create()`, with no counted references yet.
pub fn insert_created(id: i64, interp: InterpPtr, keeper: TStatePtr) {
    lock().insert(id, Entry::new(interp, Some(keeper)));
}

/// Whether `id` is one of ours (made by `create()` and not finalized).
pub fn is_created(id: i64) -> bool {
    lock().get(&id).is_some_and(|e| e.keeper.is_some())
}

/// Counts one more `InterpreterID` object for `id`; returns whether it counts (only interpreters
/// made by `create()` are counted: others never end by count).
pub fn incref(id: i64) -> bool {
    match lock().get_mut(&id) {
        Some(e) if e.keeper.is_some() => {
            e.refs += 1;
            true
        }
        _ => false,
    }
}

/// Drops one count; when the last goes, the interpreter is due for finalization now (returned)
/// or, if it is busy, when its run ends.
pub fn decref(id: i64) -> Option<Doomed> {
    let mut map = lock();
    let e = map.get_mut(&id)?;
    e.refs = e.refs.saturating_sub(1);
    if e.refs > 0 || e.keeper.is_none() {
        return None;
    }
    if e.running {
        e.orphaned = true;
        return None;
    }
    e.running = true; // finalizing: nobody else may use it
    e.keeper.map(|keeper| Doomed { id, keeper })
}

/// Whether a run (or finalization) is in progress for `id`.
pub fn is_running(id: i64) -> bool {
    lock().get(&id).is_some_and(|e| e.running)
}

/// Marks `id` as running for a `run_string` on OS thread `runner` (None: not a run, a
/// finalization). Fails if it already is running.
pub fn begin_run(id: i64, interp: InterpPtr, runner: Option<c_ulong>) -> Result<(), Busy> {
    let mut map = lock();
    let e = map.entry(id).or_insert_with(|| Entry::new(interp, None));
    if e.running {
        return Err(Busy::Running);
    }
    e.running = true;
    e.runner = runner;
    Ok(())
}

/// Ends a run. If the interpreter lost its last count meanwhile, it is due for finalization.
pub fn end_run(id: i64) -> Option<Doomed> {
    let mut map = lock();
    let e = map.get_mut(&id)?;
    e.runner = None;
    match e.keeper {
        None => {
            map.remove(&id);
            None
        }
        Some(keeper) => {
            if e.orphaned && e.refs == 0 {
                // Stay marked running: the caller finalizes it next.
                Some(Doomed { id, keeper })
            } else {
                e.running = false;
                RUN_ENDED.notify_all();
                None
            }
        }
    }
}

/// Takes an interpreter of ours for finalization by `destroy()`: marks it running so that no
/// run or second finalization can start.
pub fn take_for_destroy(id: i64) -> Result<Doomed, Busy> {
    let mut map = lock();
    let e = map.get_mut(&id).ok_or(Busy::Unknown)?;
    if e.running {
        return Err(Busy::Running);
    }
    let keeper = e.keeper.ok_or(Busy::Unknown)?;
    e.running = true;
    Ok(Doomed { id, keeper })
}

/// Forgets an interpreter once it has been finalized.
pub fn remove(id: i64) {
    lock().remove(&id);
}

/// A finalization was refused (threads still running): keep the interpreter, idle, until a
/// later attempt (`take_pending`) or exit. Its cached thread states come back as dead ones.
pub fn finalization_refused(id: i64, states: Vec<TStatePtr>) {
    let mut map = lock();
    if map.get(&id).is_some_and(|e| e.keeper.is_none()) {
        // Not ours: just stop blocking runs.
        map.remove(&id);
        return;
    }
    if let Some(e) = map.get_mut(&id) {
        e.running = false;
        e.orphaned = true;
        e.dead_threads.extend(states);
    }
}

/// Idle interpreters of ours that lost their last reference but could not be finalized then;
/// each is marked for finalization.
pub fn take_pending() -> Vec<Doomed> {
    let mut map = lock();
    map.iter_mut()
        .filter_map(|(&id, e)| {
            let keeper = e.keeper?;
            if e.running || !e.orphaned || e.refs > 0 {
                return None;
            }
            e.running = true;
            Some(Doomed { id, keeper })
        })
        .collect()
}

/// Every interpreter of ours that is idle, marked for finalization (for exit-time cleanup).
pub fn take_all_idle() -> Vec<Doomed> {
    let mut map = lock();
    map.iter_mut()
        .filter_map(|(&id, e)| {
            let keeper = e.keeper?;
            if e.running {
                return None;
            }
            e.running = true;
            Some(Doomed { id, keeper })
        })
        .collect()
}

/// The interpreter pointer we hold for `id`, if any.
pub fn interp_of(id: i64) -> Option<InterpPtr> {
    lock().get(&id).map(|e| e.interp)
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

/// Takes every cached thread state of `id` (for finalization, which needs the keeper alone).
pub fn take_thread_states(id: i64) -> Vec<TStatePtr> {
    let mut map = lock();
    let Some(e) = map.get_mut(&id) else {
        return Vec::new();
    };
    let mut all: Vec<TStatePtr> = e.cached.drain(..).map(|(_, ts)| ts).collect();
    all.append(&mut e.dead_threads);
    all
}

/// How many thread states of `id` are ours besides its keeper (cached visitors).
pub fn cached_count(id: i64) -> usize {
    lock()
        .get(&id)
        .map_or(0, |e| e.cached.len() + e.dead_threads.len())
}

/// The interpreters of ours that a `run_string` is running now, with the OS thread running it.
pub fn running_created() -> Vec<(i64, InterpPtr, c_ulong)> {
    lock()
        .iter()
        .filter(|(_, e)| e.keeper.is_some() && e.running)
        .filter_map(|(&id, e)| Some((id, e.interp, e.runner?)))
        .collect()
}

/// Waits (blocking, so call it without any GIL) until `id` is no longer running, or `timeout`
/// passes; returns whether it is idle (or gone).
pub fn wait_until_idle(id: i64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut map = lock();
    loop {
        match map.get(&id) {
            Some(e) if e.running => {}
            _ => return true,
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        map = RUN_ENDED
            .wait_timeout(map, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
