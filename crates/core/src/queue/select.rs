//! Waiting on several queues at once (`interpreters.wait`): blocks until at least one of them
//! has an item (or is destroyed), then says which.
//!
//! The wait registers one waker on every queue, all ringing one [`Bell`]; it looks at the queues
//! after clearing the bell and sleeps only while the bell stays silent, so an item put between
//! the look and the sleep rings it and is never missed. No lock of a queue is held while
//! sleeping, and the queues are never locked together (each look takes one queue's lock).

use std::time::Instant;

use super::cancel::Cancel;
use super::{QueueRef, Wait, WakerId};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A latch a waker sets and the waiting thread clears and sleeps on.
struct Bell {
    state: Mutex<Ring>,
    cv: Condvar,
}

#[derive(Default)]
struct Ring {
    rung: bool,
    /// The waiter is asleep on the condition variable: only then does a ring notify it (a
    /// waiter still looking sees `rung`), so a put during its short spin costs no system call.
    sleeping: bool,
}

impl Bell {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.state.lock()
    }

    fn ring(&self) {
        let mut st = self.lock();
        st.rung = true;
        if st.sleeping {
            drop(st);
            self.cv.notify_all();
        }
    }

    /// Clears the latch before a look at the queues.
    fn clear(&self) {
        self.lock().rung = false;
    }

    /// Sleeps until rung or the deadline of `wait`; returns false if the deadline passed first.
    fn sleep(&self, wait: Wait) -> bool {
        let mut st = self.lock();
        while !st.rung {
            st.sleeping = true;
            st = match wait {
                Wait::NoWait => {
                    st.sleeping = false;
                    return false;
                }
                Wait::Forever => self.cv.wait(st),
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        st.sleeping = false;
                        return false;
                    }
                    self.cv.wait_timeout(st, left).0
                }
            };
            st.sleeping = false;
        }
        true
    }
}

/// What a wait over several queues found.
#[derive(Debug, PartialEq, Eq)]
pub enum Selected {
    /// The positions (in the order given) of the queues that have an item or were destroyed;
    /// never empty.
    Ready(Vec<usize>),
    /// The deadline passed with every queue empty.
    TimedOut,
    /// `cancel` was cancelled first (nothing is taken in any case).
    Cancelled,
}

/// The positions of the queues that have an item now, or are destroyed (a destroyed queue is
/// ready the way a closed pipe is readable: its `get` fails at once instead of blocking).
fn ready(queues: &[&QueueRef]) -> Vec<usize> {
    queues
        .iter()
        .enumerate()
        .filter(|(_, q)| q.qsize().map_or(true, |n| n > 0))
        .map(|(i, _)| i)
        .collect()
}

/// Waits as `wait` allows until at least one of `queues` has an item or is destroyed, or
/// `cancel` (if given) is cancelled. Takes nothing: the caller then `get`s from the queues
/// returned, and may find one empty again if another consumer was faster.
pub fn wait_any(queues: &[&QueueRef], wait: Wait, cancel: Option<&Cancel>) -> Selected {
    let found = ready(queues);
    if !found.is_empty() {
        return Selected::Ready(found);
    }
    if cancel.is_some_and(Cancel::is_cancelled) {
        return Selected::Cancelled;
    }
    if wait == Wait::NoWait {
        return Selected::TimedOut;
    }
    let bell = Arc::new(Bell {
        state: Mutex::new(Ring::default()),
        cv: Condvar::new(),
    });
    let ring = {
        let bell = Arc::clone(&bell);
        Arc::new(move || bell.ring()) as super::Waker
    };
    // A queue destroyed before its waker is added is ready: the look below finds it.
    let tokens: Vec<Option<WakerId>> = queues
        .iter()
        .map(|q| q.add_waker(Arc::clone(&ring)).ok())
        .collect();
    let watch = match cancel {
        Some(c) => match c.watch(Arc::clone(&ring)) {
            Some(w) => Some(w),
            None => return finish(queues, &tokens, Selected::Cancelled),
        },
        None => None,
    };
    // As a blocking `get` does, look again for a short while before sleeping: an item due
    // within microseconds is cheaper to see than a sleeping thread is to wake.
    let spin_until = Instant::now() + super::state::SPIN;
    let outcome = loop {
        // Cleared before looking: a change after the look rings it again.
        bell.clear();
        let found = ready(queues);
        if !found.is_empty() {
            break Selected::Ready(found);
        }
        if cancel.is_some_and(Cancel::is_cancelled) {
            break Selected::Cancelled;
        }
        if Instant::now() < spin_until && !wait.is_expired() {
            // As `get` spins: a few pause hints, then one yield (a yield alone, on a loaded
            // machine, hands the CPU away for a whole time slice far too often).
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
            continue;
        }
        if !bell.sleep(wait) {
            // One last look: an item that came with the deadline still counts.
            let found = ready(queues);
            break if found.is_empty() {
                Selected::TimedOut
            } else {
                Selected::Ready(found)
            };
        }
    };
    drop(watch);
    finish(queues, &tokens, outcome)
}

/// Unregisters the wakers of a wait, then returns its outcome.
fn finish(queues: &[&QueueRef], tokens: &[Option<WakerId>], outcome: Selected) -> Selected {
    for (q, token) in queues.iter().zip(tokens) {
        if let Some(token) = token {
            q.remove_waker(*token);
        }
    }
    outcome
}
