//! Channels: the Python-facing `channel_*` functions and the `ChannelID` type, over the core
//! crate's channel registry.

use crate::py::trampoline::method_def;

pub(crate) mod api;
pub(crate) mod id;

/// The module functions of this area, added to each module object by `module.rs`.
pub(crate) static mut METHODS: [pyo3_ffi::PyMethodDef; 10] = [
    method_def!(noargs c"channel_create", api::channel_create, c"channel_create() -> cid\n\nCreate a new cross-interpreter channel and return its ID."),
    method_def!(kw c"channel_destroy", api::channel_destroy, c"channel_destroy(cid)\n\nClose and forget the channel; afterwards it behaves as if it never existed."),
    method_def!(noargs c"channel_list_all", api::channel_list_all, c"channel_list_all() -> [cid]\n\nReturn the IDs of every registered channel, newest first."),
    method_def!(kw c"channel_list_interpreters", api::channel_list_interpreters, c"channel_list_interpreters(cid, *, send) -> [id]\n\nReturn the IDs of the interpreters associated with the send end (send=True) or\nthe receive end (send=False) of the channel."),
    method_def!(fast c"channel_send", api::channel_send, c"channel_send(cid, obj)\n\nCopy the object's data into the channel's queue. Never blocks."),
    method_def!(fast c"channel_recv", api::channel_recv, c"channel_recv(cid, [default]) -> obj\n\nReturn a new object built from the oldest item in the channel. If the channel is\nempty, return `default` if given, else raise ChannelEmptyError. Never blocks."),
    method_def!(kw c"channel_close", api::channel_close, c"channel_close(cid, *, send=False, recv=False, force=False)\n\nClose the channel for every interpreter. An empty channel closes at once. With\nitems queued: force=True discards them and closes; send=True alone stops new sends\nand closes once the queue is drained; otherwise ChannelNotEmptyError is raised."),
    method_def!(kw c"channel_release", api::channel_release, c"channel_release(cid, *, send=False, recv=False, force=False)\n\nClose the chosen end(s) (both by default) for the current interpreter only. Once\nno interpreter has an end open, the channel is closed."),
    method_def!(kw c"_channel_id", id::channel_id_fn, c"_channel_id(id, *, send=None, recv=None, force=False, _resolve=False) -> cid\n\nBuild a ChannelID for an existing channel (any id with force=True)."),
    pyo3_ffi::PyMethodDef::zeroed(),
];
