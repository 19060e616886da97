//! 3.11's shareable values (docs/values.md) between Python objects and the core's owned
//! [`Value`]s: what channels and `run_string`'s `shared` carry.

use std::ffi::c_char;

use pyo3_ffi as ffi;
use subinterpreters_core::{Payload, Value};

use crate::error::{Error, Result};
use crate::py::pyref::PyRef;
use crate::py::text::{bytes_slice, text_of};
use crate::state::ModState;
use crate::values::codec::str_units;

/// Whether `obj`'s exact type can cross interpreters (3.11's set: bytes, str, int, None,
/// ChannelID; subclasses cannot).
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn is_shareable(obj: *mut ffi::PyObject, state: &ModState) -> bool {
    // SAFETY: GIL held; comparing type pointers only.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        tp == &raw mut ffi::PyBytes_Type
            || tp == &raw mut ffi::PyUnicode_Type
            || tp == &raw mut ffi::PyLong_Type
            || obj == ffi::Py_None()
            || (!state.channel_id_type.is_null()
                && tp.cast::<ffi::PyObject>() == state.channel_id_type)
    }
}

/// Copies a shareable object into an owned [`Value`] (one copy of the payload).
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn to_value(obj: *mut ffi::PyObject, state: &ModState) -> Result<Value> {
    // SAFETY: (whole body) GIL held; each branch reads `obj` only as the type it just checked.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        if tp == &raw mut ffi::PyBytes_Type {
            return Ok(Value::Bytes(Payload::copy_from(bytes_slice(obj))));
        }
        if tp == &raw mut ffi::PyUnicode_Type {
            return Ok(copy_str(obj));
        }
        if tp == &raw mut ffi::PyLong_Type {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
            if overflow != 0 {
                return Err(Error::Overflow("try sending as bytes".into()));
            }
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(Error::Raised);
            }
            return Ok(Value::Int(v));
        }
        if obj == ffi::Py_None() {
            return Ok(Value::None);
        }
        if !state.channel_id_type.is_null() && tp.cast::<ffi::PyObject>() == state.channel_id_type {
            return crate::values::channel::channel_value(obj);
        }
        Err(Error::Value(format!(
            "{} does not support cross-interpreter data",
            text_of(obj, false)?
        )))
    }
}

/// A copy of a `str`'s code units, in its own storage width.
///
/// # Safety
/// GIL held; `obj` an exact `str`.
pub unsafe fn copy_str(obj: *mut ffi::PyObject) -> Value {
    // SAFETY: GIL held, `obj` an exact str (contract), alive while its units are copied.
    let (kind, data) = unsafe { str_units(obj) };
    Value::Str {
        kind,
        data: Payload::copy_from(data),
    }
}

/// `bytes` objects at least this long are borrowed by `channel_send` instead of copied. Measured
/// on 3.12 (a send+recv pair in one interpreter, copying / borrowing): 4 KiB 240 / 215 ns,
/// 8 KiB 270-400 / 230 ns, 16 KiB 470-640 / 270 ns, 64 KiB 4.1 / 1.8 us. From 8 KiB on the saved
/// copy clearly outweighs the borrow's bookkeeping (an `Arc`, the owner table, a release).
pub const BORROW_MIN_BYTES: usize = 8 * 1024;

/// [`to_value`] for `channel_send`: an exact `bytes` of at least [`BORROW_MIN_BYTES`] is
/// borrowed (the receiver copies it, once) rather than copied here.
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn to_channel_value(obj: *mut ffi::PyObject, state: &ModState) -> Result<Value> {
    // SAFETY: (whole body) GIL held; `obj` is read as bytes only after its type is checked.
    unsafe {
        if ffi::Py_TYPE(obj) == &raw mut ffi::PyBytes_Type
            && ffi::PyBytes_Size(obj) as usize >= BORROW_MIN_BYTES
        {
            match crate::values::shared::borrow_bytes(obj) {
                Ok(Some(buf)) => return Ok(Value::BorrowedBytes(buf)),
                // The interpreter is exiting: copy, as below.
                Ok(None) => {}
                // Borrowing is only a shortcut: if the exit hook cannot be registered (no
                // `atexit` module?), copy as 3.11 would have succeeded to.
                Err(err) => {
                    if matches!(err, Error::Raised) {
                        ffi::PyErr_Clear();
                    }
                }
            }
        }
        to_value(obj, state)
    }
}

/// A `str` of at least [`BORROW_MIN_BYTES`] of code units, borrowed (see
/// [`crate::values::shared::borrow_str`]); `Ok(None)` for a smaller one, or when it cannot be
/// borrowed (the caller copies it).
///
/// # Safety
/// `obj` must be an exact `str`; GIL held.
pub unsafe fn borrow_str(obj: *mut ffi::PyObject) -> Result<Option<Value>> {
    // SAFETY: (whole body) GIL held; `obj` is an exact str (contract).
    unsafe {
        let (kind, units) = str_units(obj);
        if units.len() < BORROW_MIN_BYTES {
            return Ok(None);
        }
        match crate::values::shared::borrow_str(obj, kind.width()) {
            Ok(Some(buf)) => Ok(Some(Value::BorrowedStr { kind, buf })),
            Ok(None) => Ok(None),
            // Borrowing is only a shortcut, as for bytes: copy instead.
            Err(err) => {
                if matches!(err, Error::Raised) {
                    ffi::PyErr_Clear();
                }
                Ok(None)
            }
        }
    }
}

/// Builds a fresh object in the current interpreter from a value.
///
/// # Safety
/// GIL held; `state` must belong to the current interpreter (or be `None` when no channel
/// value can occur).
pub unsafe fn from_value(value: Value, state: Option<&ModState>) -> Result<PyRef> {
    // SAFETY: (whole body) GIL held; lengths come from the owned buffers they describe.
    unsafe {
        let ptr = match value {
            Value::None => ffi::Py_NewRef(ffi::Py_None()),
            Value::Int(v) => ffi::PyLong_FromLongLong(v),
            Value::Bytes(b) => ffi::PyBytes_FromStringAndSize(
                b.as_ptr().cast::<c_char>(),
                b.len() as ffi::Py_ssize_t,
            ),
            // The one copy of a borrowed payload; the borrow is released (or parked for its
            // owner) when `buf` goes at the end of this arm.
            Value::BorrowedBytes(buf) => {
                let Some(borrowed) = buf
                    .buffer()
                    .as_any()
                    .downcast_ref::<crate::values::shared::Borrowed>()
                else {
                    return Err(Error::System("borrowed bytes of an unknown kind".into()));
                };
                let bytes = borrowed.bytes();
                ffi::PyBytes_FromStringAndSize(
                    bytes.as_ptr().cast::<c_char>(),
                    bytes.len() as ffi::Py_ssize_t,
                )
            }
            // The one copy of a borrowed `str`, as for bytes above.
            Value::BorrowedStr { kind, buf } => {
                let Some(borrowed) = buf
                    .buffer()
                    .as_any()
                    .downcast_ref::<crate::values::shared::Borrowed>()
                else {
                    return Err(Error::System("borrowed str of an unknown kind".into()));
                };
                let units = borrowed.bytes();
                ffi::PyUnicode_FromKindAndData(
                    kind as i32,
                    units.as_ptr().cast(),
                    (units.len() / kind.width()) as ffi::Py_ssize_t,
                )
            }
            Value::Str { kind, data } => ffi::PyUnicode_FromKindAndData(
                kind as i32,
                data.as_ptr().cast(),
                (data.len() / kind.width()) as ffi::Py_ssize_t,
            ),
            Value::Channel(handle) => return crate::values::channel::channel_object(handle, state),
            // Not made by this module's conversions (queue values are not bound yet).
            other => {
                return Err(Error::System(format!(
                    "unsupported value {:?}",
                    other.summary()
                )))
            }
        };
        PyRef::from_owned(ptr)
    }
}
