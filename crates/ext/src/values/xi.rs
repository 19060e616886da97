//! The values of the PEP 734 layer (`subinterpreters.interpreters`): CPython 3.14's set of
//! natively shareable objects (None, bool, int of any size, float, str, bytes, tuples of these,
//! queues) as core [`Value`]s, and pickle (protocol 5) for everything else.
//!
//! The 3.11 API (`run_string`, channels) keeps its own, narrower conversion in `convert.rs`.

use pyo3_ffi as ffi;
use subinterpreters_core::queue::QueueRef;
use subinterpreters_core::{Payload, Value};

use crate::error::{Error, Result};
use crate::module::ModState;
use crate::py::pyref::PyRef;
use crate::values::convert;

/// Tuples nested deeper than this are pickled rather than converted (bounds the recursion).
const MAX_DEPTH: usize = 64;

/// Converts `obj` natively if its type allows; `Ok(None)` if it is not natively shareable.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
unsafe fn native(obj: *mut ffi::PyObject, state: &ModState, depth: usize) -> Result<Option<Value>> {
    // SAFETY: (whole body) GIL held; each branch reads `obj` as the exact type it checked.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        if obj == ffi::Py_None() {
            return Ok(Some(Value::None));
        }
        if tp == &raw mut ffi::PyBool_Type {
            return Ok(Some(Value::Bool(obj == ffi::Py_True())));
        }
        if tp == &raw mut ffi::PyLong_Type {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
            if overflow == 0 {
                if v == -1 && !ffi::PyErr_Occurred().is_null() {
                    return Err(Error::Raised);
                }
                return Ok(Some(Value::Int(v)));
            }
            return big_int(obj).map(Some);
        }
        if tp == &raw mut ffi::PyFloat_Type {
            return Ok(Some(Value::Float(ffi::PyFloat_AS_DOUBLE(obj))));
        }
        if tp == &raw mut ffi::PyUnicode_Type || tp == &raw mut ffi::PyBytes_Type {
            return convert::to_value(obj, state).map(Some);
        }
        if tp == &raw mut ffi::PyTuple_Type {
            if depth >= MAX_DEPTH {
                return Ok(None);
            }
            let n = ffi::PyTuple_GET_SIZE(obj);
            let mut items = Vec::with_capacity(n.max(0) as usize);
            for i in 0..n {
                match native(ffi::PyTuple_GET_ITEM(obj, i), state, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            return Ok(Some(Value::Tuple(items)));
        }
        let queue_type = state.xi.queue_type.get();
        if !queue_type.is_null() && ffi::PyObject_TypeCheck(obj, queue_type.cast()) != 0 {
            let id = PyRef::from_owned(ffi::PyObject_GetAttrString(obj, c"id".as_ptr()))?;
            let id = ffi::PyLong_AsLongLong(id.as_ptr());
            if id == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(Error::Raised);
            }
            let handle = QueueRef::open(id).map_err(Error::Queue)?;
            return Ok(Some(Value::Queue(handle)));
        }
        Ok(None)
    }
}

/// An int beyond 64 bits, as little-endian two's-complement bytes (`int.to_bytes`).
///
/// # Safety
/// GIL held; `obj` an exact int.
unsafe fn big_int(obj: *mut ffi::PyObject) -> Result<Value> {
    // SAFETY: GIL held; new references owned by PyRef.
    unsafe {
        let bits = PyRef::from_owned(ffi::PyObject_CallMethod(
            obj,
            c"bit_length".as_ptr(),
            std::ptr::null(),
        ))?;
        let nbits = ffi::PyLong_AsSsize_t(bits.as_ptr());
        if nbits < 0 {
            return Err(Error::Raised);
        }
        let length = PyRef::from_owned(ffi::PyLong_FromSsize_t(nbits / 8 + 1))?;
        let method = PyRef::from_owned(ffi::PyObject_GetAttrString(obj, c"to_bytes".as_ptr()))?;
        let args = PyRef::from_owned(ffi::PyTuple_New(0))?;
        let kwargs = PyRef::from_owned(ffi::PyDict_New())?;
        let little = PyRef::from_owned(ffi::PyUnicode_FromString(c"little".as_ptr()))?;
        if ffi::PyDict_SetItemString(kwargs.as_ptr(), c"length".as_ptr(), length.as_ptr()) < 0
            || ffi::PyDict_SetItemString(kwargs.as_ptr(), c"byteorder".as_ptr(), little.as_ptr())
                < 0
            || ffi::PyDict_SetItemString(kwargs.as_ptr(), c"signed".as_ptr(), ffi::Py_True()) < 0
        {
            return Err(Error::Raised);
        }
        let data = PyRef::from_owned(ffi::PyObject_Call(
            method.as_ptr(),
            args.as_ptr(),
            kwargs.as_ptr(),
        ))?;
        let mut ptr: *mut std::ffi::c_char = std::ptr::null_mut();
        let mut len: ffi::Py_ssize_t = 0;
        if ffi::PyBytes_AsStringAndSize(data.as_ptr(), &mut ptr, &mut len) < 0 {
            return Err(Error::Raised);
        }
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize);
        Ok(Value::BigInt(Payload::copy_from(bytes)))
    }
}

/// Converts `obj` for a queue or a call: natively when it can, else (with `pickle_others`) by
/// `pickle.dumps(obj, protocol=5)`. Not shareable: `NotShareableError`, chained to the pickling
/// error when there was one.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub(crate) unsafe fn to_xi(
    obj: *mut ffi::PyObject,
    state: &ModState,
    pickle_others: bool,
) -> Result<Value> {
    // SAFETY: GIL held (contract).
    unsafe {
        if let Some(v) = native(obj, state, 0)? {
            return Ok(v);
        }
        if !pickle_others {
            return Err(not_shareable(obj));
        }
        match pickle(c"dumps", obj, true) {
            Ok(data) => match convert::to_value(data.as_ptr(), state)? {
                Value::Bytes(data) => Ok(Value::Pickled {
                    data,
                    buffers: Vec::new(),
                }),
                _ => Err(Error::System("pickle.dumps did not return bytes".into())),
            },
            Err(Error::Raised) => {
                let cause = crate::py::version::fetch_exception();
                let err = not_shareable(obj);
                err.restore(Some(state));
                if let Some(cause) = cause.and_then(|c| c.value) {
                    if let Some(exc) = crate::py::version::fetch_exception() {
                        if let Some(v) = &exc.value {
                            ffi::PyException_SetCause(v.as_ptr(), cause.into_ptr());
                        }
                        crate::py::version::restore_exception(exc);
                    }
                }
                Err(Error::Raised)
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether `obj` is natively shareable (3.14's `is_shareable`).
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub(crate) unsafe fn is_shareable(obj: *mut ffi::PyObject, state: &ModState) -> Result<bool> {
    // SAFETY: GIL held (contract); a failed probe (a queue that is gone) answers no.
    unsafe {
        match native(obj, state, 0) {
            Ok(v) => Ok(v.is_some()),
            Err(Error::Queue(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// `NotShareableError("<type> does not support cross-interpreter data")`.
///
/// # Safety
/// GIL held.
unsafe fn not_shareable(obj: *mut ffi::PyObject) -> Error {
    // SAFETY: GIL held (contract).
    let name = unsafe { convert::type_name(obj) };
    Error::NotShareable(format!("{name} does not support cross-interpreter data"))
}

/// `pickle.<func>(arg)`, protocol 5 for `dumps`.
///
/// # Safety
/// GIL held.
unsafe fn pickle(func: &std::ffi::CStr, arg: *mut ffi::PyObject, dumps: bool) -> Result<PyRef> {
    // SAFETY: GIL held; new references owned by PyRef.
    unsafe {
        let module = PyRef::from_owned(ffi::PyImport_ImportModule(c"pickle".as_ptr()))?;
        let f = PyRef::from_owned(ffi::PyObject_GetAttrString(module.as_ptr(), func.as_ptr()))?;
        if dumps {
            let proto = PyRef::from_owned(ffi::PyLong_FromLong(5))?;
            let args = [arg, proto.as_ptr()];
            PyRef::from_owned(ffi::PyObject_Vectorcall(
                f.as_ptr(),
                args.as_ptr(),
                2,
                std::ptr::null_mut(),
            ))
        } else {
            PyRef::from_owned(ffi::PyObject_CallOneArg(f.as_ptr(), arg))
        }
    }
}

/// Builds a fresh object in the current interpreter from a PEP 734 value.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub(crate) unsafe fn from_xi(value: Value, state: &ModState) -> Result<PyRef> {
    // SAFETY: (whole body) GIL held; new references owned by PyRef.
    unsafe {
        match value {
            Value::Bool(b) => Ok(PyRef::from_borrowed(if b {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            })),
            Value::Float(f) => PyRef::from_owned(ffi::PyFloat_FromDouble(f)),
            Value::BigInt(data) => {
                let negative = data.last().is_some_and(|b| b & 0x80 != 0);
                let nbits = data.len() * 8;
                let bytes = convert::from_value(Value::Bytes(data), None)?;
                let int_type = (&raw mut ffi::PyLong_Type).cast::<ffi::PyObject>();
                let unsigned = PyRef::from_owned(ffi::PyObject_CallMethod(
                    int_type,
                    c"from_bytes".as_ptr(),
                    c"Os".as_ptr(),
                    bytes.as_ptr(),
                    c"little".as_ptr(),
                ))?;
                if !negative {
                    return Ok(unsigned);
                }
                // Two's complement: the unsigned reading minus 2**nbits.
                let one = PyRef::from_owned(ffi::PyLong_FromLong(1))?;
                let shift = PyRef::from_owned(ffi::PyLong_FromSize_t(nbits))?;
                let modulus =
                    PyRef::from_owned(ffi::PyNumber_Lshift(one.as_ptr(), shift.as_ptr()))?;
                PyRef::from_owned(ffi::PyNumber_Subtract(unsigned.as_ptr(), modulus.as_ptr()))
            }
            Value::Tuple(items) => {
                let tuple = PyRef::from_owned(ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
                for (i, item) in items.into_iter().enumerate() {
                    let obj = from_xi(item, state)?;
                    ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, obj.into_ptr());
                }
                Ok(tuple)
            }
            Value::Queue(handle) => {
                let queue_type = state.xi.queue_type.get();
                if queue_type.is_null() {
                    return Err(Error::Runtime(
                        "subinterpreters.interpreters is not imported in this interpreter".into(),
                    ));
                }
                // The Queue object binds its own count; `handle` is released after.
                let id = PyRef::from_owned(ffi::PyLong_FromLongLong(handle.id()))?;
                let obj = PyRef::from_owned(ffi::PyObject_CallOneArg(queue_type, id.as_ptr()));
                drop(handle);
                obj
            }
            Value::Pickled { data, .. } => {
                let bytes = convert::from_value(Value::Bytes(data), None)?;
                pickle(c"loads", bytes.as_ptr(), false)
            }
            other => convert::from_value(other, Some(state)),
        }
    }
}
