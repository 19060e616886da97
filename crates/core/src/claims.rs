//! Claims: one-time tickets that settle, across interpreters, whether a queued task runs or is
//! cancelled, which worker holds each task it started, and which call an interrupt of "that
//! task" may strike.
//!
//! A pool puts its tasks on one queue that its idle workers take from, so a task may sit there
//! while the future that stands for it is cancelled in another interpreter. Each task carries a
//! claim opened when it is submitted. Whoever takes the claim first decides: a worker, which
//! then runs the task (it is "running" from that moment), or the submitter cancelling it, after
//! which the worker that finds the task skips it. Taking is one lock trip that removes the
//! ticket, so exactly one side ever succeeds.
//!
//! A worker takes a claim as a holder (any number unique among live workers) and the claim is
//! then remembered as the one that holder runs, until the holder takes its next claim or lets
//! go. That is how the submitting side finds the call a worker had started when the worker
//! died: it asks what the dead holder still holds (`release`). Nothing is left behind once a
//! holder has let go: at most one entry per live worker.
//!
//! A claim taken with [`start`] is also recorded with who makes its call (its [`Runner`]),
//! until [`finish`]: while it is, the submitter may ask to interrupt it
//! ([`mark_interrupted`], once per claim) and learns the thread to interrupt. Since ids are
//! never reused, a request for a call that has finished finds nothing, so it can never strike
//! the call the same worker makes next.
//!
//! ```text
//! STATE: Mutex<Claims>
//!   open: BTreeSet<u64>        claims opened and not yet taken (ids from NEXT, never reused)
//!   held: BTreeMap<u64, u64>   holder -> the claim it took last and has not let go of
//!   running: BTreeMap<u64, Running { runner, interrupted }>
//!                              taken claims whose call is being made now
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_ulong;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Mutex;

/// Who makes a claimed call: an interpreter (by id) and an OS thread (by its identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runner {
    /// The interpreter's id.
    pub interp: i64,
    /// The OS thread's identifier (`threading.get_ident()`, a C `unsigned long`).
    pub thread: c_ulong,
}

/// A call being made for a taken claim.
struct Running {
    runner: Runner,
    /// An interrupt was asked for it.
    interrupted: bool,
}

struct Claims {
    open: BTreeSet<u64>,
    held: BTreeMap<u64, u64>,
    running: BTreeMap<u64, Running>,
}

static NEXT: AtomicU64 = AtomicU64::new(1);
static STATE: Mutex<Claims> = Mutex::new(Claims {
    open: BTreeSet::new(),
    held: BTreeMap::new(),
    running: BTreeMap::new(),
});

/// Opens a new claim and returns its id (unique in the process, never reused).
pub fn open() -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    STATE.lock().open.insert(id);
    id
}

/// Takes claim `id`: true for the one caller that finds it open (the claim is then gone),
/// false for every other (taken already, or never opened).
pub fn take(id: u64) -> bool {
    STATE.lock().open.remove(&id)
}

/// Takes claim `id` as `holder` (0: as nobody, as [`take`]): on success `holder` holds it,
/// in place of the claim it held before.
pub fn take_as(id: u64, holder: u64) -> bool {
    let mut st = STATE.lock();
    if !st.open.remove(&id) {
        return false;
    }
    if holder != 0 {
        st.held.insert(holder, id);
    }
    true
}

/// Whether claim `id` is open: opened, and taken by nobody yet.
pub fn is_open(id: u64) -> bool {
    STATE.lock().open.contains(&id)
}

/// Lets go of what `holder` holds: the claim it held (0 if none).
pub fn release(holder: u64) -> u64 {
    STATE.lock().held.remove(&holder).unwrap_or(0)
}

/// Takes open claim `id` as `holder` (as [`take_as`]) to make its call on `runner` now, in one
/// lock trip, so that from the moment anyone sees the claim taken an interrupt finds its
/// runner: true for the one caller that finds it open; the call is then being made until
/// [`finish`].
pub fn start(id: u64, holder: u64, runner: Runner) -> bool {
    let mut st = STATE.lock();
    if !st.open.remove(&id) {
        return false;
    }
    if holder != 0 {
        st.held.insert(holder, id);
    }
    st.running.insert(
        id,
        Running {
            runner,
            interrupted: false,
        },
    );
    true
}

/// The call of claim `id` is over. Returns whether an interrupt was asked for it meanwhile
/// (`None` if it was not being made).
pub fn finish(id: u64) -> Option<bool> {
    STATE.lock().running.remove(&id).map(|r| r.interrupted)
}

/// Who makes the call of claim `id` now, if it is being made.
pub fn runner(id: u64) -> Option<Runner> {
    STATE.lock().running.get(&id).map(|r| r.runner)
}

/// Records that the call of claim `id` is to be interrupted: its runner for the one caller
/// that asks while it is being made, `None` for every other (not running, or asked already).
pub fn mark_interrupted(id: u64) -> Option<Runner> {
    match STATE.lock().running.get_mut(&id) {
        Some(r) if !r.interrupted => {
            r.interrupted = true;
            Some(r.runner)
        }
        _ => None,
    }
}

/// How many claims are open, held or running (for tests: a pool that stopped leaves none behind).
pub fn count() -> usize {
    let st = STATE.lock();
    st.open.len() + st.held.len() + st.running.len()
}
