//! What `InterpreterID` and `ChannelID` share: both instance layouts begin with [`IdHeader`],
//! so `str()`, `int()`, `__index__`, `hash()` and the numeric side of `==` are one set of slot
//! functions and [`shared_slots`] is the part of the slot tables they share; and the parsing
//! of ID arguments (docs/interpreters.md#id-arguments), which accepts either type's objects.

use std::ffi::{c_int, c_void};

use pyo3_ffi as ffi;

use crate::error::{Error, Result};
use crate::py::capi::type_slot;
use crate::py::pyref::PyRef;
use crate::py::text::{new_str, str_lossy, text_of, type_name};
use crate::state::ModState;

/// The common start of both ID objects' layouts.
#[repr(C)]
pub struct IdHeader {
    /// The object header.
    pub ob_base: ffi::PyObject,
    /// The interpreter or channel id.
    pub id: i64,
}

/// The id stored in an ID object of either type.
///
/// # Safety
/// `obj` must be an instance of one of the two ID types.
pub unsafe fn header_id(obj: *mut ffi::PyObject) -> i64 {
    // SAFETY: both layouts begin with an IdHeader (their first field), by contract.
    unsafe { (*obj.cast::<IdHeader>()).id }
}

/// A new, zeroed instance of one of our ID types with `id` in its header; the caller fills in
/// the rest of its layout before anyone else sees it.
///
/// # Safety
/// GIL held; `tp` is one of our ID types (its layout begins with [`IdHeader`]).
pub unsafe fn alloc_with_id(tp: *mut ffi::PyObject, id: i64) -> Result<PyRef> {
    // SAFETY: `tp` is a live heap type of ours (contract): tp_alloc gives a zeroed instance of
    // its basic size, whose header we own until the object is returned.
    unsafe {
        let tp = tp.cast::<ffi::PyTypeObject>();
        let alloc = (*tp)
            .tp_alloc
            .ok_or(Error::System("ID type without tp_alloc".into()))?;
        let obj = PyRef::from_owned(alloc(tp, 0))?;
        (*obj.as_ptr().cast::<IdHeader>()).id = id;
        Ok(obj)
    }
}

/// `str(id)`: the decimal id.
///
/// # Safety
/// Called by CPython as a slot of one of our ID types, GIL held.
pub unsafe extern "C" fn tp_str(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is one of our ID objects (contract).
    unsafe { new_str(&header_id(obj).to_string()) }
}

/// `int(id)` and `operator.index(id)`.
///
/// # Safety
/// Called by CPython as a slot of one of our ID types, GIL held.
pub unsafe extern "C" fn nb_int(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is one of our ID objects (contract).
    unsafe { ffi::PyLong_FromLongLong(header_id(obj)) }
}

/// `hash(id)`: the hash of the int id (so IDs and ints mix in dicts).
///
/// # Safety
/// Called by CPython as a slot of one of our ID types, GIL held.
pub unsafe extern "C" fn tp_hash(obj: *mut ffi::PyObject) -> ffi::Py_hash_t {
    // SAFETY: `obj` is one of our ID objects (contract); the temporary int is released.
    unsafe {
        let n = ffi::PyLong_FromLongLong(header_id(obj));
        if n.is_null() {
            return -1;
        }
        let h = ffi::PyObject_Hash(n);
        ffi::Py_DECREF(n);
        h
    }
}

/// Equality shared by both ID types (docs/interpreters.md#interpreterid-protocols,
/// docs/channels.md#channelid-protocols): against an exact int compare values (never raising),
/// against other numbers delegate to `int(self) == other`, otherwise `NotImplemented`. `same_type`
/// handles two instances of the ID type itself.
///
/// # Safety
/// GIL held; `id` is `self`'s id; `other` live.
pub unsafe fn id_richcompare(
    id: i64,
    other: *mut ffi::PyObject,
    op: c_int,
    same_type: Option<bool>,
) -> *mut ffi::PyObject {
    // SAFETY: (whole body) GIL held; every new reference is returned or released.
    unsafe {
        if op != ffi::Py_EQ && op != ffi::Py_NE {
            return ffi::Py_NewRef(ffi::Py_NotImplemented());
        }
        let equal = if let Some(eq) = same_type {
            eq
        } else if ffi::PyLong_CheckExact(other) != 0 {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(other, &mut overflow);
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                return std::ptr::null_mut();
            }
            overflow == 0 && v == id
        } else if ffi::PyNumber_Check(other) != 0 {
            let me = ffi::PyLong_FromLongLong(id);
            if me.is_null() {
                return std::ptr::null_mut();
            }
            let res = ffi::PyObject_RichCompare(me, other, op);
            ffi::Py_DECREF(me);
            return res;
        } else {
            return ffi::Py_NewRef(ffi::Py_NotImplemented());
        };
        ffi::PyBool_FromLong(c_int::from(equal == (op == ffi::Py_EQ)).into())
    }
}

/// `__reduce_ex__(protocol)`: ID objects cannot be pickled or copied. The message names the
/// type as CPython's does for its static types: by `__name__` on copyreg's path (protocols 0
/// and 1), by its full type name otherwise.
///
/// # Safety
/// Called by CPython as a method of one of our ID types, GIL held.
unsafe extern "C" fn reduce_ex(
    obj: *mut ffi::PyObject,
    protocol: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: GIL held (contract); every new reference is released; we always return NULL with
    // an exception set.
    unsafe {
        let proto = ffi::PyLong_AsLong(protocol);
        if proto == -1 && !ffi::PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let tp = ffi::Py_TYPE(obj);
        let name = if proto < 2 {
            match crate::py::pyref::PyRef::from_owned(ffi::PyObject_GetAttrString(
                tp.cast(),
                c"__name__".as_ptr(),
            )) {
                Ok(n) => str_lossy(n.as_ptr()),
                Err(_) => return std::ptr::null_mut(),
            }
        } else {
            std::ffi::CStr::from_ptr((*tp).tp_name)
                .to_string_lossy()
                .into_owned()
        };
        crate::error::Error::Type(format!("cannot pickle '{name}' object")).restore(None);
        std::ptr::null_mut()
    }
}

/// Methods shared by both ID types.
pub static mut ID_METHODS: [ffi::PyMethodDef; 2] = [
    ffi::PyMethodDef {
        ml_name: c"__reduce_ex__".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: reduce_ex,
        },
        ml_flags: ffi::METH_O,
        ml_doc: c"ID objects cannot be pickled or copied.".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
];

/// The slots both ID types share, around the type's own `dealloc`, `repr` and `richcompare`:
/// `str`, `hash`, `int`, `index` and the methods that refuse pickling.
pub fn shared_slots(
    dealloc: *mut c_void,
    repr: *mut c_void,
    richcompare: *mut c_void,
) -> Vec<ffi::PyType_Slot> {
    vec![
        type_slot(ffi::Py_tp_dealloc, dealloc),
        type_slot(ffi::Py_tp_repr, repr),
        type_slot(ffi::Py_tp_str, tp_str as *mut c_void),
        type_slot(ffi::Py_tp_hash, tp_hash as *mut c_void),
        type_slot(ffi::Py_tp_richcompare, richcompare),
        type_slot(ffi::Py_nb_int, nb_int as *mut c_void),
        type_slot(ffi::Py_nb_index, nb_int as *mut c_void),
        // SAFETY: taking the address of a static table that CPython only reads.
        type_slot(ffi::Py_tp_methods, (&raw mut ID_METHODS).cast()),
    ]
}

/// Which kind of id an argument names; only the wording of errors differs.
#[derive(Clone, Copy)]
pub enum IdKind {
    /// `interpreter ID`.
    Interpreter,
    /// `channel ID`.
    Channel,
}

impl IdKind {
    fn word(self) -> &'static str {
        match self {
            IdKind::Interpreter => "interpreter",
            IdKind::Channel => "channel",
        }
    }
}

/// Converts an ID argument per docs/interpreters.md#id-arguments: our ID objects give their id,
/// anything with `__index__` its value (non-negative, below 2**63), everything else a `TypeError`.
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn id_arg(obj: *mut ffi::PyObject, kind: IdKind, state: &ModState) -> Result<i64> {
    // SAFETY: (whole body) GIL held; `obj` live.
    unsafe {
        let own_type = match kind {
            IdKind::Interpreter => state.interp_id_type,
            IdKind::Channel => state.channel_id_type,
        };
        if !own_type.is_null() && ffi::Py_TYPE(obj).cast::<ffi::PyObject>() == own_type {
            return Ok(header_id(obj));
        }
        if ffi::PyIndex_Check(obj) == 0 {
            return Err(Error::Type(format!(
                "{} ID must be an int, got {}",
                kind.word(),
                type_name(obj)
            )));
        }
        let id = ffi::PyLong_AsLongLong(obj);
        if id == -1 && !ffi::PyErr_Occurred().is_null() {
            return Err(Error::Raised);
        }
        if id < 0 {
            return Err(Error::Value(format!(
                "{} ID must be a non-negative int, got {}",
                kind.word(),
                text_of(obj, true)?
            )));
        }
        Ok(id)
    }
}

/// Where the `O&` converter for an ID argument writes (it needs the module state to know our
/// ID types). 3.11 converts IDs while parsing (`O&`), so an invalid ID is the first error
/// reported, before a missing or unknown argument further on; we do the same.
#[repr(C)]
pub struct IdSlot {
    state: *const ModState,
    kind: IdKind,
    /// The converted id, once parsing succeeded.
    pub id: i64,
}

impl IdSlot {
    /// A slot for converting one ID of `kind` with `state`'s types.
    pub fn new(state: &ModState, kind: IdKind) -> IdSlot {
        IdSlot { state, kind, id: 0 }
    }

    /// The two varargs an `O&` unit takes: the converter and this slot.
    pub fn unit(&mut self) -> [*mut std::ffi::c_void; 2] {
        [
            id_converter as *mut std::ffi::c_void,
            (self as *mut IdSlot).cast(),
        ]
    }
}

/// The `O&` converter behind [`IdSlot`].
unsafe extern "C" fn id_converter(
    obj: *mut ffi::PyObject,
    slot: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // SAFETY: CPython calls this during our own parse with the GIL held and `slot` the IdSlot
    // we passed; its state outlives the parse.
    unsafe {
        let slot = &mut *slot.cast::<IdSlot>();
        let state = &*slot.state;
        match id_arg(obj, slot.kind, state) {
            Ok(id) => {
                slot.id = id;
                1
            }
            Err(err) => {
                err.restore(Some(state));
                0
            }
        }
    }
}
