//! Text at the boundary: Python objects as Rust text for messages (`type(obj).__name__`,
//! `str()`, `repr()`), and Rust text as new `str` objects.

use std::ffi::CStr;

use pyo3_ffi as ffi;

use crate::error::Result;
use crate::py::pyref::PyRef;

/// `type(obj).__name__` as CPython's C code prints it (`tp_name`).
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn type_name(obj: *mut ffi::PyObject) -> String {
    // SAFETY: a live object's type has a NUL-terminated tp_name.
    unsafe { CStr::from_ptr((*ffi::Py_TYPE(obj)).tp_name) }
        .to_string_lossy()
        .into_owned()
}

/// `str(obj)` or `repr(obj)` as Rust text (surrogates replaced); `Raised` if that call raised.
///
/// # Safety
/// `obj` must be a live object; GIL held.
pub unsafe fn text_of(obj: *mut ffi::PyObject, repr: bool) -> Result<String> {
    // SAFETY: GIL held; the new reference is owned by PyRef.
    let s = unsafe {
        PyRef::from_owned(if repr {
            ffi::PyObject_Repr(obj)
        } else {
            ffi::PyObject_Str(obj)
        })?
    };
    // SAFETY: `s` is a str.
    Ok(unsafe { str_lossy(s.as_ptr()) })
}

/// A `str` object's text; lone surrogates become U+FFFD.
///
/// # Safety
/// `s` must be a live `str`; GIL held.
pub unsafe fn str_lossy(s: *mut ffi::PyObject) -> String {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str (contract).
    let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(s, &mut len) };
    if p.is_null() {
        // Lone surrogates: fall back to an encoding that cannot fail.
        // SAFETY: clearing the UnicodeEncodeError we just caused.
        unsafe { ffi::PyErr_Clear() };
        // SAFETY: `s` is a str; "replace" never fails on it.
        let b =
            unsafe { ffi::PyUnicode_AsEncodedString(s, c"utf-8".as_ptr(), c"replace".as_ptr()) };
        if b.is_null() {
            // SAFETY: nothing useful to report; drop the error.
            unsafe { ffi::PyErr_Clear() };
            return String::new();
        }
        // SAFETY: `b` is a new bytes object; we copy out before releasing it.
        unsafe {
            let out = String::from_utf8_lossy(bytes_slice(b)).into_owned();
            ffi::Py_DECREF(b);
            return out;
        }
    }
    // SAFETY: CPython returned `len` valid UTF-8 bytes owned by `s`.
    unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.cast::<u8>(), len as usize))
    }
    .to_owned()
}

/// The contents of a `bytes` object.
///
/// # Safety
/// `b` must be a live `bytes`; the slice must not outlive it; GIL held.
pub unsafe fn bytes_slice<'a>(b: *mut ffi::PyObject) -> &'a [u8] {
    // SAFETY: `b` is bytes (contract), so its buffer holds `size` bytes.
    unsafe {
        let p = ffi::PyBytes_AsString(b);
        let n = ffi::PyBytes_Size(b);
        std::slice::from_raw_parts(p.cast::<u8>(), n as usize)
    }
}

/// A new `str` from Rust text, or NULL with an exception.
///
/// # Safety
/// GIL held.
pub unsafe fn new_str(text: &str) -> *mut ffi::PyObject {
    // SAFETY: a valid UTF-8 buffer of the given length.
    unsafe { ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as ffi::Py_ssize_t) }
}
