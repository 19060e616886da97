//! Identifier types shared by the core and the extension.

/// An interpreter's runtime-assigned id (`PyInterpreterState_GetID`): main is 0, never reused.
pub type InterpId = i64;

/// A channel's id: assigned from a process-wide counter starting at 0, never reused.
pub type ChannelId = i64;

/// A queue's id: assigned from a process-wide counter starting at 1, never reused.
pub type QueueId = i64;

/// Which end of a channel a `ChannelID` object designates, or which ends an operation targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// The sending end only.
    Send,
    /// The receiving end only.
    Recv,
    /// Both ends.
    Both,
}

impl End {
    /// The name CPython uses for this end in `ChannelID.end`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Send => "send",
            End::Recv => "recv",
            End::Both => "both",
        }
    }

    /// The end selected by a pair of `send`/`recv` flags as `channel_close` and `channel_release`
    /// read them: exactly one flag set selects that end, anything else selects both.
    pub fn from_flags(send: bool, recv: bool) -> End {
        match (send, recv) {
            (true, false) => End::Send,
            (false, true) => End::Recv,
            _ => End::Both,
        }
    }
}
