//! The channel half of the module: thin wrappers that convert arguments and values, call the
//! core registry, and raise its errors with 3.11's classes and wording.

use std::ffi::{c_int, c_void};

use pyo3_ffi as ffi;
use subinterpreters_core::{registry, ChannelError, End};

use crate::error::{Error, Result};
use crate::id_slots::{id_arg, IdKind, IdSlot};
use crate::py::args;
use crate::py::trampoline::{fast_entry, kw_entry, noargs_entry};
use crate::py::tstate;
use crate::state::ModState;
use crate::values::channel;
use crate::values::convert::{from_value, to_channel_value};

/// The calling interpreter's id (associations are per interpreter).
///
/// # Safety
/// GIL held.
unsafe fn caller() -> i64 {
    // SAFETY: a thread state is current.
    unsafe { tstate::interp_id(tstate::current_interp()) }
}

/// Parses `(cid, ...)` with a format starting with `O&` (the channel ID); `extra` gets the rest.
///
/// # Safety
/// As for [`args::parse`].
pub(crate) unsafe fn parse_cid(
    state: &ModState,
    a: *mut ffi::PyObject,
    k: *mut ffi::PyObject,
    format: &std::ffi::CStr,
    keywords: &[&'static std::ffi::CStr],
    extra: &mut [*mut c_void],
) -> Result<i64> {
    let mut slot = IdSlot::new(state, IdKind::Channel);
    let mut out: Vec<*mut c_void> = slot.unit().to_vec();
    out.extend_from_slice(extra);
    // SAFETY: forwarded contract; the converter writes `slot`.
    if unsafe { args::parse(a, k, format, keywords, &mut out) } {
        Ok(slot.id)
    } else {
        Err(Error::Raised)
    }
}

/// [`parse_cid`] for fastcall functions taking `(cid, obj)`-like arguments: plain positional
/// calls skip the parser.
///
/// # Safety
/// As for [`args::FastArgs::parse`].
unsafe fn parse_cid_fast(
    state: &ModState,
    fa: &args::FastArgs,
    min: usize,
    format: &std::ffi::CStr,
    keywords: &[&'static std::ffi::CStr],
) -> Result<(i64, *mut ffi::PyObject)> {
    // SAFETY: forwarded contract.
    unsafe {
        if let Some(given) = fa.positional(min, 2) {
            let id = id_arg(given[0], IdKind::Channel, state)?;
            return Ok((id, given.get(1).copied().unwrap_or(std::ptr::null_mut())));
        }
        let mut slot = IdSlot::new(state, IdKind::Channel);
        let mut second: *mut ffi::PyObject = std::ptr::null_mut();
        let [conv, at] = slot.unit();
        if fa.parse(format, keywords, &mut [conv, at, (&raw mut second).cast()]) {
            Ok((slot.id, second))
        } else {
            Err(Error::Raised)
        }
    }
}

/// A new reference to `None`.
///
/// # Safety
/// GIL held.
unsafe fn none() -> *mut ffi::PyObject {
    // SAFETY: GIL held (contract); None outlives every reference to it.
    unsafe { ffi::Py_NewRef(ffi::Py_None()) }
}

noargs_entry!(
    /// `channel_create() -> ChannelID`
    channel_create, |state| {
        let handle = registry::create();
        Ok(channel::new(state, handle.id(), End::Both, false, Some(handle))?.into_ptr())
    }
);

noargs_entry!(
    /// `channel_list_all() -> list[ChannelID]`, newest first.
    channel_list_all, |state| {
        let handles = registry::list_all();
        let items = handles
            .into_iter()
            .map(|h| channel::new(state, h.id(), End::Both, false, Some(h)));
        Ok(crate::py::pyref::new_list(items)?.into_ptr())
    }
);

kw_entry!(
    /// `channel_destroy(cid)`
    channel_destroy, |state, a, k| {
        let id = parse_cid(state, a, k, c"O&:channel_destroy", &[c"cid"], &mut [])?;
        registry::destroy(id)?;
        Ok(none())
    }
);

fast_entry!(
    /// `channel_send(cid, obj)`: the hot path parses nothing (positional arguments).
    channel_send, |state, fa| {
        let (id, obj) = parse_cid_fast(state, &fa, 2, c"O&O:channel_send", &[c"cid", c"obj"])?;
        let me = caller();
        // A large `bytes` is borrowed, not copied (docs/values.md#how-values-cross).
        let value = match to_channel_value(obj, state) {
            Ok(v) => v,
            // 3.11 checks the channel before converting: its errors win over ours.
            Err(conv) => {
                registry::check_send(id, me)?;
                return Err(conv);
            }
        };
        registry::send(id, me, value)?;
        Ok(none())
    }
);

fast_entry!(
    /// `channel_recv(cid[, default])`: the hot path parses nothing (positional arguments).
    channel_recv, |state, fa| {
        let (id, default) =
            parse_cid_fast(state, &fa, 1, c"O&|O:channel_recv", &[c"cid", c"default"])?;
        match registry::recv(id, caller())? {
            Some(value) => Ok(from_value(value, Some(state))?.into_ptr()),
            None if !default.is_null() => Ok(ffi::Py_NewRef(default)),
            None => Err(Error::Channel(ChannelError::Empty(id))),
        }
    }
);

/// Parses `(cid, *, send=False, recv=False, force=False)`.
///
/// # Safety
/// As for [`parse_cid`].
unsafe fn parse_ends(
    state: &ModState,
    a: *mut ffi::PyObject,
    k: *mut ffi::PyObject,
    format: &std::ffi::CStr,
) -> Result<(i64, bool, bool, bool)> {
    let (mut send, mut recv, mut force): (c_int, c_int, c_int) = (0, 0, 0);
    // SAFETY: forwarded contract; three `p` units write the three ints.
    let id = unsafe {
        parse_cid(
            state,
            a,
            k,
            format,
            &[c"cid", c"send", c"recv", c"force"],
            &mut [
                (&raw mut send).cast(),
                (&raw mut recv).cast(),
                (&raw mut force).cast(),
            ],
        )?
    };
    Ok((id, send != 0, recv != 0, force != 0))
}

kw_entry!(
    /// `channel_close(cid, *, send=False, recv=False, force=False)`
    channel_close, |state, a, k| {
        let (id, send, recv, force) = parse_ends(state, a, k, c"O&|$ppp:channel_close")?;
        registry::close(id, send, recv, force)?;
        Ok(none())
    }
);

kw_entry!(
    /// `channel_release(cid, *, send=False, recv=False, force=False)`; `force` is ignored, as in
    /// 3.11.
    channel_release, |state, a, k| {
        let (id, send, recv, _force) = parse_ends(state, a, k, c"O&|$ppp:channel_release")?;
        registry::release(id, caller(), send, recv)?;
        Ok(none())
    }
);

kw_entry!(
    /// `channel_list_interpreters(cid, *, send) -> list[InterpreterID]`
    channel_list_interpreters, |state, a, k| {
        let mut send: c_int = 0;
        let id = parse_cid(
            state, a, k, c"O&$p:channel_list_interpreters", &[c"cid", c"send"], &mut [(&raw mut send).cast()],
        )?;
        let mut ids = registry::list_interpreters(id, send != 0)?;
        // 3.11 keeps a destroyed interpreter's associations but never lists it.
        ids.retain(|&i| crate::interp::api::lookup(i).is_some());
        crate::interp::api::ids_to_list(state, &ids)
    }
);
