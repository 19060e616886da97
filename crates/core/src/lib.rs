//! The interpreter-independent core of `subinterpreters`: the channel registry (CPython 3.11's
//! channels) and the queue registry (CPython 3.14's `concurrent.interpreters` queues), their
//! close, release and unbound rules, the values that cross interpreters, and the state machine of
//! the extension's interpreter registry ([`interps`]).
//!
//! Nothing here knows about Python. Everything stored is owned Rust data, so the process-global
//! state can be shared by interpreters that each run under their own GIL. The extension crate
//! converts Python objects to [`Value`]s at the boundary and back; the one kind of value that
//! refers to an interpreter's memory, a [`SharedBuffer`], is implemented by the extension through
//! the [`ForeignBuffer`] trait.
//!
//! Queues block in Rust on condition variables ([`QueueRef::put`], [`QueueRef::get`] with a
//! [`Wait`]), so the extension can wait with the GIL released, in slices if it must check for
//! signals. No value is ever dropped while a lock of the core is held (see [`registry`],
//! [`queue`]).
#![forbid(unsafe_code)]

pub mod buffer;
pub mod channel;
pub mod claims;
pub mod codec;
mod dispose;
pub mod error;
pub mod ids;
pub mod interps;
pub mod payload;
pub mod queue;
pub mod registry;
pub mod sync;
pub mod value;

pub use buffer::{ForeignBuffer, SharedBuffer};
pub use channel::ChannelState;
pub use error::{ChannelError, PutError, QueueError};
pub use ids::{ChannelId, End, InterpId, QueueId};
pub use payload::Payload;
pub use queue::{
    Cancel, Fallback, QueueDefaults, QueueInfo, QueueRef, QueuedItem, Received, UnboundOp, Wait,
    Waker, WakerId,
};
pub use registry::{ChannelInfo, ChannelRef};
pub use value::{ItemSummary, OutOfBand, StrKind, Value};
