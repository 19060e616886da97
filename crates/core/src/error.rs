//! The ways a channel or queue operation can fail, one variant per distinct failure.
//!
//! The extension maps each variant to an exception class in a single function. For channels the
//! `Display` text is CPython 3.11's `_xxsubinterpreters` message; for queues it is CPython 3.14's
//! `_interpqueues` message where that module has one.

use std::fmt;

use crate::ids::{ChannelId, QueueId};
use crate::value::Value;

/// A channel operation that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// No channel with this id is registered: it never existed, was destroyed, or its last
    /// `ChannelRef` was dropped. Maps to `ChannelNotFoundError`.
    NotFound(ChannelId),
    /// The channel is closed for everyone (by `close`, by draining a closing channel, or by the
    /// last open association being released), or it is closing and the operation needs it to
    /// accept items. Maps to `ChannelClosedError`.
    Closed(ChannelId),
    /// The caller's own end of the channel was released, or `close` found a channel that the
    /// release rule had already closed. CPython's message has no id here. Maps to
    /// `ChannelClosedError`.
    AlreadyClosed,
    /// `recv` found nothing queued and the caller gave no default. The core never returns this
    /// itself (`recv` answers `Ok(None)`); it exists so the boundary has one error type. Maps to
    /// `ChannelEmptyError`.
    Empty(ChannelId),
    /// `close` without `force` on a channel that still holds items. Maps to
    /// `ChannelNotEmptyError`.
    NotEmpty,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::NotFound(id) => write!(f, "channel {id} not found"),
            ChannelError::Closed(id) => write!(f, "channel {id} closed"),
            ChannelError::AlreadyClosed => f.write_str("channel already closed"),
            ChannelError::Empty(id) => write!(f, "channel {id} is empty"),
            ChannelError::NotEmpty => {
                f.write_str("may not be closed if not empty (try force=True)")
            }
        }
    }
}

impl std::error::Error for ChannelError {}

/// A queue operation that could not be carried out. Plain data: a `put` that fails also hands
/// its value back, in a [`PutError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// No queue with this id is registered: it never existed, was destroyed, or its last handle
    /// was dropped. Maps to `QueueNotFoundError("queue {id} not found")`.
    NotFound(QueueId),
    /// The queue this handle designates was destroyed, before the call or while it waited.
    /// CPython 3.14 reports this as not found too: maps to `QueueNotFoundError`.
    Destroyed(QueueId),
    /// `get` without waiting found the queue empty. Maps to `QueueEmpty("queue {id} is empty")`.
    Empty(QueueId),
    /// `put` without waiting found the queue full. Maps to `QueueFull("queue {id} is full")`.
    Full(QueueId),
    /// A wait with a deadline reached it with nothing to take (`get`) or no room (`put`).
    /// Either the caller's own time slice ended (check for signals and wait again) or its
    /// timeout did (`QueueEmpty` / `QueueFull`, as for `Empty` / `Full`).
    TimedOut(QueueId),
    /// The wait was cut short by its [`crate::queue::Cancel`] (an interrupt of the waiting
    /// thread): nothing was taken or queued. The caller raises the interrupt instead.
    Cancelled(QueueId),
    /// The id counter is exhausted. Maps to `QueueError("ran out of queue IDs")`.
    IdsExhausted,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NotFound(id) | QueueError::Destroyed(id) => {
                write!(f, "queue {id} not found")
            }
            QueueError::Empty(id) => write!(f, "queue {id} is empty"),
            QueueError::Full(id) => write!(f, "queue {id} is full"),
            QueueError::TimedOut(id) => write!(f, "timed out waiting on queue {id}"),
            QueueError::Cancelled(id) => write!(f, "wait on queue {id} interrupted"),
            QueueError::IdsExhausted => f.write_str("ran out of queue IDs"),
        }
    }
}

impl std::error::Error for QueueError {}

/// A refused `put`: why, and the value, returned untouched so that the caller can retry (after
/// a time slice, say) without converting the object again.
#[derive(Debug)]
pub struct PutError {
    /// Why the value was not queued.
    pub error: QueueError,
    /// The value that was not queued.
    pub value: Value,
}

impl PutError {
    /// The value that was not queued.
    pub fn into_value(self) -> Value {
        self.value
    }
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChannelError, QueueError};

    #[test]
    fn messages_match_the_reference_module() {
        assert_eq!(ChannelError::NotFound(7).to_string(), "channel 7 not found");
        assert_eq!(ChannelError::Closed(0).to_string(), "channel 0 closed");
        assert_eq!(
            ChannelError::AlreadyClosed.to_string(),
            "channel already closed"
        );
        assert_eq!(ChannelError::Empty(12).to_string(), "channel 12 is empty");
        assert_eq!(
            ChannelError::NotEmpty.to_string(),
            "may not be closed if not empty (try force=True)"
        );
    }

    #[test]
    fn queue_messages_match_the_reference_module() {
        assert_eq!(QueueError::NotFound(3).to_string(), "queue 3 not found");
        assert_eq!(QueueError::Destroyed(3).to_string(), "queue 3 not found");
        assert_eq!(QueueError::Empty(4).to_string(), "queue 4 is empty");
        assert_eq!(QueueError::Full(5).to_string(), "queue 5 is full");
        assert_eq!(QueueError::IdsExhausted.to_string(), "ran out of queue IDs");
    }
}
