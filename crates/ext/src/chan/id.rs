//! The `ChannelID` type (docs/channels.md#channelid): an int-like handle on a channel and one of
//! its ends. Each instance owns a counted [`ChannelRef`], so the channel lives while any instance
//! does, in any interpreter (or inside any queued item).

use std::ffi::{c_int, c_void};

use pyo3_ffi as ffi;
use subinterpreters_core::{registry, End};

use crate::error::{Error, Result};
use crate::id_slots::{id_richcompare, shared_slots};
use crate::py::capi::type_slot;
use crate::py::heap_type::{HeapType, GETSET_END};
use crate::py::pyref::PyRef;
use crate::py::text::new_str;
use crate::py::trampoline::{guard_obj, kw_entry};
use crate::state::state_of_type;
use crate::values::channel::{new, ChanIdObject};

unsafe extern "C" fn tp_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython deallocates an instance of our type with the GIL held. The handle is
    // taken out first: dropping it touches only the core registry (no Python), and the object
    // memory is freed with the type's tp_free before the type reference is dropped.
    unsafe {
        let raw = obj.cast::<ChanIdObject>();
        let handle = (&raw mut (*raw).handle).read();
        let tp = ffi::Py_TYPE(obj);
        if let Some(free) = (*tp).tp_free {
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
        drop(handle);
    }
}

unsafe extern "C" fn tp_repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe {
        let me = &*obj.cast::<ChanIdObject>();
        let text = match me.end {
            End::Send => format!("ChannelID({}, send=True)", me.head.id),
            End::Recv => format!("ChannelID({}, recv=True)", me.head.id),
            End::Both => format!("ChannelID({})", me.head.id),
        };
        new_str(&text)
    }
}

unsafe extern "C" fn tp_richcompare(
    obj: *mut ffi::PyObject,
    other: *mut ffi::PyObject,
    op: c_int,
) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held; `other` is read as ours only if its type is ours.
    unsafe {
        let me = &*obj.cast::<ChanIdObject>();
        let same = (ffi::Py_TYPE(other) == ffi::Py_TYPE(obj)).then(|| {
            let them = &*other.cast::<ChanIdObject>();
            me.head.id == them.head.id && me.end == them.end
        });
        id_richcompare(me.head.id, other, op, same)
    }
}

unsafe extern "C" fn get_end(obj: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe { new_str((*obj.cast::<ChanIdObject>()).end.as_str()) }
}

/// A new ID for `end` of the same channel (forced: never fails for a missing channel).
///
/// # Safety
/// `obj` is our instance; GIL held.
unsafe fn other_end(obj: *mut ffi::PyObject, end: End) -> *mut ffi::PyObject {
    // SAFETY: forwarded contract.
    unsafe {
        let state = state_of_type(ffi::Py_TYPE(obj));
        guard_obj(state, || {
            let state = state.ok_or(Error::Raised)?;
            let me = &*obj.cast::<ChanIdObject>();
            let handle = match &me.handle {
                Some(h) => Some(h.with_end(end)),
                None => registry::forced_ref(me.head.id, end),
            };
            Ok(new(state, me.head.id, end, me.resolve, handle)?.into_ptr())
        })
    }
}

unsafe extern "C" fn get_send(obj: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe { other_end(obj, End::Send) }
}

unsafe extern "C" fn get_recv(obj: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe { other_end(obj, End::Recv) }
}

static mut GETSET: [ffi::PyGetSetDef; 4] = [
    ffi::PyGetSetDef {
        name: c"end".as_ptr(),
        get: Some(get_end),
        set: None,
        doc: c"'send', 'recv', or 'both'".as_ptr(),
        closure: std::ptr::null_mut(),
    },
    ffi::PyGetSetDef {
        name: c"send".as_ptr(),
        get: Some(get_send),
        set: None,
        doc: c"the 'send' end of the channel".as_ptr(),
        closure: std::ptr::null_mut(),
    },
    ffi::PyGetSetDef {
        name: c"recv".as_ptr(),
        get: Some(get_recv),
        set: None,
        doc: c"the 'recv' end of the channel".as_ptr(),
        closure: std::ptr::null_mut(),
    },
    GETSET_END,
];

/// The `ChannelID` type. Built only by `_channel_id()` and the channel functions; not
/// subclassable (docs/channels.md#channelid-construction).
const TYPE: HeapType = HeapType {
    name: c"subinterpreters.lowlevel.ChannelID",
    doc: c"A channel ID identifies a channel and may be used as an int.",
    basicsize: std::mem::size_of::<ChanIdObject>(),
    flags: ffi::Py_TPFLAGS_DEFAULT
        | ffi::Py_TPFLAGS_IMMUTABLETYPE
        | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION,
};

/// Creates the heap type for one module instance.
///
/// # Safety
/// GIL held; `module` is the module being initialised.
pub unsafe fn create_type(module: *mut ffi::PyObject) -> Result<PyRef> {
    let mut slots = shared_slots(
        tp_dealloc as *mut c_void,
        tp_repr as *mut c_void,
        tp_richcompare as *mut c_void,
    );
    // SAFETY: taking the address of a static that CPython only reads.
    slots.push(type_slot(ffi::Py_tp_getset, (&raw mut GETSET).cast()));
    // SAFETY: GIL held; every slot function has its slot's signature.
    unsafe { TYPE.create(module, slots) }
}

kw_entry!(
    /// `_channel_id(id, *, send=None, recv=None, force=False, _resolve=False) -> ChannelID`
    channel_id_fn, |state, args, kwds| {
        // -1 = not given (an explicit falsy value, None included, gives 0).
        let (mut send, mut recv, mut force, mut resolve): (c_int, c_int, c_int, c_int) =
            (-1, -1, 0, 0);
        let id = crate::chan::api::parse_cid(
            state,
            args,
            kwds,
            c"O&|$pppp:ChannelID.__new__",
            &[c"id", c"send", c"recv", c"force", c"_resolve"],
            &mut [
                (&raw mut send).cast::<c_void>(),
                (&raw mut recv).cast::<c_void>(),
                (&raw mut force).cast::<c_void>(),
                (&raw mut resolve).cast::<c_void>(),
            ],
        )?;
        let end = match (send, recv) {
            (0, 0) => {
                return Err(Error::Value(
                    "'send' and 'recv' cannot both be False".into(),
                ))
            }
            (1, 1) => End::Both,
            (1, _) => End::Send,
            (_, 1) => End::Recv,
            _ => End::Both,
        };
        let handle = if force != 0 {
            registry::forced_ref(id, end)
        } else {
            Some(registry::lookup(id, end)?)
        };
        Ok(new(state, id, end, resolve != 0, handle)?.into_ptr())
    }
);
