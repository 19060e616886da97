//! The `InterpreterID` type: an int-like handle whose live instances keep an interpreter made by
//! `create()` alive (docs/interpreters.md#counted-lifetime).

use std::ffi::{c_int, c_void};

use pyo3_ffi as ffi;

use crate::error::{Error, InterpError, Result};
use crate::id_slots::{id_richcompare, shared_slots, IdHeader};
use crate::id_slots::{IdKind, IdSlot};
use crate::interp::registry;
use crate::py::capi::type_slot;
use crate::py::heap_type::HeapType;
use crate::py::pyref::PyRef;
use crate::py::text::new_str;
use crate::py::trampoline::guard_obj;
use crate::state::{state_of_type, ModState};

/// The instance layout.
#[repr(C)]
struct InterpIdObject {
    head: IdHeader,
    /// Whether this object holds one of the interpreter's counts (only for interpreters made by
    /// our `create()` that were alive when the object was made).
    counted: bool,
}

/// The id stored in an `InterpreterID`.
///
/// # Safety
/// `obj` must be an `InterpreterID` instance.
pub unsafe fn stored_id(obj: *mut ffi::PyObject) -> i64 {
    // SAFETY: `obj` has our layout (contract).
    unsafe { crate::id_slots::header_id(obj) }
}

/// Makes a new `InterpreterID` for `id`, counting on the interpreter if it is one of ours.
///
/// # Safety
/// GIL held; `state` belongs to the current interpreter.
pub unsafe fn new(state: &ModState, id: i64) -> Result<PyRef> {
    // SAFETY: allocating an instance of our own heap type, then filling its fields.
    unsafe {
        let obj = crate::id_slots::alloc_with_id(state.interp_id_type, id)?;
        let raw = obj.as_ptr().cast::<InterpIdObject>();
        (*raw).counted = registry::incref(id);
        Ok(obj)
    }
}

unsafe extern "C" fn tp_new(
    tp: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by CPython with the GIL held and `tp` our type (or, never, a subclass: the
    // type is not subclassable).
    unsafe {
        let state = state_of_type(tp);
        guard_obj(state, || {
            let state = state.ok_or(Error::Raised)?;
            let mut slot = IdSlot::new(state, IdKind::Interpreter);
            let mut force: c_int = 0;
            let [conv, at] = slot.unit();
            if !crate::py::args::parse(
                args,
                kwds,
                c"O&|$p:InterpreterID.__init__",
                &[c"id", c"force"],
                &mut [conv, at, (&raw mut force).cast::<c_void>()],
            ) {
                return Err(Error::Raised);
            }
            let id = slot.id;
            if force == 0 && crate::interp::api::lookup(id).is_none() {
                return Err(Error::Interp(InterpError::NotFound(id)));
            }
            Ok(new(state, id)?.into_ptr())
        })
    }
}

unsafe extern "C" fn tp_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython deallocates an instance of our type with the GIL held; we free it with
    // the type's tp_free and drop the instance's reference to its heap type.
    unsafe {
        let raw = obj.cast::<InterpIdObject>();
        let (id, counted) = ((*raw).head.id, (*raw).counted);
        let tp = ffi::Py_TYPE(obj);
        if let Some(free) = (*tp).tp_free {
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
        if counted {
            if let Some(doomed) = registry::decref(id) {
                crate::interp::lifecycle::finalize_from_dealloc(doomed);
            }
        }
    }
}

unsafe extern "C" fn tp_repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe { new_str(&format!("InterpreterID({})", stored_id(obj))) }
}

unsafe extern "C" fn tp_richcompare(
    obj: *mut ffi::PyObject,
    other: *mut ffi::PyObject,
    op: c_int,
) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe {
        let same =
            (ffi::Py_TYPE(other) == ffi::Py_TYPE(obj)).then(|| stored_id(obj) == stored_id(other));
        id_richcompare(stored_id(obj), other, op, same)
    }
}

/// The `InterpreterID` type. Not subclassable: CPython 3.11 crashes deallocating subclass
/// instances (docs/interpreters.md#interpreterid-protocols).
const TYPE: HeapType = HeapType {
    name: c"subinterpreters.lowlevel.InterpreterID",
    doc: c"InterpreterID(id, *, force=False)\n--\n\nIdentifies an interpreter and may be used as an int. While any InterpreterID\nof an interpreter made by create() exists, in any interpreter, that interpreter stays alive.",
    basicsize: std::mem::size_of::<InterpIdObject>(),
    flags: ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_IMMUTABLETYPE,
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
    slots.push(type_slot(ffi::Py_tp_new, tp_new as *mut c_void));
    // SAFETY: GIL held; every slot function has its slot's signature. The new tp_name is a
    // static C string, so it outlives the type; `__module__`, `__name__` and `__qualname__`
    // were already set from the spec name and do not read tp_name.
    unsafe {
        let tp = TYPE.create(module, slots)?;
        // 3.11's type is named plain "InterpreterID" in its messages ("cannot pickle
        // 'InterpreterID' object"); keep that wording while living in our module.
        (*tp.as_ptr().cast::<ffi::PyTypeObject>()).tp_name = c"InterpreterID".as_ptr();
        Ok(tp)
    }
}
