//! The process-global queue registry of CPython 3.14's `concurrent.interpreters` queues: ids,
//! handle counts, blocking `put`/`get`, and the rules for items whose interpreter is destroyed.
//!
//! ```text
//! QUEUES: Mutex<Registry>                      static, lives for the whole process
//! └── Registry
//!     ├── next_id: QueueId                     starts at 1; ids are never reused
//!     └── queues: BTreeMap<QueueId, Entry>     every live queue
//!         └── Entry                            removed by destroy or when handles reaches 0
//!             ├── handles: usize               live QueueRef handles (bind/release count too)
//!             └── shared: Arc<Shared>          (state.rs) items, lock, condvars, wakers
//!                 └── items: VecDeque<Item>    (item.rs) value or unbound marker, owner
//!                                              interp, unbound op; a Value::Queue holds a
//!                                              QueueRef, i.e. one handle on another Entry
//!
//! QueueRef { shared: Arc<Shared> }             held by callers and by queued values
//! ```
//!
//! Lock order: the registry lock, then a queue's lock, never the other way round. `put` and `get`
//! take only the queue's lock (the handle points at the queue), so queues never contend with
//! each other. A queue leaves the registry first and is killed after the registry lock is
//! released: waiters wake with `Destroyed`, and its items are dropped by [`crate::dispose`],
//! iteratively and with no lock held, since they may hold the last handle of other queues.
//!
//! A handle outliving its queue (after [`destroy`]) is inert: its operations report
//! `Destroyed`, and cloning or dropping it counts nothing, since the id is never registered
//! again.

mod cancel;
mod item;
mod select;
mod state;
mod wait;

use crate::sync::Arc;
use std::collections::BTreeMap;
use std::fmt;

pub use cancel::Cancel;
pub use item::{QueuedItem, Received, UnboundOp};
pub use select::{wait_any, Selected};
pub use state::{Wake, Waker, WakerId};
pub use wait::Wait;

use crate::dispose::dispose;
use crate::error::{PutError, QueueError};
use crate::ids::{InterpId, QueueId};
use crate::sync::{Mutex, MutexGuard};
use crate::value::Value;
use state::Shared;

/// What to fall back on for objects that are not natively shareable (3.14's `fallback`,
/// stored for the extension, which does the conversion). The discriminants are 3.14's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// Only natively shareable objects (`_PyXIDATA_XIDATA_ONLY`).
    SharedOnly = 0,
    /// Pickle anything else (`_PyXIDATA_FULL_FALLBACK`, 3.14's default).
    Full = 1,
}

impl Fallback {
    /// The fallback for one of 3.14's flags (0, 1), or `None`.
    pub fn from_flag(flag: i64) -> Option<Fallback> {
        match flag {
            0 => Some(Fallback::SharedOnly),
            1 => Some(Fallback::Full),
            _ => None,
        }
    }

    /// 3.14's flag for this fallback.
    pub fn flag(self) -> i64 {
        self as i64
    }
}

/// A queue's defaults, fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueDefaults {
    /// The unbound op of a `put` that names none (3.14's default: `Replace`).
    pub unbound: UnboundOp,
    /// The conversion fallback of a `put` that names none (3.14's default: `Full`).
    pub fallback: Fallback,
}

impl Default for QueueDefaults {
    fn default() -> QueueDefaults {
        QueueDefaults {
            unbound: UnboundOp::Replace,
            fallback: Fallback::Full,
        }
    }
}

/// A copy of one queue's bookkeeping (for tests and diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue's id.
    pub id: QueueId,
    /// The maximum size as given at creation (`<= 0`: unbounded).
    pub maxsize: i64,
    /// Its defaults.
    pub defaults: QueueDefaults,
    /// Live handles, including those inside queued values.
    pub handles: usize,
    /// Queued items, unbound ones included.
    pub count: usize,
    /// Queued items whose interpreter was destroyed.
    pub unbound: usize,
    /// Threads blocked in `get`.
    pub getters_waiting: usize,
    /// Threads blocked in `put`.
    pub putters_waiting: usize,
    /// Registered wakers.
    pub wakers: usize,
}

/// The single process-global registry.
static QUEUES: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    queues: BTreeMap::new(),
});

/// The map behind [`QUEUES`].
struct Registry {
    next_id: QueueId,
    queues: BTreeMap<QueueId, Entry>,
}

/// One registered queue and its handle count.
struct Entry {
    handles: usize,
    shared: Arc<Shared>,
    /// Left out of [`list_all`]: a queue the package uses for its own calls (tasks and
    /// replies), which code listing the user's queues must neither see nor destroy.
    unlisted: bool,
}

/// The registry guard (not poisoned by a panic elsewhere: see [`crate::sync`]).
fn registry() -> MutexGuard<'static, Registry> {
    QUEUES.lock()
}

impl Registry {
    /// Takes one from `id`'s handle count; at zero the entry leaves the map and its queue is
    /// returned, to be killed by the caller once unlocked.
    #[must_use = "a freed queue must be killed after the registry lock is released"]
    fn decref(&mut self, id: QueueId) -> Option<Arc<Shared>> {
        let entry = self.queues.get_mut(&id)?;
        debug_assert!(entry.handles > 0, "handle count underflow for queue {id}");
        entry.handles -= 1;
        if entry.handles > 0 {
            return None;
        }
        self.queues.remove(&id).map(|e| e.shared)
    }
}

/// Creates a queue with one handle, the one returned. `maxsize <= 0` means unbounded.
pub fn create(maxsize: i64, defaults: QueueDefaults) -> Result<QueueRef, QueueError> {
    create_entry(maxsize, defaults, false)
}

/// [`create`] for a queue that [`list_all`] leaves out (the package's own call queues).
pub fn create_unlisted(maxsize: i64, defaults: QueueDefaults) -> Result<QueueRef, QueueError> {
    create_entry(maxsize, defaults, true)
}

fn create_entry(
    maxsize: i64,
    defaults: QueueDefaults,
    unlisted: bool,
) -> Result<QueueRef, QueueError> {
    let mut reg = registry();
    let id = reg.next_id;
    reg.next_id = id.checked_add(1).ok_or(QueueError::IdsExhausted)?;
    let shared = Arc::new(Shared::new(id, maxsize, defaults));
    reg.queues.insert(
        id,
        Entry {
            handles: 1,
            shared: Arc::clone(&shared),
            unlisted,
        },
    );
    Ok(QueueRef { shared })
}

/// Destroys the queue whatever its handle count: waiters wake with `Destroyed`, its items are
/// dropped, handles still alive become inert, and the id is unknown from now on.
pub fn destroy(id: QueueId) -> Result<(), QueueError> {
    let shared = registry()
        .queues
        .remove(&id)
        .map(|e| e.shared)
        .ok_or(QueueError::NotFound(id))?;
    shared.kill();
    Ok(())
}

/// Adds a handle count to `id` without making a handle (3.14's `_interpqueues.bind`); undo with
/// [`release`].
pub fn bind(id: QueueId) -> Result<(), QueueError> {
    let mut reg = registry();
    let entry = reg.queues.get_mut(&id).ok_or(QueueError::NotFound(id))?;
    entry.handles += 1;
    Ok(())
}

/// Takes a handle count from `id` (3.14's `_interpqueues.release`); true if this destroyed the
/// queue.
pub fn release(id: QueueId) -> Result<bool, QueueError> {
    let freed = {
        let mut reg = registry();
        if !reg.queues.contains_key(&id) {
            return Err(QueueError::NotFound(id));
        }
        reg.decref(id)
    };
    Ok(freed.is_some_and(|shared| shared.kill()))
}

/// Every live queue's id and defaults, newest first (as 3.14 lists them).
pub fn list_all() -> Vec<(QueueId, QueueDefaults)> {
    registry()
        .queues
        .iter()
        .rev()
        .filter(|(_, e)| !e.unlisted)
        .map(|(&id, e)| (id, e.shared.defaults))
        .collect()
}

/// A copy of a registered queue's bookkeeping, or `NotFound`.
pub fn info(id: QueueId) -> Result<QueueInfo, QueueError> {
    let reg = registry();
    let entry = reg.queues.get(&id).ok_or(QueueError::NotFound(id))?;
    // Registry lock, then the queue's: the documented order.
    let snap = entry.shared.snapshot()?;
    let shared = &entry.shared;
    Ok(QueueInfo {
        id,
        maxsize: shared.maxsize,
        defaults: shared.defaults,
        handles: entry.handles,
        count: snap.count,
        unbound: snap.unbound,
        getters_waiting: snap.getters,
        putters_waiting: snap.putters,
        wakers: snap.wakers,
    })
}

/// Applies the unbound rules to every queue for the destroyed interpreter `interp`: items it put,
/// or holding a buffer it owns, are removed (`Remove`, freeing room and waking putters) or
/// unbound (`Error`, `Replace`: their values dropped, the items left in place). Returns how
/// many items were affected.
///
/// Call it while `interp` can still run code (from its at-exit hook, as 3.14 does): values it
/// owned are dropped during the call, on the calling thread.
pub fn interp_destroyed(interp: InterpId) -> usize {
    let queues: Vec<Arc<Shared>> = registry()
        .queues
        .values()
        .map(|e| Arc::clone(&e.shared))
        .collect();
    // Unlocked: each queue is visited under its own lock only. The values are dropped once all
    // queues are visited, so a queue freed by one of them is still counted, like the others
    // that were registered at the call.
    let mut dropped = Vec::new();
    let affected = queues.iter().map(|q| q.unbind(interp, &mut dropped)).sum();
    drop(queues);
    dispose(dropped);
    affected
}

/// A counted handle on a queue: each live handle keeps it registered; when the last one is
/// dropped the queue is destroyed, as 3.14 destroys a queue when its last `Queue` object goes.
pub struct QueueRef {
    shared: Arc<Shared>,
}

impl QueueRef {
    /// A new handle on the registered queue `id`, or `NotFound`.
    pub fn open(id: QueueId) -> Result<QueueRef, QueueError> {
        let mut reg = registry();
        let entry = reg.queues.get_mut(&id).ok_or(QueueError::NotFound(id))?;
        entry.handles += 1;
        Ok(QueueRef {
            shared: Arc::clone(&entry.shared),
        })
    }

    /// The queue's id.
    pub fn id(&self) -> QueueId {
        self.shared.id
    }

    /// The maximum size as given at creation (`<= 0`: unbounded). Fixed, so known even after
    /// the queue is destroyed.
    pub fn maxsize(&self) -> i64 {
        self.shared.maxsize
    }

    /// The defaults given at creation.
    pub fn defaults(&self) -> QueueDefaults {
        self.shared.defaults
    }

    /// Queues `value` on behalf of interpreter `owner`, waiting for room as `wait` allows.
    ///
    /// `unbound` is the item's op for when `owner` is destroyed (`None`: the queue's default).
    /// On failure (`Full`, `TimedOut`, `Destroyed`) the value comes back in the error.
    pub fn put(
        &self,
        value: Value,
        owner: InterpId,
        unbound: Option<UnboundOp>,
        wait: Wait,
    ) -> Result<(), PutError> {
        let op = unbound.unwrap_or(self.shared.defaults.unbound);
        self.shared.put(value, owner, op, wait)
    }

    /// [`QueueRef::put`] whose wake-ups (the sleeping getter, the wakers) happen only when the
    /// returned [`Wake`] is used: a caller that is about to give up a lock the woken side needs
    /// (a GIL) wakes it after letting go, so the woken side does not wake only to wait for it.
    pub fn put_quiet(
        &self,
        value: Value,
        owner: InterpId,
        unbound: Option<UnboundOp>,
        wait: Wait,
    ) -> Result<Wake<'_>, PutError> {
        let op = unbound.unwrap_or(self.shared.defaults.unbound);
        self.shared.put_quiet(value, owner, op, wait, None)
    }

    /// [`QueueRef::put`] that gives up with `Cancelled` (the value handed back) as soon as
    /// `cancel` is cancelled, before or while it waits for room.
    pub fn put_cancellable(
        &self,
        value: Value,
        owner: InterpId,
        unbound: Option<UnboundOp>,
        wait: Wait,
        cancel: &Cancel,
    ) -> Result<(), PutError> {
        let op = unbound.unwrap_or(self.shared.defaults.unbound);
        let Some(_watch) = cancel.watch(self.waker_for_cancel()) else {
            return Err(PutError {
                error: QueueError::Cancelled(self.id()),
                value,
            });
        };
        self.shared
            .put_quiet(value, owner, op, wait, Some(cancel))
            .map(Wake::wake)
    }

    /// [`QueueRef::get`] that gives up with `Cancelled`, taking nothing, as soon as `cancel` is
    /// cancelled, before or while it waits for an item.
    pub fn get_cancellable(&self, wait: Wait, cancel: &Cancel) -> Result<Received, QueueError> {
        let Some(_watch) = cancel.watch(self.waker_for_cancel()) else {
            return Err(QueueError::Cancelled(self.id()));
        };
        self.shared.get(wait, Some(cancel))
    }

    /// What a cancellation calls to wake this queue's waiters. Weak: a watcher left behind
    /// must not keep the queue's memory alive.
    fn waker_for_cancel(&self) -> Waker {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move || {
            if let Some(shared) = shared.upgrade() {
                shared.wake_all();
            }
        })
    }

    /// Takes the oldest item, waiting for one as `wait` allows: `Empty` (no wait), `TimedOut`,
    /// or `Destroyed` otherwise. An unbound item is consumed like any other.
    pub fn get(&self, wait: Wait) -> Result<Received, QueueError> {
        self.shared.get(wait, None)
    }

    /// Number of queued items, unbound ones included.
    pub fn qsize(&self) -> Result<usize, QueueError> {
        self.shared.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.shared.len()? == 0)
    }

    /// Whether the queue is bounded and has reached its maximum size.
    pub fn is_full(&self) -> Result<bool, QueueError> {
        self.shared.is_full()
    }

    /// Whether the queue is still registered (neither destroyed nor freed).
    pub fn is_alive(&self) -> bool {
        self.shared.len().is_ok()
    }

    /// Payload-free descriptions of the queued items, oldest first (for tests and diagnostics).
    pub fn items(&self) -> Result<Vec<QueuedItem>, QueueError> {
        self.shared.describe()
    }

    /// Registers a readiness callback (see [`Waker`]).
    pub fn add_waker(&self, waker: Waker) -> Result<WakerId, QueueError> {
        self.shared.add_waker(waker)
    }

    /// Unregisters a callback; false if it was not registered (or the queue is destroyed).
    pub fn remove_waker(&self, id: WakerId) -> bool {
        self.shared.remove_waker(id)
    }

    /// Whether both handles designate the same queue.
    pub fn same_queue(&self, other: &QueueRef) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Clone for QueueRef {
    fn clone(&self) -> QueueRef {
        if let Some(entry) = registry().queues.get_mut(&self.shared.id) {
            entry.handles += 1;
        }
        QueueRef {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for QueueRef {
    fn drop(&mut self) {
        let freed = registry().decref(self.shared.id);
        // The registry guard is gone: killing drops the items, which may drop more handles.
        if let Some(shared) = freed {
            shared.kill();
        }
    }
}

impl fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueRef({})", self.shared.id)
    }
}
