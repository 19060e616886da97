//! A cancellation flag that blocked queue waits observe: how the extension interrupts a thread
//! waiting in `get`, `put` or a wait over several queues without polling.
//!
//! A waiter registers a [`Waker`] while it sleeps (each queue's condition variable, or a
//! multi-queue wait's bell); [`Cancel::cancel`] sets the flag and calls them once, after
//! unlocking. A wait that sees the flag returns `QueueError::Cancelled` and takes nothing.

use crate::sync::{Mutex, MutexGuard};

use super::Waker;

/// A one-way flag (not cancelled, then cancelled for good), shared between the waiting thread
/// and whoever may interrupt it.
pub struct Cancel {
    state: Mutex<State>,
}

struct State {
    cancelled: bool,
    next: u64,
    watchers: Vec<(u64, Waker)>,
}

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel::new()
    }
}

impl Cancel {
    /// A flag not cancelled yet.
    pub fn new() -> Cancel {
        Cancel {
            state: Mutex::new(State {
                cancelled: false,
                next: 0,
                watchers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Cancels, waking the waits watching it. True if this call cancelled it (false: it was
    /// cancelled already).
    pub fn cancel(&self) -> bool {
        let watchers = {
            let mut st = self.lock();
            if st.cancelled {
                return false;
            }
            st.cancelled = true;
            std::mem::take(&mut st.watchers)
        };
        watchers.iter().for_each(|(_, w)| w());
        true
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// Calls `waker` once when cancelled, until the returned guard is dropped; `None` (nothing
    /// registered) if it is cancelled already.
    pub(crate) fn watch(&self, waker: Waker) -> Option<Watch<'_>> {
        let mut st = self.lock();
        if st.cancelled {
            return None;
        }
        let id = st.next;
        st.next += 1;
        st.watchers.push((id, waker));
        Some(Watch { cancel: self, id })
    }
}

/// A registered watcher, removed on drop.
pub(crate) struct Watch<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let removed = {
            let mut st = self.cancel.lock();
            let at = st.watchers.iter().position(|(i, _)| *i == self.id);
            at.map(|at| st.watchers.swap_remove(at))
        };
        // The waker may own the last reference to a queue: dropped with no lock held.
        drop(removed);
    }
}
