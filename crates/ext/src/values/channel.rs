//! A `ChannelID` as a value that crosses: its instance layout (the `ChannelID` type itself,
//! its slots and `_channel_id()`, is in `chan/id.rs`), building one in the receiving
//! interpreter from a handle, and turning one into a value that carries its own count.

use pyo3_ffi as ffi;
use subinterpreters_core::{registry, ChannelRef, End, Value};

use crate::error::{Error, Result};
use crate::id_slots::IdHeader;
use crate::py::pyref::PyRef;
use crate::state::{state_of_module, ModState};

/// The module whose `SendChannel`/`RecvChannel` a `_resolve=True` ID turns into on arrival.
const HIGH_LEVEL_MODULE: &std::ffi::CStr = c"subinterpreters.channels";

/// The instance layout. `handle` is initialised right after allocation and dropped in dealloc.
#[repr(C)]
pub(crate) struct ChanIdObject {
    /// The id.
    pub head: IdHeader,
    /// The end this ID names.
    pub end: End,
    /// Set by `_channel_id(..., _resolve=True)`: a receiver turns this ID into the high-level
    /// channel end if it can (docs/channels.md#sharing-a-channelid).
    pub resolve: bool,
    /// `None` for a forced ID of a channel that was not registered: such an ID counts nothing.
    pub handle: Option<ChannelRef>,
}

/// Makes a new `ChannelID` owning `handle`.
///
/// # Safety
/// GIL held; `state` belongs to the current interpreter.
pub unsafe fn new(
    state: &ModState,
    id: i64,
    end: End,
    resolve: bool,
    handle: Option<ChannelRef>,
) -> Result<PyRef> {
    // SAFETY: allocating an instance of our own heap type (zeroed by tp_alloc), then writing
    // every field before anyone can see it.
    unsafe {
        let obj = crate::id_slots::alloc_with_id(state.channel_id_type, id)?;
        let raw = obj.as_ptr().cast::<ChanIdObject>();
        (&raw mut (*raw).end).write(end);
        (&raw mut (*raw).resolve).write(resolve);
        (&raw mut (*raw).handle).write(handle);
        Ok(obj)
    }
}

/// Converts a `ChannelID` into a value carrying its own count (it arrives with the same id and
/// end). An ID of a channel that is gone cannot travel: `channel N not found`.
///
/// # Safety
/// `obj` must be a `ChannelID` instance; GIL held.
pub unsafe fn channel_value(obj: *mut ffi::PyObject) -> Result<Value> {
    // SAFETY: `obj` has our layout (contract).
    let me = unsafe { &*obj.cast::<ChanIdObject>() };
    let id = me.head.id;
    let not_found = || Error::Channel(subinterpreters_core::ChannelError::NotFound(id));
    if !registry::is_registered(id) {
        // Only live channels travel: an ID of a destroyed (or never created) one would arrive
        // as a handle on nothing.
        return Err(not_found());
    }
    let mut handle = match &me.handle {
        Some(h) => h.with_end(me.end),
        None => registry::forced_ref(id, me.end).ok_or_else(not_found)?,
    };
    handle.set_resolve(me.resolve);
    Ok(Value::Channel(handle))
}

/// Builds a `ChannelID` for a received handle in the current interpreter. Without `state` (a
/// value arriving through `run_string`'s `shared`), the module is imported here to find it.
///
/// # Safety
/// GIL held; `state`, if given, belongs to the current interpreter.
pub unsafe fn channel_object(handle: ChannelRef, state: Option<&ModState>) -> Result<PyRef> {
    // SAFETY: GIL held; the imported module stays alive in sys.modules while we use its state.
    unsafe {
        let (id, end, resolve) = (handle.id(), handle.end(), handle.resolve());
        let cid = match state {
            Some(st) => new(st, id, end, false, Some(handle))?,
            None => {
                let module = PyRef::from_owned(ffi::PyImport_ImportModule(
                    c"subinterpreters.lowlevel".as_ptr(),
                ))?;
                new(
                    state_of_module(module.as_ptr()),
                    id,
                    end,
                    false,
                    Some(handle),
                )?
            }
        };
        if !resolve || end == End::Both {
            return Ok(cid);
        }
        Ok(high_level_end(&cid, end).unwrap_or(cid))
    }
}

/// The resolution of a `_resolve=True` ID on arrival (docs/channels.md#sharing-a-channelid):
/// `SendChannel(cid)` or `RecvChannel(cid)` from our high-level channel module, or `None` (error
/// cleared) if there is none. 3.11 looks in `interpreters`/`test.support.interpreters`, whose
/// classes drive CPython's own channel registry, not ours; resolving into them would hand out ends
/// of other channels. So only our own module counts, and until it exists the ID itself arrives,
/// which is also what 3.11 gives when it cannot resolve.
///
/// # Safety
/// GIL held.
unsafe fn high_level_end(cid: &PyRef, end: End) -> Option<PyRef> {
    // SAFETY: GIL held; new references are owned by PyRef; failures are cleared.
    unsafe {
        let found = (|| {
            let module =
                PyRef::from_owned(ffi::PyImport_ImportModule(HIGH_LEVEL_MODULE.as_ptr())).ok()?;
            let cls_name = if end == End::Send {
                c"SendChannel"
            } else {
                c"RecvChannel"
            };
            let cls = PyRef::from_owned(ffi::PyObject_GetAttrString(
                module.as_ptr(),
                cls_name.as_ptr(),
            ))
            .ok()?;
            PyRef::from_owned(ffi::PyObject_CallOneArg(cls.as_ptr(), cid.as_ptr())).ok()
        })();
        if found.is_none() {
            ffi::PyErr_Clear();
        }
        found
    }
}
