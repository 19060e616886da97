//! The process-global channel registry: ids, object counts, and the rule that nothing is
//! dropped while its lock is held.
//!
//! ```text
//! REGISTRY: Mutex<Registry>                      static, lives for the whole process
//! └── Registry
//!     ├── next_id: ChannelId                     next id to hand out; ids are never reused
//!     ├── exited: HashSet<InterpId>              interpreters whose exit hook ran: no queued
//!     │                                          item borrows their memory (owner_exiting)
//!     └── channels: HashMap<ChannelId, Entry>    every registered channel, closed ones too
//!         └── Entry                              owned by the map; removed by destroy or at
//!             │                                  object count 0
//!             ├── objects: usize                 live ChannelRef handles for this id, wherever
//!             │                                  they are (extension objects, other queues)
//!             └── channel: Channel               (channel.rs)
//!                 ├── queue: VecDeque<Value>     owned payloads; a Value::Channel holds a
//!                 │                              ChannelRef, i.e. one count on another Entry;
//!                 │                              a Value::BorrowedBytes a large bytes object of
//!                 │                              its sender, live until owner_exiting copies it
//!                 ├── send/recv associations     plain (interp, open) pairs, and per end the
//!                 │                              open count that decides close-by-release
//!                 └── closing / closed flags
//!
//! ChannelRef { id, end }                         held by callers; no pointer into the map,
//!                                                only a count on the entry with that id
//! Garbage                                        a stack-local bin: queues taken out under
//!                                                the lock, dropped after unlocking
//! ```
//!
//! Dropping a `ChannelRef` decrements a count, which takes the lock. So a value that may hold a
//! handle (any `Value`, any queue) must never be dropped while the lock is held: every function
//! here reaches the map only through `with_registry`, which gives the closure a `Garbage`
//! bin and drops the bin after the guard. The bin takes handles apart itself, one generation of
//! freed channels per lock acquisition, so a chain of channels each holding the last handle of
//! the next is freed in a loop rather than by recursion. CPython 3.11 deadlocks here
//! (docs/channels.md#concurrency).
//!
//! Handles for ids that are not registered are never made ([`forced_ref`] returns `None`), and
//! ids are never reused, so a handle outliving its channel decrements nothing when dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crate::buffer::SharedBuffer;
use crate::channel::{Channel, ChannelState, CloseOutcome};
use crate::error::ChannelError;
use crate::ids::{ChannelId, End, InterpId};
use crate::sync::{Mutex, MutexGuard};
use crate::value::{ItemSummary, Value};

/// The single process-global registry.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

/// A counted handle on a registered channel, plus the end it designates.
///
/// Each live handle adds one to its channel's object count (docs/channels.md#object-count); when
/// the last one is dropped the channel is freed, open or not. A handle made for a channel that is
/// no longer registered counts nothing and decrements nothing.
#[derive(Debug)]
pub struct ChannelRef {
    id: ChannelId,
    end: End,
    /// A hint carried to whoever turns the handle into an object: build a richer end object
    /// than a plain id if it can (CPython's `_channel_id(..., _resolve=True)`). Not counted.
    resolve: bool,
}

impl ChannelRef {
    /// The channel's id.
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// The end this handle designates.
    pub fn end(&self) -> End {
        self.end
    }

    /// Another counted handle on the same channel, designating `end` (with the same `resolve`
    /// hint). If the channel is gone the new handle is inert, like this one.
    pub fn with_end(&self, end: End) -> ChannelRef {
        with_registry(|reg, _| reg.incref(self.id));
        ChannelRef {
            id: self.id,
            end,
            resolve: self.resolve,
        }
    }

    /// The `resolve` hint (see the field).
    pub fn resolve(&self) -> bool {
        self.resolve
    }

    /// Sets the `resolve` hint.
    pub fn set_resolve(&mut self, resolve: bool) {
        self.resolve = resolve;
    }

    /// Turns the handle into its id without running `Drop`; the caller owes the decrement.
    fn into_id(self) -> ChannelId {
        ManuallyDrop::new(self).id
    }
}

impl Clone for ChannelRef {
    fn clone(&self) -> ChannelRef {
        self.with_end(self.end)
    }
}

impl Drop for ChannelRef {
    fn drop(&mut self) {
        let id = self.id;
        with_registry(|reg, garbage| reg.decref(id, garbage));
    }
}

/// A copy of one channel's bookkeeping, taken under the lock (for tests, diagnostics and a
/// future `channel_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel's id.
    pub id: ChannelId,
    /// Its state.
    pub state: ChannelState,
    /// Whether a deferred send-close was requested (stays set if a release closed it later).
    pub closing: bool,
    /// Live `ChannelRef` handles, including those inside queued items.
    pub object_count: usize,
    /// Queued items.
    pub queued: usize,
    /// Send-end associations as `(interpreter, open)`, in first-use order.
    pub send: Vec<(InterpId, bool)>,
    /// Receive-end associations as `(interpreter, open)`, in first-use order.
    pub recv: Vec<(InterpId, bool)>,
    /// The send and receive ends' open counts, which decide when a release closes the channel
    /// (see [`Channel::release`]; they can differ from the number of open associations).
    pub open_counts: (i64, i64),
}

/// Creates a channel (end both, object count 1) and returns its handle.
///
/// # Panics
/// After 2^63 channels, when the id counter is exhausted.
pub fn create() -> ChannelRef {
    let id = with_registry(|reg, _| reg.create());
    ChannelRef {
        id,
        end: End::Both,
        resolve: false,
    }
}

/// A counted handle on a registered channel (closed ones included), or `NotFound`.
pub fn lookup(id: ChannelId, end: End) -> Result<ChannelRef, ChannelError> {
    if with_registry(|reg, _| reg.incref(id)) {
        Ok(ChannelRef {
            id,
            end,
            resolve: false,
        })
    } else {
        Err(ChannelError::NotFound(id))
    }
}

/// Whether a channel with this id is registered (closed or not).
pub fn is_registered(id: ChannelId) -> bool {
    with_registry(|reg, _| reg.channels.contains_key(&id))
}

/// A counted handle if the channel is registered, `None` otherwise.
///
/// This is what `_channel_id(..., force=True)` and `ChannelID.send`/`.recv` need. Unlike CPython,
/// an object built for an unknown id holds nothing, so it can never decrement a channel that
/// gets that id later (ids are never reused anyway).
pub fn forced_ref(id: ChannelId, end: End) -> Option<ChannelRef> {
    lookup(id, end).ok()
}

/// Removes the channel whatever its state; its queue is dropped after the lock is released.
/// Handles still alive become inert, and every later use of the id reports `NotFound`.
pub fn destroy(id: ChannelId) -> Result<(), ChannelError> {
    with_registry(|reg, garbage| {
        let entry = reg.channels.remove(&id).ok_or(ChannelError::NotFound(id))?;
        garbage.queues.push(entry.channel.into_items());
        Ok(())
    })
}

/// Handles (end both, each counted) on every registered channel, closed ones too, newest first.
pub fn list_all() -> Vec<ChannelRef> {
    let mut ids = with_registry(|reg, _| {
        let mut ids = Vec::with_capacity(reg.channels.len());
        for (&id, entry) in reg.channels.iter_mut() {
            entry.objects += 1;
            ids.push(id);
        }
        ids
    });
    // Ids grow with creation time, so newest first is descending id.
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.into_iter()
        .map(|id| ChannelRef {
            id,
            end: End::Both,
            resolve: false,
        })
        .collect()
}

/// `channel_send`: queues `value` on behalf of interpreter `interp`.
///
/// Errors in CPython's order: not found, closed, closing, then the caller's released send end
/// (`AlreadyClosed`). A refused value is dropped after the lock is released.
///
/// Bytes borrowed from an interpreter that already ran [`owner_exiting`] are copied first (an
/// exit hook that ran before another one of the same interpreter sent): no queued item ever
/// borrows from an exited interpreter.
pub fn send(id: ChannelId, interp: InterpId, mut value: Value) -> Result<(), ChannelError> {
    let mut released: Vec<SharedBuffer> = Vec::new();
    let out = with_registry(|reg, _| {
        if !reg.exited.is_empty() {
            let exited = &reg.exited;
            value.own_borrowed(&|owner| exited.contains(&owner), &mut released);
        }
        match reg.channel_mut(id) {
            Ok(chan) => chan.send(interp, value),
            Err(e) => Err((e, value)),
        }
    })
    // The refused value is dropped here, after the guard.
    .map_err(|(e, _refused)| e);
    drop(released);
    out
}

/// The exit of interpreter `interp` (called from its at-exit hook, while it can still run
/// code): every queued item borrowing its bytes, in every channel (closed ones too), is given an
/// owned copy in its place, so it stays receivable after `interp` is gone (README difference
/// 7), and later sends of its borrowed bytes are copied at once. Returns how many items were
/// copied.
///
/// The copies are made under the registry lock, so no receive can see an item half-way; the
/// borrowed buffers are dropped after it, on the calling thread (attached to `interp`, so the
/// extension releases them at once).
pub fn owner_exiting(interp: InterpId) -> usize {
    let mut released: Vec<SharedBuffer> = Vec::new();
    let copied = with_registry(|reg, _| {
        reg.exited.insert(interp);
        let gone = |owner: InterpId| owner == interp;
        reg.channels
            .values_mut()
            .map(|entry| entry.channel.own_borrowed(&gone, &mut released))
            .sum()
    });
    drop(released);
    copied
}

/// The errors [`send`] would report before the value is converted: not found, closed, closing.
///
/// The extension calls this before converting the Python object, so that those errors beat a
/// conversion error as in CPython. The caller's own released send end is not checked: CPython
/// reports it only after a successful conversion. `interp` is accepted so that the check can
/// grow per-interpreter rules without an API change.
pub fn check_send(id: ChannelId, interp: InterpId) -> Result<(), ChannelError> {
    let _ = interp;
    with_registry(|reg, _| reg.channel_mut(id)?.check_send())
}

/// `channel_recv`: the oldest item, or `Ok(None)` if the queue is empty.
///
/// The caller's receive end is associated even when nothing is returned; the extension decides
/// between the default and `ChannelEmptyError`. Taking the last item of a closing channel
/// closes it.
pub fn recv(id: ChannelId, interp: InterpId) -> Result<Option<Value>, ChannelError> {
    with_registry(|reg, _| reg.channel_mut(id)?.recv(interp))
}

/// `channel_close`: closes the channel for everyone by the table of docs/channels.md#close.
///
/// `send`/`recv` select the end as [`End::from_flags`] does. Items discarded by `force` are
/// dropped after the lock is released.
pub fn close(id: ChannelId, send: bool, recv: bool, force: bool) -> Result<(), ChannelError> {
    with_registry(|reg, garbage| {
        let chan = reg.channel_mut(id)?;
        match chan.close(End::from_flags(send, recv), force)? {
            CloseOutcome::Closing => {}
            CloseOutcome::Closed(discarded) => garbage.queues.push(discarded),
        }
        Ok(())
    })
}

/// `channel_release`: closes the chosen end(s) for interpreter `interp` only; neither flag means
/// both ends. The channel closes for everyone when both ends' open counts reach zero
/// ([`Channel::release`]).
pub fn release(
    id: ChannelId,
    interp: InterpId,
    send: bool,
    recv: bool,
) -> Result<(), ChannelError> {
    let end = End::from_flags(send, recv);
    with_registry(|reg, _| {
        reg.channel_mut(id)?
            .release(interp, end)
            .map(|_closed_by_this_call| ())
    })
}

/// `channel_list_interpreters`: interpreters with an open association on the send end (`send`)
/// or the receive end, ascending. The extension leaves out interpreters that no longer exist.
pub fn list_interpreters(id: ChannelId, send: bool) -> Result<Vec<InterpId>, ChannelError> {
    with_registry(|reg, _| reg.channel_mut(id)?.interpreters(send))
}

/// Number of queued items, whatever the channel's state (0 once closed by `close`).
pub fn count(id: ChannelId) -> Result<usize, ChannelError> {
    with_registry(|reg, _| Ok(reg.channel_mut(id)?.len()))
}

/// The channel's state, or `NotFound`.
pub fn state(id: ChannelId) -> Result<ChannelState, ChannelError> {
    with_registry(|reg, _| Ok(reg.channel_mut(id)?.state()))
}

/// A copy of the channel's bookkeeping, or `NotFound`.
pub fn info(id: ChannelId) -> Result<ChannelInfo, ChannelError> {
    with_registry(|reg, _| {
        let entry = reg.channels.get(&id).ok_or(ChannelError::NotFound(id))?;
        let chan = &entry.channel;
        Ok(ChannelInfo {
            id,
            state: chan.state(),
            closing: chan.is_closing(),
            object_count: entry.objects,
            queued: chan.len(),
            send: chan.associations(true).collect(),
            recv: chan.associations(false).collect(),
            open_counts: (chan.open_count(true), chan.open_count(false)),
        })
    })
}

/// Payload-free descriptions of the queued items, oldest first, or `NotFound`.
///
/// Copies the whole queue description: meant for tests and diagnostics, not hot paths.
pub fn queue_summary(id: ChannelId) -> Result<Vec<ItemSummary>, ChannelError> {
    with_registry(|reg, _| Ok(reg.channel_mut(id)?.items().map(Value::summary).collect()))
}

/// One registered channel and its object count.
struct Entry {
    objects: usize,
    channel: Channel,
}

/// The map behind [`REGISTRY`].
struct Registry {
    next_id: ChannelId,
    exited: HashSet<InterpId, BuildHasherDefault<IdHasher>>,
    channels: HashMap<ChannelId, Entry, BuildHasherDefault<IdHasher>>,
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            next_id: 0,
            exited: HashSet::with_hasher(BuildHasherDefault::new()),
            channels: HashMap::with_hasher(BuildHasherDefault::new()),
        }
    }

    fn create(&mut self) -> ChannelId {
        let id = self.next_id;
        // Checked before anything changes, so a panic here leaves the map consistent.
        self.next_id = id.checked_add(1).expect("channel ids exhausted");
        self.channels.insert(
            id,
            Entry {
                objects: 1,
                channel: Channel::new(id),
            },
        );
        id
    }

    fn channel_mut(&mut self, id: ChannelId) -> Result<&mut Channel, ChannelError> {
        match self.channels.get_mut(&id) {
            Some(entry) => Ok(&mut entry.channel),
            None => Err(ChannelError::NotFound(id)),
        }
    }

    /// Adds one to the object count; false (and nothing counted) if `id` is not registered.
    fn incref(&mut self, id: ChannelId) -> bool {
        match self.channels.get_mut(&id) {
            Some(entry) => {
                entry.objects += 1;
                true
            }
            None => false,
        }
    }

    /// Takes one from the object count and frees the channel at zero, its queue into `garbage`.
    /// An unregistered id means the channel was destroyed while the handle lived: nothing to do.
    fn decref(&mut self, id: ChannelId, garbage: &mut Garbage) {
        let Some(entry) = self.channels.get_mut(&id) else {
            return;
        };
        debug_assert!(entry.objects > 0, "object count underflow for channel {id}");
        entry.objects -= 1;
        if entry.objects == 0 {
            if let Some(entry) = self.channels.remove(&id) {
                garbage.queues.push(entry.channel.into_items());
            }
        }
    }
}

/// Queues taken out of the registry under its lock. Dropping the bin (which [`with_registry`]
/// does after the guard) frees them with no lock held.
///
/// A single refused value (a failed `send`) does not go through the bin: it is handed back out
/// of the closure and dropped by the caller, which keeps the fast path free of allocation.
#[derive(Default)]
struct Garbage {
    queues: Vec<VecDeque<Value>>,
}

impl Drop for Garbage {
    fn drop(&mut self) {
        // Decrements owed by handles found in the bin, applied in batches.
        let mut owed: Vec<ChannelId> = Vec::new();
        while !self.queues.is_empty() {
            let mut others: Vec<Value> = Vec::new();
            for queue in std::mem::take(&mut self.queues) {
                for value in queue {
                    match value {
                        // Dropping the handle normally would lock and recurse; take the
                        // decrement over instead.
                        Value::Channel(handle) => owed.push(handle.into_id()),
                        // Anything else is freed here, unlocked. It may hold handles too (a
                        // queue, a tuple of channels): `dispose` keeps that iterative.
                        other => others.push(other),
                    }
                }
            }
            crate::dispose::dispose(others);
            if owed.is_empty() {
                break;
            }
            // One lock acquisition per generation. Channels freed by these decrements put their
            // queues back into the bin, and the loop goes round again after unlocking.
            let mut reg = lock_registry();
            for id in owed.drain(..) {
                reg.decref(id, self);
            }
        }
    }
}

/// Runs `f` on the registry under its lock, then drops the garbage `f` collected after the lock
/// is released. The only way into the registry.
fn with_registry<R>(f: impl FnOnce(&mut Registry, &mut Garbage) -> R) -> R {
    let mut garbage = Garbage::default();
    let out = {
        let mut reg = lock_registry();
        f(&mut reg, &mut garbage)
    };
    // The guard is gone: values in the bin may now drop their handles.
    drop(garbage);
    out
}

/// The registry guard. Poisoning is ignored: the code run under the lock keeps the map
/// consistent at every point where it could panic, and one failed call must not make every
/// later channel operation in the process panic too.
fn lock_registry() -> Locked {
    #[cfg(debug_assertions)]
    held::enter();
    Locked(REGISTRY.lock())
}

/// A registry guard that, in debug builds, records that this thread holds the lock.
struct Locked(MutexGuard<'static, Registry>);

impl Deref for Locked {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.0
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.0
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        held::leave();
    }
}

/// Debug-build check that the lock is never re-entered on one thread (e.g. a handle dropped
/// under it), which would otherwise deadlock silently.
#[cfg(debug_assertions)]
mod held {
    use std::cell::Cell;

    thread_local! {
        static HELD: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn enter() {
        // `try_with`: during thread teardown the flag may be gone; skip the check then.
        let _ = HELD.try_with(|h| {
            assert!(
                !h.replace(true),
                "channel registry lock re-entered on one thread (a value dropped under it?)"
            );
        });
    }

    pub(super) fn leave() {
        let _ = HELD.try_with(|h| h.set(false));
    }
}

/// A hasher for channel ids: one multiplication instead of SipHash.
///
/// Ids are small sequential integers chosen by us, not by an attacker, so a Fibonacci hash
/// spreads them well; this keeps the one map lookup on the send/recv path cheap.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used for `i64` keys; a simple fold keeps the hasher correct for any input.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
