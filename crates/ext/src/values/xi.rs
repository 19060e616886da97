//! The values of the PEP 734 layer (`subinterpreters.interpreters`): CPython 3.14's set of
//! natively shareable objects (None, bool, int of any size, float, str, bytes, tuples of these,
//! queues, memoryviews) as core [`Value`]s, and pickle (protocol 5, out-of-band buffers shared
//! or copied) for everything else. A `memoryview` and out-of-band pickle buffers cross without a
//! copy (see `shared.rs`).
//!
//! The 3.11 API (`run_string`, channels) keeps its own, narrower conversion in `convert.rs`.

use pyo3_ffi as ffi;
use subinterpreters_core::queue::QueueRef;
use subinterpreters_core::{OutOfBand, Payload, Value};

use crate::error::{Error, Result};
use crate::py::pyref::PyRef;
use crate::state::ModState;
use crate::values::{codec, convert, shared};

/// Tuples nested deeper than this are pickled rather than converted (bounds the recursion).
const MAX_DEPTH: usize = 64;

/// Loads the PEP 734 layer's queue module in this interpreter if its classes are not registered
/// yet (it registers them as it loads): the layer loads it on first use only, so that a fresh
/// interpreter's first call does without it, yet a `Queue` value or a queue error may reach an
/// interpreter before that.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub(crate) unsafe fn ensure_registered(state: &ModState) -> Result<()> {
    // SAFETY: GIL held and `state` the current interpreter's (contract).
    if unsafe { state.ensure_queue_classes() } {
        Ok(())
    } else {
        Err(Error::Raised)
    }
}

/// `obj` as a value if it is an exact None, bool, float, or int within 64 bits (the scalars
/// that need no storage of their own); `None` for anything else, a larger int included.
///
/// # Safety
/// GIL held; `obj` live.
unsafe fn fixed_scalar(obj: *mut ffi::PyObject) -> Result<Option<Value>> {
    // SAFETY: GIL held (contract); each branch reads `obj` as the exact type it checked.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        Ok(Some(if obj == ffi::Py_None() {
            Value::None
        } else if tp == &raw mut ffi::PyBool_Type {
            Value::Bool(obj == ffi::Py_True())
        } else if tp == &raw mut ffi::PyLong_Type {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
            if overflow != 0 {
                return Ok(None);
            }
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(Error::Raised);
            }
            Value::Int(v)
        } else if tp == &raw mut ffi::PyFloat_Type {
            Value::Float(ffi::PyFloat_AS_DOUBLE(obj))
        } else {
            return Ok(None);
        }))
    }
}

/// Converts `obj` natively if its type allows; `Ok(None)` if it is not natively shareable. With
/// `probe` nothing is exported (a `memoryview` gives a placeholder): only the answer counts.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
unsafe fn native(
    obj: *mut ffi::PyObject,
    state: &ModState,
    depth: usize,
    probe: bool,
) -> Result<Option<Value>> {
    // SAFETY: (whole body) GIL held; each branch reads `obj` as the exact type it checked.
    unsafe {
        if let Some(v) = fixed_scalar(obj)? {
            return Ok(Some(v));
        }
        let tp = ffi::Py_TYPE(obj);
        if tp == &raw mut ffi::PyLong_Type {
            return big_int(obj).map(Some); // beyond 64 bits: `fixed_scalar` left it
        }
        if tp == &raw mut ffi::PyBytes_Type && !probe {
            // A large `bytes` is borrowed (the getter copies it, once), as channels do; the
            // item can never outlive its owner's exit, which unbinds its items.
            return convert::to_channel_value(obj, state).map(Some);
        }
        if tp == &raw mut ffi::PyUnicode_Type && !probe {
            // A large `str` is borrowed too (the getter copies its code units, once).
            if let Some(value) = convert::borrow_str(obj)? {
                return Ok(Some(value));
            }
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
                match native(ffi::PyTuple_GET_ITEM(obj, i), state, depth + 1, probe)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            return Ok(Some(Value::Tuple(items)));
        }
        if tp == &raw mut ffi::PyMemoryView_Type {
            if probe {
                return Ok(Some(Value::None));
            }
            // Not one contiguous block: not shareable (pickle refuses memoryviews too).
            return Ok(shared::export(obj)?.map(Value::Shared));
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
pub(crate) unsafe fn big_int(obj: *mut ffi::PyObject) -> Result<Value> {
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
        if let Some(v) = native(obj, state, 0, false)? {
            return Ok(v);
        }
        if !pickle_others {
            return Err(not_shareable(obj));
        }
        // Ordinary data crosses in the native format; everything else by pickle.
        if let Some(data) = codec::encode(obj, false)? {
            return Ok(Value::Native(Payload::from_vec(data)));
        }
        match dumps(obj, state) {
            Ok((data, raw)) => {
                let Value::Bytes(data) = convert::to_value(data.as_ptr(), state)? else {
                    return Err(Error::System("pickle.dumps did not return bytes".into()));
                };
                let mut buffers = Vec::with_capacity(raw.len());
                for pb in raw {
                    buffers.push(out_of_band(pb.as_ptr())?);
                }
                Ok(Value::Pickled { data, buffers })
            }
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
        match native(obj, state, 0, true) {
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
    let name = unsafe { crate::py::text::type_name(obj) };
    Error::NotShareable(format!("{name} does not support cross-interpreter data"))
}

/// `pickle.dumps(*args)` (`loads`: `pickle.loads`), or with `keyword`,
/// `pickle.<func>(*args[..-1], <keyword>=args[-1])`
/// (`dumps(obj, 5, buffer_callback=...)`, `loads(data, buffers=...)`).
///
/// # Safety
/// GIL held.
unsafe fn pickle_call(
    state: &ModState,
    loads: bool,
    args: &[*mut ffi::PyObject],
    keyword: Option<&std::ffi::CStr>,
) -> Result<PyRef> {
    // SAFETY: GIL held; new references owned by PyRef; with a keyword, the last item of `args`
    // is the value of the one keyword named in `kwnames`.
    unsafe {
        let f = codec::pickle_func(state, loads)?;
        let Some(keyword) = keyword else {
            return PyRef::from_owned(ffi::PyObject_Vectorcall(
                f,
                args.as_ptr(),
                args.len(),
                std::ptr::null_mut(),
            ));
        };
        let name = PyRef::from_owned(ffi::PyUnicode_FromString(keyword.as_ptr()))?;
        let kwnames = PyRef::from_owned(ffi::PyTuple_New(1))?;
        ffi::PyTuple_SET_ITEM(kwnames.as_ptr(), 0, name.into_ptr());
        PyRef::from_owned(ffi::PyObject_Vectorcall(
            f,
            args.as_ptr(),
            args.len() - 1,
            kwnames.as_ptr(),
        ))
    }
}

/// `pickle.dumps(obj, 5, buffer_callback=list.append)`: the stream and the `PickleBuffer`s it
/// left out of band (none where the version cannot take them back, see `version.rs`).
///
/// # Safety
/// GIL held.
unsafe fn dumps(obj: *mut ffi::PyObject, state: &ModState) -> Result<(PyRef, Vec<PyRef>)> {
    // SAFETY: GIL held; new references owned by PyRef; list items are borrowed while the list
    // lives and taken as new references.
    unsafe {
        let proto = PyRef::from_owned(ffi::PyLong_FromLong(5))?;
        if !crate::py::version::PICKLE_OUT_OF_BAND {
            let data = pickle_call(state, false, &[obj, proto.as_ptr()], None)?;
            return Ok((data, Vec::new()));
        }
        let list = PyRef::from_owned(ffi::PyList_New(0))?;
        let append = PyRef::from_owned(ffi::PyObject_GetAttrString(
            list.as_ptr(),
            c"append".as_ptr(),
        ))?;
        let data = pickle_call(
            state,
            false,
            &[obj, proto.as_ptr(), append.as_ptr()],
            Some(c"buffer_callback"),
        )?;
        let n = ffi::PyList_GET_SIZE(list.as_ptr());
        let buffers = (0..n)
            .map(|i| PyRef::from_borrowed(ffi::PyList_GET_ITEM(list.as_ptr(), i)))
            .collect();
        Ok((data, buffers))
    }
}

/// One out-of-band `PickleBuffer`: shared if its memory is one C-contiguous block, else (a
/// Fortran-ordered one) copied.
///
/// # Safety
/// GIL held.
unsafe fn out_of_band(pb: *mut ffi::PyObject) -> Result<OutOfBand> {
    // SAFETY: GIL held; `view` is filled by a successful PyObject_GetBuffer and released below.
    unsafe {
        if let Some(buf) = shared::export(pb)? {
            return Ok(OutOfBand::Shared(buf));
        }
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed().assume_init();
        if ffi::PyObject_GetBuffer(pb, &mut view, ffi::PyBUF_FULL_RO) < 0 {
            return Err(Error::Raised);
        }
        // Pickle hands out only C- or Fortran-contiguous buffers; keep the memory order (what
        // `PickleBuffer.raw()` gives), so a Fortran-ordered one is copied as it lies.
        let order = if ffi::PyBuffer_IsContiguous(&view, b'F' as _) != 0 {
            b'F'
        } else {
            b'C'
        };
        let mut data = vec![0u8; view.len.max(0) as usize];
        let rc = ffi::PyBuffer_ToContiguous(data.as_mut_ptr().cast(), &view, view.len, order as _);
        ffi::PyBuffer_Release(&mut view);
        if rc < 0 {
            return Err(Error::Raised);
        }
        Ok(OutOfBand::Copied(Payload::from_vec(data)))
    }
}

/// This interpreter's `SharedView` type.
fn view_type(state: &ModState) -> Result<*mut ffi::PyObject> {
    let tp = state.shared_view_type;
    if tp.is_null() {
        return Err(Error::System("SharedView type missing".into()));
    }
    Ok(tp)
}

/// The int whose little-endian two's-complement bytes `data` holds.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn int_from_le_bytes(data: Payload) -> Result<PyRef> {
    // SAFETY: GIL held; new references owned by PyRef.
    unsafe {
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
        let modulus = PyRef::from_owned(ffi::PyNumber_Lshift(one.as_ptr(), shift.as_ptr()))?;
        PyRef::from_owned(ffi::PyNumber_Subtract(unsigned.as_ptr(), modulus.as_ptr()))
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
            scalar @ (Value::Bool(_) | Value::Float(_) | Value::BigInt(_)) => from_scalar(scalar),
            Value::Tuple(items) => {
                let tuple = PyRef::from_owned(ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
                for (i, item) in items.into_iter().enumerate() {
                    let obj = from_xi(item, state)?;
                    ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, obj.into_ptr());
                }
                Ok(tuple)
            }
            Value::Queue(handle) => {
                ensure_registered(state)?;
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
            Value::Pickled { data, buffers } => {
                let bytes = convert::from_value(Value::Bytes(data), None)?;
                if buffers.is_empty() {
                    // No `buffers=` at all: not needed, and fatal on 3.12 (see `version.rs`).
                    return pickle_call(state, true, &[bytes.as_ptr()], None);
                }
                let list = PyRef::from_owned(ffi::PyList_New(0))?;
                for buf in buffers {
                    let obj = match buf {
                        OutOfBand::Copied(p) => convert::from_value(Value::Bytes(p), None)?,
                        OutOfBand::Shared(s) => shared::view_of(s, view_type(state)?)?,
                    };
                    if ffi::PyList_Append(list.as_ptr(), obj.as_ptr()) < 0 {
                        return Err(Error::Raised);
                    }
                }
                pickle_call(
                    state,
                    true,
                    &[bytes.as_ptr(), list.as_ptr()],
                    Some(c"buffers"),
                )
            }
            Value::Native(data) => codec::decode(&data),
            Value::Shared(s) => shared::view_of(s, view_type(state)?),
            other => convert::from_value(other, Some(state)),
        }
    }
}

/// Whether `value` is a scalar (None, bool, int, float, str or bytes, as `to_xi` makes them):
/// one that [`from_scalar`] builds with no module state, so in an interpreter that has not
/// imported this module.
pub(crate) fn is_scalar(value: &Value) -> bool {
    matches!(
        value,
        Value::None
            | Value::Bool(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::Float(_)
            | Value::Str { .. }
            | Value::Bytes(_)
            | Value::BorrowedStr { .. }
            | Value::BorrowedBytes(_)
    )
}

/// Builds a scalar (see [`is_scalar`]) in the current interpreter.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn from_scalar(value: Value) -> Result<PyRef> {
    // SAFETY: GIL held (contract); new references owned by PyRef.
    unsafe {
        match value {
            Value::Bool(b) => Ok(PyRef::from_borrowed(if b {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            })),
            Value::Float(f) => PyRef::from_owned(ffi::PyFloat_FromDouble(f)),
            Value::BigInt(data) => int_from_le_bytes(data),
            other if is_scalar(&other) => convert::from_value(other, None),
            other => Err(Error::System(format!(
                "not a scalar: {:?}",
                other.summary()
            ))),
        }
    }
}

/// `obj` copied into a value if it is a scalar that a call's result crosses as without pickle
/// (an exact None, bool, float, str, bytes, or int within 64 bits: the protocol's "native"
/// rule); `None` for anything else. Nothing is borrowed: the value may outlive `obj`'s
/// interpreter.
///
/// # Safety
/// GIL held; `obj` live.
pub(crate) unsafe fn copy_scalar(obj: *mut ffi::PyObject) -> Result<Option<Value>> {
    // SAFETY: GIL held (contract); each branch reads `obj` as the exact type it checked.
    unsafe {
        if let Some(v) = fixed_scalar(obj)? {
            return Ok(Some(v));
        }
        let tp = ffi::Py_TYPE(obj);
        Ok(Some(if tp == &raw mut ffi::PyUnicode_Type {
            convert::copy_str(obj)
        } else if tp == &raw mut ffi::PyBytes_Type {
            Value::Bytes(Payload::copy_from(crate::py::text::bytes_slice(obj)))
        } else {
            return Ok(None);
        }))
    }
}
