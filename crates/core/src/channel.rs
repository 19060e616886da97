//! One channel's state machine: its FIFO queue, the interpreters associated with each end, and
//! the close/release rules of CPython 3.11 (docs/channels.md#close-and-release).
//!
//! Plain data and methods: no globals and no locking. The registry serialises access, and every
//! method that takes values out of the channel hands them back to the caller instead of dropping
//! them, because dropping a queued `Value::Channel` must happen outside the registry lock.

use std::collections::VecDeque;

use crate::error::ChannelError;
use crate::ids::{ChannelId, End, InterpId};
use crate::value::Value;

/// Where a channel is in its life, in the terms of docs/channels.md#close-and-release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelState {
    /// Accepting sends and receives.
    Open,
    /// `close(send=True)` found items queued: sends are refused, receives from any interpreter
    /// drain the queue, and the receive that takes the last item closes the channel.
    Closing,
    /// Closed by `close` (or by draining a closing channel): queue and associations are gone.
    ClosedByClose,
    /// Closed because a release brought both ends' open counts to zero (see [`Channel::release`]).
    /// Items still queued stay there, unreachable, until the channel is destroyed or freed.
    ClosedByRelease,
}

impl ChannelState {
    /// Whether the channel is closed for everyone, whichever way it got there.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            ChannelState::ClosedByClose | ChannelState::ClosedByRelease
        )
    }
}

/// What a successful [`Channel::close`] did.
#[derive(Debug)]
#[must_use = "discarded items must be dropped outside the registry lock"]
pub enum CloseOutcome {
    /// The channel had items and only the send end was named: it is now closing.
    Closing,
    /// The channel is now closed; these are the items that were still queued (empty unless
    /// `force` was given). The caller drops them once no lock is held.
    Closed(VecDeque<Value>),
}

/// How a closed channel got closed; the difference decides `close`'s error
/// (docs/channels.md#close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClosedBy {
    Close,
    Release,
}

/// One interpreter's association with one end.
#[derive(Clone, Copy, Debug)]
struct Association {
    interp: InterpId,
    open: bool,
}

/// The interpreters associated with one end, in the order they first touched it, and the
/// end's open count.
///
/// A `Vec` with linear search: a channel is used by a handful of interpreters, and entries are
/// never removed (CPython keeps released ones too, as they are what closes a channel).
#[derive(Debug, Default)]
struct Side {
    assocs: Vec<Association>,
    /// What decides whether the channel is still open, exactly as 3.11 keeps it: one up for
    /// every interpreter that starts using this end, one down for every release of an existing
    /// association, *including one already released*. So a repeated release counts again: it
    /// can bring the count to zero while another interpreter's association is still open, or
    /// below zero, where no later release brings it back. It is therefore not the number of
    /// open associations, and can be negative.
    open_count: i64,
}

impl Side {
    /// Adds `interp` as open if it is new; refuses an interpreter that released this end.
    fn associate(&mut self, interp: InterpId) -> Result<(), ChannelError> {
        match self.assocs.iter().find(|a| a.interp == interp) {
            Some(a) if !a.open => Err(ChannelError::AlreadyClosed),
            Some(_) => Ok(()),
            None => {
                self.assocs.push(Association { interp, open: true });
                self.open_count += 1;
                Ok(())
            }
        }
    }

    /// Marks `interp` released on this end, recording it as released if it never used it.
    ///
    /// An interpreter new to this end is added and released at once, which leaves the count
    /// as it was; an existing association counts down again, whether or not it was open.
    fn release(&mut self, interp: InterpId) {
        match self.assocs.iter_mut().find(|a| a.interp == interp) {
            Some(a) => {
                a.open = false;
                self.open_count -= 1;
            }
            None => self.assocs.push(Association {
                interp,
                open: false,
            }),
        }
    }

    fn open_interps(&self) -> Vec<InterpId> {
        let mut ids: Vec<InterpId> = self
            .assocs
            .iter()
            .filter(|a| a.open)
            .map(|a| a.interp)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// One channel: a FIFO queue of owned values plus the association bookkeeping of each end.
#[derive(Debug)]
pub struct Channel {
    id: ChannelId,
    queue: VecDeque<Value>,
    send_side: Side,
    recv_side: Side,
    /// Set by a deferred `close(send=True)`. It survives a later close-by-release on purpose:
    /// CPython still answers `close(send=True)` on such a channel with `channel N closed`.
    closing: bool,
    closed: Option<ClosedBy>,
}

impl Channel {
    /// A new open channel with an empty queue and no associations.
    pub fn new(id: ChannelId) -> Channel {
        Channel {
            id,
            queue: VecDeque::new(),
            send_side: Side::default(),
            recv_side: Side::default(),
            closing: false,
            closed: None,
        }
    }

    /// The channel's id (used in error messages).
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// The channel's state.
    pub fn state(&self) -> ChannelState {
        match self.closed {
            Some(ClosedBy::Close) => ChannelState::ClosedByClose,
            Some(ClosedBy::Release) => ChannelState::ClosedByRelease,
            None if self.closing => ChannelState::Closing,
            None => ChannelState::Open,
        }
    }

    /// Whether a deferred send-close was requested (also true for a closing channel that a
    /// release closed afterwards).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The queued items, oldest first.
    pub fn items(&self) -> impl Iterator<Item = &Value> {
        self.queue.iter()
    }

    /// Every association of one end as `(interpreter, open)`, in first-use order.
    pub fn associations(&self, send: bool) -> impl Iterator<Item = (InterpId, bool)> + '_ {
        self.side(send).assocs.iter().map(|a| (a.interp, a.open))
    }

    /// One end's open count (see [`Channel::release`]); not the number of open associations.
    pub fn open_count(&self, send: bool) -> i64 {
        self.side(send).open_count
    }

    /// Copies the borrowed bytes of the interpreters `gone` picks into Rust memory, in place
    /// (order and count unchanged); see [`Value::own_borrowed`]. Returns how many items changed.
    pub fn own_borrowed(
        &mut self,
        gone: &dyn Fn(InterpId) -> bool,
        released: &mut Vec<crate::buffer::SharedBuffer>,
    ) -> usize {
        self.queue
            .iter_mut()
            .map(|v| v.own_borrowed(gone, released))
            .sum()
    }

    /// Gives up the queue, e.g. when the registry frees the channel.
    pub fn into_items(self) -> VecDeque<Value> {
        self.queue
    }

    fn side(&self, send: bool) -> &Side {
        if send {
            &self.send_side
        } else {
            &self.recv_side
        }
    }

    /// The check every operation but `close` starts with: a closed channel (either kind) is
    /// reported as `channel N closed`.
    fn check_not_closed(&self) -> Result<(), ChannelError> {
        match self.closed {
            Some(_) => Err(ChannelError::Closed(self.id)),
            None => Ok(()),
        }
    }

    /// The errors `send` reports before the value is converted: closed, or closing.
    ///
    /// The caller's own released send end is deliberately not checked here: CPython converts
    /// the object first, so a conversion error beats `channel already closed`.
    pub fn check_send(&self) -> Result<(), ChannelError> {
        self.check_not_closed()?;
        if self.closing {
            return Err(ChannelError::Closed(self.id));
        }
        Ok(())
    }

    /// Queues `value` from `interp`, associating it with the send end.
    ///
    /// On failure the value comes back with the error, untouched, so that the caller can drop
    /// it after releasing its lock.
    pub fn send(&mut self, interp: InterpId, value: Value) -> Result<(), (ChannelError, Value)> {
        if let Err(e) = self.check_send() {
            return Err((e, value));
        }
        if let Err(e) = self.send_side.associate(interp) {
            return Err((e, value));
        }
        self.queue.push_back(value);
        Ok(())
    }

    /// Takes the oldest item for `interp`, associating it with the receive end even when the
    /// queue is empty (`Ok(None)`).
    ///
    /// On a closing channel, taking the last item closes the channel (docs/channels.md#closing).
    pub fn recv(&mut self, interp: InterpId) -> Result<Option<Value>, ChannelError> {
        self.check_not_closed()?;
        self.recv_side.associate(interp)?;
        let item = self.queue.pop_front();
        // A closing channel always holds items (closing is only entered with a non-empty queue
        // and only a recv removes items), so this fires exactly once, on the last item.
        if self.closing && self.queue.is_empty() {
            let leftover = self.close_now();
            debug_assert!(leftover.is_empty());
        }
        Ok(item)
    }

    /// `channel_close` for everyone, by the decision table of docs/channels.md#close.
    ///
    /// `end` is what the flags selected ([`End::from_flags`]). The order of the checks is
    /// CPython's: closed-by-close, then the closing + send-only case, then closed-by-release,
    /// then the non-empty queue.
    pub fn close(&mut self, end: End, force: bool) -> Result<CloseOutcome, ChannelError> {
        if self.closed == Some(ClosedBy::Close) {
            return Err(ChannelError::Closed(self.id));
        }
        if !force && end == End::Send && self.closing {
            return Err(ChannelError::Closed(self.id));
        }
        if self.closed == Some(ClosedBy::Release) {
            return Err(ChannelError::AlreadyClosed);
        }
        if !force && !self.queue.is_empty() {
            if end == End::Send {
                self.closing = true;
                return Ok(CloseOutcome::Closing);
            }
            return Err(ChannelError::NotEmpty);
        }
        Ok(CloseOutcome::Closed(self.close_now()))
    }

    /// `channel_release` by `interp` of `end`; returns whether this call closed the channel.
    ///
    /// Afterwards the channel is closed for everyone iff both ends' open counts are zero. While
    /// every interpreter releases each end at most once, that means "it has associations and
    /// none of them is open". A repeated release counts again, as in 3.11: it can close the
    /// channel under an interpreter that still has an open end, or drive a count below zero
    /// and keep the channel open after every association was released.
    pub fn release(&mut self, interp: InterpId, end: End) -> Result<bool, ChannelError> {
        self.check_not_closed()?;
        if end != End::Recv {
            self.send_side.release(interp);
        }
        if end != End::Send {
            self.recv_side.release(interp);
        }
        // 3.11 also keeps a channel without any association open; the release above just
        // made one, so only the counts matter here.
        if self.send_side.open_count != 0 || self.recv_side.open_count != 0 {
            return Ok(false);
        }
        self.closed = Some(ClosedBy::Release);
        Ok(true)
    }

    /// Interpreters whose association with one end is open, ascending.
    ///
    /// A closing channel refuses to list its send end (CPython treats it as closed there).
    pub fn interpreters(&self, send: bool) -> Result<Vec<InterpId>, ChannelError> {
        self.check_not_closed()?;
        if send && self.closing {
            return Err(ChannelError::Closed(self.id));
        }
        Ok(self.side(send).open_interps())
    }

    /// Closes the channel by `close` and returns whatever was queued. Associations go away
    /// with it, as CPython frees the whole channel state at this point.
    fn close_now(&mut self) -> VecDeque<Value> {
        self.closed = Some(ClosedBy::Close);
        self.closing = false;
        self.send_side = Side::default();
        self.recv_side = Side::default();
        std::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: &Option<Value>) -> i64 {
        match v {
            Some(Value::Int(i)) => *i,
            other => panic!("expected an int, got {other:?}"),
        }
    }

    #[test]
    fn fifo_and_association() {
        let mut c = Channel::new(3);
        c.send(0, Value::Int(1)).unwrap();
        c.send(1, Value::Int(2)).unwrap();
        assert_eq!(int(&c.recv(2).unwrap()), 1);
        assert_eq!(int(&c.recv(2).unwrap()), 2);
        assert!(c.recv(2).unwrap().is_none());
        assert_eq!(c.interpreters(true).unwrap(), vec![0, 1]);
        assert_eq!(c.interpreters(false).unwrap(), vec![2]);
    }

    #[test]
    fn failed_send_returns_the_value() {
        let mut c = Channel::new(4);
        c.recv(1).unwrap();
        c.release(0, End::Send).unwrap();
        match c.send(0, Value::Int(9)) {
            Err((ChannelError::AlreadyClosed, Value::Int(9))) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(c.is_empty());
    }

    #[test]
    fn draining_a_closing_channel_closes_it() {
        let mut c = Channel::new(5);
        c.send(0, Value::Int(1)).unwrap();
        c.send(0, Value::Int(2)).unwrap();
        assert!(matches!(
            c.close(End::Send, false),
            Ok(CloseOutcome::Closing)
        ));
        assert_eq!(c.state(), ChannelState::Closing);
        assert_eq!(int(&c.recv(7).unwrap()), 1);
        assert_eq!(c.state(), ChannelState::Closing);
        assert_eq!(int(&c.recv(7).unwrap()), 2);
        assert_eq!(c.state(), ChannelState::ClosedByClose);
        assert_eq!(c.recv(7).unwrap_err(), ChannelError::Closed(5));
    }

    #[test]
    fn repeated_release_counts_again_and_can_close_under_an_open_end() {
        let mut c = Channel::new(6);
        c.send(1, Value::Int(1)).unwrap();
        c.send(2, Value::Int(2)).unwrap();
        assert!(!c.release(1, End::Send).unwrap());
        // Interpreter 2's send end is still open, but the count reaches zero.
        assert!(c.release(1, End::Send).unwrap());
        assert_eq!(c.state(), ChannelState::ClosedByRelease);
        assert_eq!(c.open_count(true), 0);
        assert!(c.associations(true).any(|(i, open)| i == 2 && open));
    }

    #[test]
    fn repeated_release_can_keep_a_fully_released_channel_open() {
        let mut c = Channel::new(7);
        c.send(0, Value::Int(1)).unwrap();
        assert_eq!(c.recv(0).unwrap().map(|_| ()), Some(()));
        assert!(!c.release(0, End::Send).unwrap());
        assert!(!c.release(0, End::Both).unwrap());
        assert_eq!((c.open_count(true), c.open_count(false)), (-1, 0));
        assert_eq!(c.state(), ChannelState::Open);
        assert!(c
            .associations(true)
            .chain(c.associations(false))
            .all(|(_, open)| !open));
        // A newcomer's release adds and removes one: the count stays below zero.
        assert!(!c.release(3, End::Both).unwrap());
        assert_eq!(c.state(), ChannelState::Open);
    }
}
