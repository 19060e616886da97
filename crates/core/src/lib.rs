//! The interpreter-independent core of `subinterpreters`: channel registry, channel ends and their
//! close/release rules, and the values that cross interpreters.
//!
//! Nothing here knows about Python. Everything stored is owned Rust data, so the process-global
//! state can be shared by interpreters that each run under their own GIL. The extension crate
//! converts Python objects to [`Value`]s at the boundary and back.
#![forbid(unsafe_code)]

pub mod channel;
pub mod error;
pub mod ids;
pub mod payload;
pub mod registry;
pub mod sync;
pub mod value;

pub use channel::ChannelState;
pub use error::ChannelError;
pub use ids::{ChannelId, End, InterpId};
pub use payload::Payload;
pub use registry::{ChannelInfo, ChannelRef};
pub use value::{ItemSummary, StrKind, Value};
