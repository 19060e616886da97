//! The ways a channel operation can fail, one variant per distinct failure.
//!
//! The extension maps each variant to the exception class and message of CPython 3.11's
//! `_xxsubinterpreters` in a single function; the `Display` text here is that message.

use std::fmt;

use crate::ids::ChannelId;

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

#[cfg(test)]
mod tests {
    use super::ChannelError;

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
}
