//! `_QueueBase`, the Rust half of `subinterpreters.interpreters.Queue`: each instance owns a
//! counted [`QueueRef`] (its binding on the queue), so `put`, `get` and the size checks reach the
//! queue without a registry lookup and run without a Python frame. The Python subclass adds
//! one-object-per-id, pickling, `repr` and the async methods.

use std::ffi::c_void;

use pyo3_ffi as ffi;
use subinterpreters_core::queue::{QueueRef, UnboundOp, Wait};

use crate::error::{Error, Result};
use crate::py::args::int_arg;
use crate::py::args::Signature;
use crate::py::capi::type_slot;
use crate::py::heap_type::{HeapType, GETSET_END};
use crate::py::pyref::PyRef;
use crate::py::trampoline::{guard_obj, method_entry};
use crate::queues::api::{get, put, wait_arg};
use crate::state::{state_of_type, ModState};

/// The instance layout.
#[repr(C)]
struct QueueObject {
    ob_base: ffi::PyObject,
    /// Written by `tp_new` right after allocation, before the object is seen by anyone, and
    /// taken by `tp_dealloc`. `None` only while `tp_new` is failing.
    handle: Option<QueueRef>,
}

/// The handle of a `_QueueBase` instance (of any subclass).
///
/// # Safety
/// `obj` must be an instance of `_QueueBase` or a subclass, initialised by `tp_new`; GIL held.
pub(super) unsafe fn handle_of<'a>(obj: *mut ffi::PyObject) -> Result<&'a QueueRef> {
    // SAFETY: the layout begins with ours (contract), and `handle` was written by tp_new.
    unsafe { (*obj.cast::<QueueObject>()).handle.as_ref() }
        .ok_or_else(|| Error::System("queue object without a handle".into()))
}

unsafe extern "C" fn tp_new(
    tp: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by CPython with the GIL held; `tp` is `_QueueBase` or a subclass, whose
    // instances begin with our layout.
    unsafe {
        let state = state_of_type(tp);
        guard_obj(state, || {
            let no_kw = kwds.is_null() || ffi::PyDict_Size(kwds) == 0;
            if !no_kw || ffi::PyTuple_GET_SIZE(args) != 1 {
                return Err(Error::Type(
                    "_QueueBase() takes exactly one argument (the queue ID)".into(),
                ));
            }
            let id = int_arg(ffi::PyTuple_GET_ITEM(args, 0), "queue ID")?;
            let alloc = (*tp)
                .tp_alloc
                .ok_or(Error::System("type without tp_alloc".into()))?;
            let obj = PyRef::from_owned(alloc(tp, 0))?;
            let field = &raw mut (*obj.as_ptr().cast::<QueueObject>()).handle;
            field.write(None);
            *field = Some(QueueRef::open(id).map_err(Error::Queue)?);
            Ok(obj.into_ptr())
        })
    }
}

unsafe extern "C" fn tp_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython deallocates an instance of `_QueueBase` (directly, or from a subclass's
    // dealloc, which has cleared its own slots) with the GIL held. The handle is taken out
    // first; dropping it touches only the core registry (no Python), after the memory is freed
    // with the type's tp_free and the instance's reference to its heap type is dropped.
    unsafe {
        let handle = (&raw mut (*obj.cast::<QueueObject>()).handle).read();
        let tp = ffi::Py_TYPE(obj);
        if let Some(free) = (*tp).tp_free {
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
        drop(handle);
    }
}

unsafe extern "C" fn get_id(obj: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: `obj` is our instance; GIL held.
    unsafe {
        let state = state_of_type(ffi::Py_TYPE(obj));
        guard_obj(state, || Ok(ffi::PyLong_FromLongLong(handle_of(obj)?.id())))
    }
}

/// The flag an `unbounditems` argument stands for: one of the three markers registered by
/// `subinterpreters.interpreters` (compared by identity, as 3.14's dict lookup does for them),
/// None or not given for the queue's default; anything else is `NotImplementedError`.
///
/// # Safety
/// GIL held; `obj` NULL or live.
unsafe fn unbound_of(state: &ModState, obj: *mut ffi::PyObject) -> Result<Option<UnboundOp>> {
    // SAFETY: GIL held (contract); comparing pointers, then formatting a live object.
    unsafe {
        if obj.is_null() || obj == ffi::Py_None() {
            return Ok(None);
        }
        let xi = &state.xi;
        if obj == xi.unbound.get() {
            return Ok(Some(UnboundOp::Replace));
        }
        if obj == xi.unbound_error.get() {
            return Ok(Some(UnboundOp::Error));
        }
        if obj == xi.unbound_remove.get() {
            return Ok(Some(UnboundOp::Remove));
        }
        let repr = crate::py::text::text_of(obj, true)?;
        let msg = format!("unsupported unbounditems {repr}");
        let text = PyRef::from_owned(crate::py::text::new_str(&msg))?;
        ffi::PyErr_SetObject(ffi::PyExc_NotImplementedError, text.as_ptr());
        Err(Error::Raised)
    }
}

/// What `get` returns for an item: the object, or the registered `UNBOUND` for an item whose
/// interpreter was destroyed.
///
/// # Safety
/// GIL held.
unsafe fn item_or_unbound(state: &ModState, item: Option<PyRef>) -> *mut ffi::PyObject {
    match item {
        Some(obj) => obj.into_ptr(),
        None => {
            let marker = state.xi.unbound.get();
            // SAFETY: GIL held; a new reference to a live object (None before registration).
            unsafe {
                ffi::Py_NewRef(if marker.is_null() {
                    ffi::Py_None()
                } else {
                    marker
                })
            }
        }
    }
}

static PUT: Signature = Signature {
    qualname: "Queue.put",
    names: &[c"obj", c"block", c"timeout", c"unbounditems"],
    positional: 3,
    required: 1,
};

static PUT_NOWAIT: Signature = Signature {
    qualname: "Queue.put_nowait",
    names: &[c"obj", c"unbounditems"],
    positional: 1,
    required: 1,
};

static GET: Signature = Signature {
    qualname: "Queue.get",
    names: &[c"block", c"timeout"],
    positional: 2,
    required: 0,
};

/// Signatures of the methods without arguments.
static GET_NOWAIT: Signature = no_args("Queue.get_nowait");
static QSIZE: Signature = no_args("Queue.qsize");
static EMPTY: Signature = no_args("Queue.empty");
static FULL: Signature = no_args("Queue.full");

const fn no_args(qualname: &'static str) -> Signature {
    Signature {
        qualname,
        names: &[],
        positional: 0,
        required: 0,
    }
}

method_entry!(
    /// `put(obj, block=True, timeout=None, *, unbounditems=None)`
    queue_put, |state, slf, fa| {
        let [obj, block, timeout, unbounditems] = fa.bind(&PUT)?;
        let unbound = unbound_of(state, unbounditems)?;
        let wait = wait_arg(block, timeout)?;
        put(state, handle_of(slf)?, obj, unbound, wait)?;
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

method_entry!(
    /// `put_nowait(obj, *, unbounditems=None)`
    queue_put_nowait, |state, slf, fa| {
        let [obj, unbounditems] = fa.bind(&PUT_NOWAIT)?;
        let unbound = unbound_of(state, unbounditems)?;
        put(state, handle_of(slf)?, obj, unbound, Wait::NoWait)?;
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

method_entry!(
    /// `get(block=True, timeout=None)`
    queue_get, |state, slf, fa| {
        let [block, timeout] = fa.bind(&GET)?;
        let wait = wait_arg(block, timeout)?;
        Ok(item_or_unbound(state, get(state, handle_of(slf)?, wait)?))
    }
);

method_entry!(
    /// `get_nowait()`
    queue_get_nowait, |state, slf, fa| {
        let [] = fa.bind(&GET_NOWAIT)?;
        Ok(item_or_unbound(state, get(state, handle_of(slf)?, Wait::NoWait)?))
    }
);

method_entry!(
    /// `qsize()`
    queue_qsize, |_state, slf, fa| {
        let [] = fa.bind(&QSIZE)?;
        let n = handle_of(slf)?.qsize().map_err(Error::Queue)?;
        Ok(ffi::PyLong_FromSize_t(n))
    }
);

method_entry!(
    /// `empty()`
    queue_empty, |_state, slf, fa| {
        let [] = fa.bind(&EMPTY)?;
        let empty = handle_of(slf)?.is_empty().map_err(Error::Queue)?;
        Ok(ffi::PyBool_FromLong(empty.into()))
    }
);

method_entry!(
    /// `full()`
    queue_full, |_state, slf, fa| {
        let [] = fa.bind(&FULL)?;
        let full = handle_of(slf)?.is_full().map_err(Error::Queue)?;
        Ok(ffi::PyBool_FromLong(full.into()))
    }
);

/// `PyMethodDef` for a `METH_METHOD | METH_FASTCALL | METH_KEYWORDS` method.
macro_rules! method {
    ($name:literal, $func:path, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCMethod: $func },
            ml_flags: ffi::METH_METHOD | ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

static mut METHODS: [ffi::PyMethodDef; 8] = [
    method!(c"put", queue_put, c"put($self, /, obj, block=True, timeout=None, *, unbounditems=None)\n--\n\nAdd ``obj`` at the end of the queue.\n\nWith room it returns at once. Full and ``block`` true: wait until there is room, at\nmost ``timeout`` seconds (a float; None waits as long as it takes), then raise\n:class:`QueueFull`. ``block`` false: raise :class:`QueueFull` at once.\n``unbounditems`` overrides the queue's rule for this item."),
    method!(c"put_nowait", queue_put_nowait, c"put_nowait($self, /, obj, *, unbounditems=None)\n--\n\n``put(obj, block=False)``."),
    method!(c"get", queue_get, c"get($self, /, block=True, timeout=None)\n--\n\nRemove and return the oldest item.\n\nEmpty and ``block`` true: wait for an item, at most ``timeout`` seconds (a float; None\nwaits as long as it takes), then raise :class:`QueueEmpty`. ``block`` false: raise\n:class:`QueueEmpty` at once. An item whose interpreter was destroyed gives ``UNBOUND``\nor raises :class:`ItemInterpreterDestroyed`, as its rule says."),
    method!(c"get_nowait", queue_get_nowait, c"get_nowait($self, /)\n--\n\n``get(block=False)``."),
    method!(c"qsize", queue_qsize, c"qsize($self, /)\n--\n\nHow many items are queued now."),
    method!(c"empty", queue_empty, c"empty($self, /)\n--\n\nWhether nothing is queued now."),
    method!(c"full", queue_full, c"full($self, /)\n--\n\nWhether the queue is bounded and holds ``maxsize`` items now."),
    ffi::PyMethodDef::zeroed(),
];

static mut GETSET: [ffi::PyGetSetDef; 3] = [
    ffi::PyGetSetDef {
        name: c"id".as_ptr(),
        get: Some(get_id),
        set: None,
        doc: c"The queue's id, the same in every interpreter.".as_ptr(),
        closure: std::ptr::null_mut(),
    },
    // The name the Python side's IdHandle (repr, hash, pickling) reads.
    ffi::PyGetSetDef {
        name: c"_id".as_ptr(),
        get: Some(get_id),
        set: None,
        doc: std::ptr::null(),
        closure: std::ptr::null_mut(),
    },
    GETSET_END,
];

/// The `_QueueBase` type: subclassed by the Python `Queue`, which adds `__weakref__`. Not GC:
/// an instance holds no Python object.
const TYPE: HeapType = HeapType {
    name: c"subinterpreters.lowlevel._QueueBase",
    doc: c"_QueueBase(id, /)\n--\n\nA handle on the queue `id` (private): the base of subinterpreters.interpreters.Queue.",
    basicsize: std::mem::size_of::<QueueObject>(),
    flags: ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE | ffi::Py_TPFLAGS_IMMUTABLETYPE,
};

/// Creates the heap type for one module instance.
///
/// # Safety
/// GIL held; `module` is the module being initialised.
pub unsafe fn create_type(module: *mut ffi::PyObject) -> Result<PyRef> {
    let slots = [
        type_slot(ffi::Py_tp_new, tp_new as *mut c_void),
        type_slot(ffi::Py_tp_dealloc, tp_dealloc as *mut c_void),
        // SAFETY: taking the address of a static table that CPython only reads.
        type_slot(ffi::Py_tp_methods, (&raw mut METHODS).cast()),
        // SAFETY: as above.
        type_slot(ffi::Py_tp_getset, (&raw mut GETSET).cast()),
    ];
    // SAFETY: GIL held; every slot function has its slot's signature.
    unsafe { TYPE.create(module, slots) }
}
