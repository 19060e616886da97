//! Claims: one-time tickets that settle, across interpreters, whether a queued task runs or is
//! cancelled.
//!
//! A pool puts its tasks on one queue that its idle workers take from, so a task may sit there
//! while the future that stands for it is cancelled in another interpreter. Each task carries a
//! claim opened when it is submitted. Whoever takes the claim first decides: a worker, which
//! then runs the task (it is "running" from that moment), or the submitter cancelling it, after
//! which the worker that finds the task skips it. Taking is one lock trip that removes the
//! ticket, so exactly one side ever succeeds and nothing is left behind once either has.
//!
//! ```text
//! OPEN: Mutex<BTreeSet<u64>>   claims opened and not yet taken (ids from NEXT, never reused)
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Mutex;

static NEXT: AtomicU64 = AtomicU64::new(1);
static OPEN: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// Opens a new claim and returns its id (unique in the process, never reused).
pub fn open() -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    OPEN.lock().insert(id);
    id
}

/// Takes claim `id`: true for the one caller that finds it open (the claim is then gone),
/// false for every other (taken already, or never opened).
pub fn take(id: u64) -> bool {
    OPEN.lock().remove(&id)
}

/// How many claims are open (for tests: a pool that stopped leaves none behind).
pub fn open_count() -> usize {
    OPEN.lock().len()
}
