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

use crate::interp::registry::{self, RunTicket};
use crate::py::tstate::{self, InterpPtr, TStatePtr};
use crate::py::version;

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

struct Cache {
    thread: u64,
    states: HashMap<i64, TStatePtr>,
    /// 3.11: the keepers of the interpreters this OS thread created, used for its own runs
    /// there instead of a cached thread state of its own. Never handed over or deleted here:
    /// a keeper lives as long as its interpreter.
    keepers: HashMap<i64, TStatePtr>,
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
        keepers: HashMap::new(),
    });
}

/// An interpreter of ours was just made on this OS thread, with `keeper` as its first thread
/// state. On 3.11 this thread's runs there use the keeper, as CPython's own module does: it
/// has run code already (the interpreter's start-up), so a first call allocates nothing more,
/// where a new thread state would take a page for its frame stack. On 3.12+ CPython's module
/// may attach an interpreter's existing thread state on any thread, so ours keep their own.
pub fn created_here(id: i64, keeper: TStatePtr) {
    if !version::RUN_ON_KEEPER {
        return;
    }
    let _ = CACHE.try_with(|c| insert_bounded(&mut c.borrow_mut().keepers, id, keeper));
}

/// Records `ts` for interpreter `id` in one of this thread's maps, first forgetting the
/// interpreters that are gone once it holds 64 (their ids never come back).
fn insert_bounded(map: &mut HashMap<i64, TStatePtr>, id: i64, ts: TStatePtr) {
    if map.len() >= 64 {
        map.retain(|&i, _| registry::is_created(i));
    }
    map.insert(id, ts);
}

/// Runs `body` inside the ticket's interpreter on this OS thread's cached thread state for it
/// (made on first use), after deleting the exited threads' states the ticket carries.
/// Interpreters we did not create get a fresh, deleted thread state instead: other modules
/// expect theirs to have no extra thread states.
///
/// # Safety
/// As for [`tstate::enter`]: GIL held, the ticket's interpreter not current.
pub unsafe fn visit<R>(ticket: &mut RunTicket, body: impl FnOnce() -> R) -> R {
    let (id, interp, ours) = (ticket.id(), ticket.interp(), ticket.ours());
    // SAFETY: forwarded contract; the ticket keeps the interpreter alive and ours to use.
    unsafe { visit_with(id, interp, ours, || ticket.take_dead(), body) }
}

/// [`visit`] for an interpreter a run of ours on another OS thread holds (exit cleanup
/// interrupting it): whether it is ours and its exited threads' states come from the registry.
///
/// # Safety
/// As for [`tstate::enter`]: GIL held, `interp` (with id `id`) alive, not current, and kept
/// from finalization by the caller.
pub unsafe fn visit_running<R>(id: i64, interp: InterpPtr, body: impl FnOnce() -> R) -> R {
    let ours = registry::is_created(id);
    // SAFETY: forwarded contract.
    unsafe { visit_with(id, interp, ours, || registry::take_dead_threads(id), body) }
}

/// # Safety
/// As for [`visit_running`]; `dead` gives thread states of `interp` that are idle forever.
unsafe fn visit_with<R>(
    id: i64,
    interp: InterpPtr,
    ours: bool,
    dead: impl FnOnce() -> Vec<TStatePtr>,
    body: impl FnOnce() -> R,
) -> R {
    let cached = if ours {
        CACHE
            .try_with(|c| {
                let c = c.borrow();
                let keeper = c.keepers.get(&id).copied();
                (c.thread, keeper.or_else(|| c.states.get(&id).copied()))
            })
            .ok()
    } else {
        None
    };
    let Some((thread, reuse)) = cached else {
        // SAFETY: forwarded contract.
        return unsafe { tstate::enter(interp, None, false, |_| body()) };
    };
    // SAFETY: forwarded contract; `reuse` was made on this OS thread for `id` (a cached one, or
    // the keeper this thread made it with) and is idle: the interpreter is marked running by
    // us, so no other visit or finalization of ours is in progress, and the keeper is used
    // only by the thread that made it. A keeper is never remembered among the cached states,
    // so it is never deleted with them.
    unsafe {
        tstate::enter(interp, reuse, true, |ts| {
            if reuse.is_none() {
                remember(id, thread, ts);
            }
            let dead = dead();
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
    let _ = CACHE.try_with(|c| insert_bounded(&mut c.borrow_mut().states, id, ts));
}

/// Like [`visit`], for a thread that has no current thread state (3.12+ only): attaches this
/// OS thread's cached thread state for the ticket's interpreter (made on first use), which
/// takes that interpreter's own GIL and no other, runs `body`, and detaches again. `None`
/// (nothing run) if this thread's cache is gone (the thread is exiting).
///
/// # Safety
/// 3.12+; no thread state current on this thread; the ticket's interpreter is one of ours.
pub unsafe fn visit_detached<R>(ticket: &mut RunTicket, body: impl FnOnce() -> R) -> Option<R> {
    let (id, interp) = (ticket.id(), ticket.interp());
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
            let dead = ticket.take_dead();
            if !dead.is_empty() {
                // SAFETY: `id` is current; the dead threads' states are idle forever.
                tstate::delete_idle(&dead);
            }
            Some(body())
        })
    }
}
