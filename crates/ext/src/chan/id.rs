//! The `ChannelID` type (docs/channels.md#channelid): an int-like handle on a channel and one of
//! its ends. Each instance owns a counted [`ChannelRef`], so the channel lives while any instance
//! does, in any interpreter (or inside any queued item).

use std::ffi::{c_int, c_void};

use pyo3_ffi as ffi;
use subinterpreters_core::{registry, ChannelRef, End, Value};

use crate::error::{Error, Result};
use crate::id_slots::{id_richcompare, new_str, shared_slots, IdHeader};
use crate::module::{state_of_module, state_of_type, ModState};
use crate::py::capi::type_slot;
use crate::py::pyref::PyRef;
use crate::py::trampoline::{guard_obj, kw_entry};

/// The module whose `SendChannel`/`RecvChannel` a `_resolve=True` ID turns into on arrival.
const HIGH_LEVEL_MODULE: &std::ffi::CStr = c"subinterpreters.channels";

/// The instance layout. `handle` is initialised right after allocation and dropped in dealloc.
#[repr(C)]
struct ChanIdObject {
    head: IdHeader,
    end: End,
    /// Set by `_channel_id(..., _resolve=True)`: a receiver turns this ID into the high-level
    /// channel end if it can (docs/channels.md#sharing-a-channelid).
    resolve: bool,
    /// `None` for a forced ID of a channel that was not registered: such an ID counts nothing.
    handle: Option<ChannelRef>,
}

/// The id stored in a `ChannelID`.
///
/// # Safety
/// `obj` must be a `ChannelID` instance.
pub unsafe fn stored_id(obj: *mut ffi::PyObject) -> i64 {
    // SAFETY: `obj` has our layout (contract).
    unsafe { crate::id_slots::header_id(obj) }
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
    ffi::PyGetSetDef {
        name: std::ptr::null(),
        get: None,
        set: None,
        doc: std::ptr::null(),
        closure: std::ptr::null_mut(),
    },
];

/// Creates the heap type for one module instance.
///
/// # Safety
/// GIL held; `module` is the module being initialised.
pub unsafe fn create_type(module: *mut ffi::PyObject) -> Result<Option<PyRef>> {
    let mut slots = shared_slots(
        tp_dealloc as *mut c_void,
        tp_repr as *mut c_void,
        tp_richcompare as *mut c_void,
    );
    slots.extend([
        // SAFETY: taking the address of a static that CPython only reads.
        type_slot(ffi::Py_tp_getset, (&raw mut GETSET).cast()),
        type_slot(
            ffi::Py_tp_doc,
            c"A channel ID identifies a channel and may be used as an int.".as_ptr() as *mut c_void,
        ),
        type_slot(0, std::ptr::null_mut()),
    ]);
    let mut spec = ffi::PyType_Spec {
        name: c"subinterpreters.lowlevel.ChannelID".as_ptr(),
        basicsize: std::mem::size_of::<ChanIdObject>() as c_int,
        itemsize: 0,
        // Built only by _channel_id() and the channel functions; not subclassable
        // (docs/channels.md#channelid-construction).
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: spec and slots outlive the call (CPython copies what it keeps); GIL held.
    unsafe {
        PyRef::from_owned(ffi::PyType_FromModuleAndSpec(
            module,
            &mut spec,
            std::ptr::null_mut(),
        ))
        .map(Some)
    }
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
