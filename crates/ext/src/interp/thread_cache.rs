//! Reuse of thread states: each OS thread keeps one idle thread state per interpreter of ours
//! it has run code in, so that `run_string` does not create and delete one per call.
//!
//! The thread-local map is only a lookup aid; the registry ([`registry`]) owns the record
//! of every cached thread state, so finalization can delete them all (it needs the keeper to
//! be the interpreter's only thread state) and a thread that exits hands its own over for
//! deletion by the next visitor. Interpreter ids are never reused, so an entry left in a map
//! after its interpreter is gone is never looked up again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::interp::registry;
use crate::py::tstate::{self, InterpPtr, TStatePtr};

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

struct Cache {
    thread: u64,
    states: HashMap<i64, TStatePtr>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        registry::thread_exited(self.thread, self.states.drain());
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        thread: NEXT_THREAD.fetch_add(1, Ordering::Relaxed),
        states: HashMap::new(),
    });
}

/// Runs `body` inside interpreter `id` on this OS thread's cached thread state for it (made on
/// first use). Interpreters we did not create get a fresh, deleted thread state instead: other
/// modules expect theirs to have no extra thread states.
///
/// # Safety
/// As for [`tstate::enter`]: GIL held, `interp` (with id `id`) alive, not current, and marked
/// running by the caller.
pub unsafe fn visit<R>(id: i64, interp: InterpPtr, body: impl FnOnce() -> R) -> R {
    let cached = if registry::is_created(id) {
        CACHE
            .try_with(|c| {
                let c = c.borrow();
                (c.thread, c.states.get(&id).copied())
            })
            .ok()
    } else {
        None
    };
    let Some((thread, reuse)) = cached else {
        // SAFETY: forwarded contract.
        return unsafe { tstate::enter(interp, None, false, |_| body()) };
    };
    // SAFETY: forwarded contract; `reuse` was made on this OS thread for `id` and is idle (the
    // interpreter is marked running by us, so no other visit of ours is in progress).
    unsafe {
        tstate::enter(interp, reuse, true, |ts| {
            if reuse.is_none() {
                remember(id, thread, ts);
            }
            let dead = registry::take_dead_threads(id);
            if !dead.is_empty() {
                // SAFETY: `id` is current; the dead threads' states are idle forever.
                tstate::delete_idle(&dead);
            }
            body()
        })
    }
}

fn remember(id: i64, thread: u64, ts: TStatePtr) {
    registry::cache_add(id, thread, ts);
    let _ = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.states.len() >= 64 {
            // Forget interpreters that are gone (their ids never come back).
            c.states.retain(|&i, _| registry::is_created(i));
        }
        c.states.insert(id, ts);
    });
}

/// Like [`visit`], for a thread that has no current thread state (3.12+ only): attaches this
/// OS thread's cached thread state for interpreter `id` (made on first use), which takes that
/// interpreter's own GIL and no other, runs `body`, and detaches again. `None` (nothing run)
/// if this thread's cache is gone (the thread is exiting).
///
/// # Safety
/// 3.12+; no thread state current on this thread; `interp` (with id `id`) is one of ours,
/// alive, and marked running by the caller, so no other visit of ours is in progress.
pub unsafe fn visit_detached<R>(id: i64, interp: InterpPtr, body: impl FnOnce() -> R) -> Option<R> {
    let (thread, reuse) = CACHE
        .try_with(|c| {
            let c = c.borrow();
            (c.thread, c.states.get(&id).copied())
        })
        .ok()?;
    // SAFETY: forwarded contract; `reuse` was made on this OS thread for `id` and is idle.
    unsafe {
        tstate::enter_detached(interp, reuse, |ts| {
            if reuse.is_none() {
                remember(id, thread, ts);
            }
            let dead = registry::take_dead_threads(id);
            if !dead.is_empty() {
                // SAFETY: `id` is current; the dead threads' states are idle forever.
                tstate::delete_idle(&dead);
            }
            Some(body())
        })
    }
}
