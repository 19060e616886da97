//! Channels: the Python-facing `channel_*` functions and the `ChannelID` type, over the core
//! crate's channel registry.

pub(crate) mod api;
pub(crate) mod id;
