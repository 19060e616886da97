//! Claims: one-time tickets that settle, across interpreters, whether a queued task runs or is
//! cancelled, and which worker holds each task it started.
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
//! ```text
//! STATE: Mutex<Claims>
//!   open: BTreeSet<u64>        claims opened and not yet taken (ids from NEXT, never reused)
//!   held: BTreeMap<u64, u64>   holder -> the claim it took last and has not let go of
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Mutex;

struct Claims {
    open: BTreeSet<u64>,
    held: BTreeMap<u64, u64>,
}

static NEXT: AtomicU64 = AtomicU64::new(1);
static STATE: Mutex<Claims> = Mutex::new(Claims {
    open: BTreeSet::new(),
    held: BTreeMap::new(),
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

/// How many claims are open or held (for tests: a pool that stopped leaves none behind).
pub fn count() -> usize {
    let st = STATE.lock();
    st.open.len() + st.held.len()
}
