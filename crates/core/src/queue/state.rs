//! One queue: its items under its own lock, two condition variables to block on, and the
//! wakers to call when it changes.
//!
//! ```text
//! Shared                                   one per queue, behind an Arc held by the registry
//! │                                        entry and by every QueueRef
//! ├── id, maxsize, defaults                fixed at creation
//! ├── state: Mutex<State>
//! │   ├── life: Alive(VecDeque<Item>)      items, oldest first
//! │   │       | Destroyed                  items dropped, every waiter woken with Destroyed
//! │   ├── getters, putters                 threads blocked in get / put (to skip needless
//! │   │                                    notifications)
//! │   └── wakers: Vec<(WakerId, Waker)>    readiness callbacks, called after unlocking
//! ├── not_empty: Condvar                   getters wait here; a put wakes one
//! └── not_full: Condvar                    putters wait here; a get wakes one
//! ```
//!
//! Nothing is dropped or called back while `state` is locked: taken values go to the caller or
//! to [`dispose`], wakers are cloned out and called after the guard is gone.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::item::{Item, QueuedItem, Received, Unbinding, UnboundOp};
use super::{QueueDefaults, Wait};
use crate::dispose::dispose;
use crate::error::{PutError, QueueError};
use crate::ids::{InterpId, QueueId};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};
use crate::value::Value;

/// A readiness callback: called, with no lock of the core held, after an item is put, after
/// room is freed in a bounded queue, and once when the queue is destroyed. It must not block
/// for long.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Identifies a registered [`Waker`] for removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WakerId(u64);

impl WakerId {
    /// The number behind this id (to hand to code outside Rust as a token).
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// The id whose number is `raw` (a token from [`WakerId::to_raw`]).
    pub fn from_raw(raw: u64) -> WakerId {
        WakerId(raw)
    }
}

/// One queue, shared by the registry and every handle.
pub(crate) struct Shared {
    pub(crate) id: QueueId,
    pub(crate) maxsize: i64,
    pub(crate) defaults: QueueDefaults,
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
}

/// Everything that changes, under the queue's lock.
struct State {
    life: Life,
    getters: usize,
    putters: usize,
    wakers: Vec<(WakerId, Waker)>,
    next_waker: u64,
}

/// Where the queue is in its life.
enum Life {
    Alive(VecDeque<Item>),
    Destroyed,
}

impl State {
    fn items_mut(&mut self) -> Option<&mut VecDeque<Item>> {
        match &mut self.life {
            Life::Alive(items) => Some(items),
            Life::Destroyed => None,
        }
    }

    /// The wakers to call once unlocked (no allocation when there are none).
    fn wakers_to_call(&self) -> Vec<Waker> {
        self.wakers.iter().map(|(_, w)| Arc::clone(w)).collect()
    }
}

/// The wake-ups one put owes: the sleeping getter to notify and the wakers to call. Made under
/// the queue's lock, used after it is released, possibly later (see `QueueRef::put_quiet`).
#[must_use = "a put's wake-ups are lost unless `wake` is called"]
pub struct Wake<'a> {
    shared: &'a Shared,
    getter: bool,
    wakers: Vec<Waker>,
}

impl Wake<'_> {
    /// Wakes them. Notified with the lock released, so the woken getter does not block on it.
    /// Each put wakes one getter; a getter re-checks the queue before giving up, so a wake-up
    /// that races with its timeout still finds the item.
    pub fn wake(self) {
        if self.getter {
            self.shared.not_empty.notify_one();
        }
        self.wakers.iter().for_each(|w| w());
    }
}

/// A copy of one queue's state, taken under its lock.
pub(crate) struct Snapshot {
    pub(crate) count: usize,
    pub(crate) unbound: usize,
    pub(crate) getters: usize,
    pub(crate) putters: usize,
    pub(crate) wakers: usize,
}

impl Shared {
    pub(crate) fn new(id: QueueId, maxsize: i64, defaults: QueueDefaults) -> Shared {
        Shared {
            id,
            maxsize,
            defaults,
            state: Mutex::new(State {
                life: Life::Alive(VecDeque::new()),
                getters: 0,
                putters: 0,
                wakers: Vec::new(),
                next_waker: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        }
    }

    /// The queue's guard.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Whether `len` items fill the queue (never, when `maxsize <= 0`).
    fn full_at(&self, len: usize) -> bool {
        self.maxsize > 0 && len as u64 >= self.maxsize as u64
    }

    /// Appends `value`, waiting for room as `wait` allows; the value comes back on failure.
    pub(crate) fn put(
        &self,
        value: Value,
        owner: InterpId,
        op: UnboundOp,
        wait: Wait,
    ) -> Result<(), PutError> {
        self.put_quiet(value, owner, op, wait, None).map(Wake::wake)
    }

    /// [`Shared::put`] without waking anybody yet: the item is queued (a getter that looks
    /// finds it), and the returned [`Wake`] wakes the sleeping getter and calls the wakers.
    /// A wait that sees `cancel` cancelled fails with `Cancelled` (see [`Shared::wake_all`]).
    pub(crate) fn put_quiet(
        &self,
        value: Value,
        owner: InterpId,
        op: UnboundOp,
        wait: Wait,
        cancel: Option<&Cancel>,
    ) -> Result<Wake<'_>, PutError> {
        let mut st = self.lock();
        loop {
            let Some(items) = st.items_mut() else {
                return Err(PutError {
                    error: QueueError::Destroyed(self.id),
                    value,
                });
            };
            if cancel.is_some_and(Cancel::is_cancelled) {
                return Err(PutError {
                    error: QueueError::Cancelled(self.id),
                    value,
                });
            }
            if !self.full_at(items.len()) {
                items.push_back(Item::new(owner, op, value));
                break;
            }
            let (guard, waited) = self.pause(&self.not_full, st, wait, |s| &mut s.putters);
            st = guard;
            if !waited {
                let error = match wait {
                    Wait::NoWait => QueueError::Full(self.id),
                    _ => QueueError::TimedOut(self.id),
                };
                return Err(PutError { error, value });
            }
        }
        let wake = Wake {
            shared: self,
            getter: st.getters > 0,
            wakers: st.wakers_to_call(),
        };
        drop(st);
        Ok(wake)
    }

    /// Takes the oldest item, waiting for one as `wait` allows. A wait that sees `cancel`
    /// cancelled fails with `Cancelled` and takes nothing, even if an item is there: the
    /// interrupt wins, so the caller that raises it has not lost an item.
    pub(crate) fn get(&self, wait: Wait, cancel: Option<&Cancel>) -> Result<Received, QueueError> {
        let mut st = self.lock();
        let mut spin_until: Option<Instant> = None;
        let item = loop {
            let Some(items) = st.items_mut() else {
                return Err(QueueError::Destroyed(self.id));
            };
            if cancel.is_some_and(Cancel::is_cancelled) {
                return Err(QueueError::Cancelled(self.id));
            }
            if let Some(item) = items.pop_front() {
                break item;
            }
            // Before sleeping, look again for a short while: in a request/reply exchange the
            // reply usually comes within microseconds, while waking a thread that went to sleep
            // (on a virtual CPU that went idle) costs tens of them. Only the first wait spins,
            // and it re-checks under the lock, so nothing can be missed.
            if wait != Wait::NoWait {
                let now = Instant::now();
                let until = *spin_until.get_or_insert(now + SPIN);
                if now < until && !wait.is_expired() {
                    drop(st);
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    std::thread::yield_now();
                    st = self.lock();
                    continue;
                }
            }
            let (guard, waited) = self.pause(&self.not_empty, st, wait, |s| &mut s.getters);
            st = guard;
            if !waited {
                return Err(match wait {
                    Wait::NoWait => QueueError::Empty(self.id),
                    _ => QueueError::TimedOut(self.id),
                });
            }
        };
        let wake_putter = st.putters > 0;
        // Room freed is news only where room can run out.
        let wakers = if self.maxsize > 0 {
            st.wakers_to_call()
        } else {
            Vec::new()
        };
        drop(st);
        if wake_putter {
            self.not_full.notify_one();
        }
        wakers.iter().for_each(|w| w());
        Ok(item.received())
    }

    /// Wakes every thread blocked in `get` or `put` on this queue, for them to look again (a
    /// cancelled one then gives up). The lock is taken first: a waiter that saw no cancellation
    /// under it is asleep on its condition variable by the time this notifies.
    pub(crate) fn wake_all(&self) {
        drop(self.lock());
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Blocks once on `cv` as `wait` allows, counted in `waiting`. Returns the guard and whether
    /// it waited at all (false: `NoWait`, or the deadline has passed).
    fn pause<'a>(
        &self,
        cv: &Condvar,
        mut st: MutexGuard<'a, State>,
        wait: Wait,
        waiting: fn(&mut State) -> &mut usize,
    ) -> (MutexGuard<'a, State>, bool) {
        let timeout: Option<Duration> = match wait {
            Wait::NoWait => return (st, false),
            Wait::Until(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return (st, false),
            },
            Wait::Forever => None,
        };
        *waiting(&mut st) += 1;
        // The lock is handed to the condition variable here and taken back on wake-up, so a
        // put or get between our check and our sleep cannot be missed.
        st = match timeout {
            Some(left) => cv.wait_timeout(st, left).0,
            None => cv.wait(st),
        };
        *waiting(&mut st) -= 1;
        (st, true)
    }

    /// Runs `f` on the items, or `Destroyed`.
    fn with_items<R>(&self, f: impl FnOnce(&VecDeque<Item>) -> R) -> Result<R, QueueError> {
        match &self.lock().life {
            Life::Alive(items) => Ok(f(items)),
            Life::Destroyed => Err(QueueError::Destroyed(self.id)),
        }
    }

    pub(crate) fn len(&self) -> Result<usize, QueueError> {
        self.with_items(VecDeque::len)
    }

    pub(crate) fn is_full(&self) -> Result<bool, QueueError> {
        self.with_items(|items| self.full_at(items.len()))
    }

    pub(crate) fn describe(&self) -> Result<Vec<QueuedItem>, QueueError> {
        self.with_items(|items| items.iter().map(Item::describe).collect())
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot, QueueError> {
        let st = self.lock();
        match &st.life {
            Life::Alive(items) => Ok(Snapshot {
                count: items.len(),
                unbound: items.iter().filter(|i| i.is_unbound()).count(),
                getters: st.getters,
                putters: st.putters,
                wakers: st.wakers.len(),
            }),
            Life::Destroyed => Err(QueueError::Destroyed(self.id)),
        }
    }

    pub(crate) fn add_waker(&self, waker: Waker) -> Result<WakerId, QueueError> {
        let mut st = self.lock();
        if matches!(st.life, Life::Destroyed) {
            return Err(QueueError::Destroyed(self.id));
        }
        let id = WakerId(st.next_waker);
        st.next_waker += 1;
        st.wakers.push((id, waker));
        Ok(id)
    }

    /// Unregisters a waker; it is dropped after unlocking (it may own anything).
    pub(crate) fn remove_waker(&self, id: WakerId) -> bool {
        let removed = {
            let mut st = self.lock();
            let at = st.wakers.iter().position(|(w, _)| *w == id);
            at.map(|at| st.wakers.remove(at))
        };
        removed.is_some()
    }

    /// Applies the unbound rules to the items that belong to `interp`; returns how many items
    /// were affected. Their values go to `dropped`, for the caller to dispose of once it holds no
    /// lock.
    pub(crate) fn unbind(&self, interp: InterpId, dropped: &mut Vec<Value>) -> usize {
        let before = dropped.len();
        let mut removed = 0;
        let mut st = self.lock();
        let Some(items) = st.items_mut() else {
            return 0;
        };
        items.retain_mut(|item| match item.unbind(interp) {
            Unbinding::Kept => true,
            Unbinding::Remove(v) => {
                dropped.push(v);
                removed += 1;
                false
            }
            Unbinding::Unbound(v) => {
                dropped.push(v);
                true
            }
        });
        let wake_putters = removed > 0 && st.putters > 0;
        let wakers = if removed > 0 {
            st.wakers_to_call()
        } else {
            Vec::new()
        };
        drop(st);
        if wake_putters {
            self.not_full.notify_all();
        }
        wakers.iter().for_each(|w| w());
        dropped.len() - before
    }

    /// Marks the queue destroyed, wakes every waiter and calls the wakers once, then drops the
    /// items. False if it was destroyed already. The caller holds no lock of the core.
    pub(crate) fn kill(&self) -> bool {
        let (items, wakers) = {
            let mut st = self.lock();
            let items = match std::mem::replace(&mut st.life, Life::Destroyed) {
                Life::Alive(items) => items,
                Life::Destroyed => return false,
            };
            (items, std::mem::take(&mut st.wakers))
        };
        self.not_empty.notify_all();
        self.not_full.notify_all();
        wakers.iter().for_each(|(_, w)| w());
        drop(wakers);
        dispose(items.into_iter().filter_map(Item::into_value));
        true
    }
}

impl Drop for Shared {
    /// A safety net: every path that unregisters a queue kills it first, so this finds nothing.
    fn drop(&mut self) {
        let st = self.state.get_mut();
        if let Life::Alive(items) = std::mem::replace(&mut st.life, Life::Destroyed) {
            dispose(items.into_iter().filter_map(Item::into_value));
        }
    }
}

/// How long a blocking `get` keeps looking before it sleeps on the condition variable.
pub(super) const SPIN: Duration = Duration::from_micros(100);
