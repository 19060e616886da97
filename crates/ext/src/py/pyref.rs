//! Owned references to Python objects: the one place that increments and decrements.
//!
//! A [`PyRef`] belongs to the interpreter whose thread state was current when it was made and must
//! be dropped while that interpreter's GIL is held by the current thread. It is neither `Send` nor
//! `Sync` (it wraps a raw pointer), so it cannot escape to another thread; code that switches
//! interpreters keeps the objects of each side inside that side's closure.

use std::ptr::NonNull;

use pyo3_ffi as ffi;

use crate::error::{Error, Result};

/// A strong reference to a Python object, released on drop.
pub struct PyRef(NonNull<ffi::PyObject>);

impl PyRef {
    /// Takes ownership of a new reference returned by a C-API call; NULL means that call raised.
    ///
    /// # Safety
    /// `ptr` must be NULL or a new (owned) reference, and the current thread must hold the GIL of
    /// the interpreter that owns the object.
    pub unsafe fn from_owned(ptr: *mut ffi::PyObject) -> Result<PyRef> {
        NonNull::new(ptr).map(PyRef).ok_or(Error::Raised)
    }

    /// Takes a new reference to a borrowed, non-NULL pointer.
    ///
    /// # Safety
    /// `ptr` must point to a live object and the current thread must hold its interpreter's GIL.
    pub unsafe fn from_borrowed(ptr: *mut ffi::PyObject) -> PyRef {
        // SAFETY: the caller guarantees a live object and the GIL, which is all Py_INCREF needs.
        unsafe { ffi::Py_INCREF(ptr) };
        // SAFETY: a live object's address is never NULL.
        PyRef(unsafe { NonNull::new_unchecked(ptr) })
    }

    /// The borrowed pointer; valid as long as `self` lives.
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    /// Gives up ownership, returning the new reference to the caller (usually to return it to C).
    pub fn into_ptr(self) -> *mut ffi::PyObject {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl Drop for PyRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference, and by this type's invariant the GIL of the owning
        // interpreter is held (a PyRef never leaves the scope of the interpreter it came from).
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) };
    }
}

/// A new list of the given items (each a new reference, stolen by the list).
///
/// # Safety
/// GIL held; the items belong to the current interpreter.
pub unsafe fn new_list(items: impl ExactSizeIterator<Item = Result<PyRef>>) -> Result<PyRef> {
    // SAFETY: GIL held; PyList_SetItem steals each item's reference into a fresh list slot.
    unsafe {
        let list = PyRef::from_owned(pyo3_ffi::PyList_New(items.len() as pyo3_ffi::Py_ssize_t))?;
        for (i, item) in items.enumerate() {
            pyo3_ffi::PyList_SetItem(list.as_ptr(), i as pyo3_ffi::Py_ssize_t, item?.into_ptr());
        }
        Ok(list)
    }
}

/// `atexit.register(hook)` in the current interpreter.
///
/// # Safety
/// GIL held; `hook` a live callable of the current interpreter.
pub unsafe fn register_atexit(hook: *mut ffi::PyObject) -> Result<()> {
    // SAFETY: GIL held; new references owned by PyRef.
    unsafe {
        let atexit = PyRef::from_owned(ffi::PyImport_ImportModule(c"atexit".as_ptr()))?;
        let register = PyRef::from_owned(ffi::PyObject_GetAttrString(
            atexit.as_ptr(),
            c"register".as_ptr(),
        ))?;
        PyRef::from_owned(ffi::PyObject_CallOneArg(register.as_ptr(), hook))?;
        Ok(())
    }
}
