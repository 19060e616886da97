//! Zero-copy buffers: a `Py_buffer` held open on an object of the sending interpreter (the
//! owner), a `memoryview` over the same memory in each receiving interpreter (PEP 734 queues) or
//! a `bytes` copied from it by the receiver (large `bytes` through channels), and the release of
//! the `Py_buffer` in its owner.
//!
//! ```text
//! Export (core SharedBuffer, Arc)         one PyObject_GetBuffer(PyBUF_FULL_RO) on the owner's
//! ├── held: Py_buffer                     object; released once, in the owner, by the last drop
//! ├── owner: InterpId                     the interpreter that was attached at export
//! └── format, shape, strides              copied into Rust memory at export
//!
//! Borrowed (core SharedBuffer, Arc)       a large `bytes` sent through a channel: one
//! ├── held: Py_buffer                     PyObject_GetBuffer(PyBUF_SIMPLE) (a reference to the
//! └── owner, buf, len                     bytes), released like an Export's
//!
//! SharedView (heap type, per interpreter) bf_getbuffer over an Export; each instance owns one
//! └── SharedBuffer                        SharedBuffer clone; memoryviews of it keep it alive
//!
//! OWNERS: Mutex<BTreeMap<InterpId, Owner>>
//! └── Owner::Alive(pending)               Py_buffers dropped while not attached to their owner,
//!     | Owner::Gone                       released there at the next entry into our module,
//!                                         (main, 3.12+) from a pending call, and at the owner's
//!                                         exit (an atexit hook registered at its first export
//!                                         or borrow); Gone: the owner has run that hook (its
//!                                         borrowed channel items were copied); later drops leak
//! ```
//!
//! Rule: a `Py_buffer` is released only by a thread attached to its owner. A drop anywhere else
//! parks it in `OWNERS`; after the owner's exit hook nothing is released any more: views still
//! alive elsewhere keep the exporter (leaked, never freed), so their memory stays valid.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use pyo3_ffi as ffi;
use subinterpreters_core::sync::Arc;
use subinterpreters_core::{ForeignBuffer, InterpId, Payload, SharedBuffer};

use crate::error::{Error, Result};
use crate::py::capi::type_slot;
use crate::py::heap_type::HeapType;
use crate::py::parked::{attached_interp, ensure_owner, release, Held};
use crate::py::pyref::PyRef;

/// One exported buffer (the core's [`ForeignBuffer`]).
pub(crate) struct Export {
    /// `None` once released or parked.
    held: Option<Held>,
    owner: InterpId,
    buf: usize,
    len: usize,
    readonly: bool,
    itemsize: ffi::Py_ssize_t,
    format: CString,
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
}

impl ForeignBuffer for Export {
    fn owner(&self) -> InterpId {
        self.owner
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn copy_out(&self) -> Payload {
        let mut out = Vec::<u8>::with_capacity(self.len);
        // SAFETY: `held` is Some until drop, so the exporter keeps `len` bytes at `buf` (one
        // C-contiguous block, checked at export). Copied by raw pointers, not through a slice:
        // a writable buffer may be written meanwhile by a view in another interpreter.
        unsafe {
            std::ptr::copy_nonoverlapping(self.buf as *const u8, out.as_mut_ptr(), self.len);
            out.set_len(self.len);
        }
        Payload::from_vec(out)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            release(self.owner, held);
        }
    }
}

/// A `bytes` object's contents (a channel item, a queue item), or a `str` object's code units
/// (a queue item), borrowed (the core's [`ForeignBuffer`]): the receiver builds its own object
/// from them, the one copy of the payload.
pub(crate) struct Borrowed {
    /// `None` once released or parked.
    held: Option<Held>,
    owner: InterpId,
    buf: usize,
    len: usize,
}

impl Borrowed {
    /// The borrowed contents.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `held` is Some until drop and holds a reference to an exact `bytes` or `str`
        // object, whose `len` bytes at `buf` (contents, code units) never move or change while
        // it lives.
        unsafe { std::slice::from_raw_parts(self.buf as *const u8, self.len) }
    }
}

impl ForeignBuffer for Borrowed {
    fn owner(&self) -> InterpId {
        self.owner
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn copy_out(&self) -> Payload {
        Payload::copy_from(self.bytes())
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            release(self.owner, held);
        }
    }
}

/// Borrows the contents of `obj`, an exact `bytes`, for a channel item; `Ok(None)` if the
/// current interpreter already ran its exit hook (the caller copies instead).
///
/// # Safety
/// GIL held; `obj` an exact `bytes`.
pub(crate) unsafe fn borrow_bytes(obj: *mut ffi::PyObject) -> Result<Option<SharedBuffer>> {
    let me = attached_interp().ok_or_else(|| Error::System("no thread state".into()))?;
    // SAFETY: GIL held, attached to `me`.
    if !unsafe { ensure_owner(me)? } {
        return Ok(None);
    }
    // SAFETY: GIL held; a `bytes` fills a simple read-only buffer over its own storage, taking
    // a reference to itself, which the Borrowed keeps until it is released in `me`.
    unsafe {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed().assume_init();
        if ffi::PyObject_GetBuffer(obj, &mut view, ffi::PyBUF_SIMPLE) < 0 {
            return Err(Error::Raised);
        }
        let borrowed = Borrowed {
            owner: me,
            buf: view.buf as usize,
            len: view.len.max(0) as usize,
            held: Some(Held(view)),
        };
        Ok(Some(SharedBuffer::new(Arc::new(borrowed))))
    }
}

/// Borrows the code units of `obj`, an exact `str`, for a queue item or a call's value, as
/// [`borrow_bytes`] does for a `bytes`; `Ok(None)` if the current interpreter already ran its
/// exit hook (the caller copies instead).
///
/// # Safety
/// GIL held; `obj` an exact `str`.
pub(crate) unsafe fn borrow_str(
    obj: *mut ffi::PyObject,
    width: usize,
) -> Result<Option<SharedBuffer>> {
    let me = attached_interp().ok_or_else(|| Error::System("no thread state".into()))?;
    // SAFETY: GIL held, attached to `me`.
    if !unsafe { ensure_owner(me)? } {
        return Ok(None);
    }
    // SAFETY: GIL held; a `str` has no buffer interface, so the view is filled here: a new
    // reference to the object in `obj` (what PyBuffer_Release gives back, the type having no
    // release slot) and its code units, which never move or change while it lives.
    unsafe {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed().assume_init();
        let len = ffi::PyUnicode_GET_LENGTH(obj).max(0) as usize * width;
        view.obj = ffi::Py_NewRef(obj);
        view.buf = ffi::PyUnicode_DATA(obj);
        view.len = len as ffi::Py_ssize_t;
        view.readonly = 1;
        view.itemsize = 1;
        let borrowed = Borrowed {
            owner: me,
            buf: view.buf as usize,
            len,
            held: Some(Held(view)),
        };
        Ok(Some(SharedBuffer::new(Arc::new(borrowed))))
    }
}

/// Exports `obj`'s memory for sharing: `Ok(None)` if it is not one contiguous block (indirect
/// or strided buffers), an error if `obj` refuses to export (a released `memoryview`).
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn export(obj: *mut ffi::PyObject) -> Result<Option<SharedBuffer>> {
    // SAFETY: (whole body) GIL held; `view` is filled by a successful PyObject_GetBuffer and
    // released on every path that does not move it into an Export.
    unsafe {
        let me = attached_interp().ok_or_else(|| Error::System("no thread state".into()))?;
        // Exported even after the exit hook ran: a later drop then leaks the exporter, so the
        // memory stays valid (see the module docs).
        ensure_owner(me)?;
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed().assume_init();
        if ffi::PyObject_GetBuffer(obj, &mut view, ffi::PyBUF_FULL_RO) < 0 {
            return Err(Error::Raised);
        }
        if !view.suboffsets.is_null() || ffi::PyBuffer_IsContiguous(&view, b'C' as c_char) == 0 {
            ffi::PyBuffer_Release(&mut view);
            return Ok(None);
        }
        let ndim = view.ndim.max(0) as usize;
        let copy = |p: *const ffi::Py_ssize_t| -> Vec<ffi::Py_ssize_t> {
            if p.is_null() || ndim == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, ndim).to_vec()
            }
        };
        let shape = copy(view.shape);
        let mut strides = copy(view.strides);
        if strides.is_empty() && ndim > 0 {
            // C-contiguous without strides given: compute them.
            strides = vec![0; ndim];
            let mut step = view.itemsize;
            for i in (0..ndim).rev() {
                strides[i] = step;
                step *= shape.get(i).copied().unwrap_or(1);
            }
        }
        let format = if view.format.is_null() {
            c"B".to_owned()
        } else {
            CStr::from_ptr(view.format).to_owned()
        };
        let export = Export {
            owner: me,
            buf: view.buf as usize,
            len: view.len.max(0) as usize,
            readonly: view.readonly != 0,
            itemsize: view.itemsize,
            format,
            shape,
            strides,
            held: Some(Held(view)),
        };
        Ok(Some(SharedBuffer::new(Arc::new(export))))
    }
}

/// Our instances: a buffer-exporting object over shared memory.
#[repr(C)]
struct ViewObject {
    ob_base: ffi::PyObject,
    /// From `Box::into_raw`; taken back by the dealloc.
    shared: *mut SharedBuffer,
}

/// The `SharedView` type. With no tp_new slot it cannot be instantiated from Python, only by
/// [`view_of`].
const TYPE: HeapType = HeapType {
    name: c"subinterpreters.lowlevel.SharedView",
    doc: c"Memory shared by another interpreter (use memoryview on it).",
    basicsize: std::mem::size_of::<ViewObject>(),
    flags: ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_IMMUTABLETYPE,
};

/// The `SharedView` type for one interpreter's module state.
///
/// # Safety
/// GIL held; `module` our module being initialized.
pub(crate) unsafe fn create_type(module: *mut ffi::PyObject) -> Result<PyRef> {
    let slots = [
        type_slot(ffi::Py_tp_dealloc, view_dealloc as *mut c_void),
        type_slot(ffi::Py_bf_getbuffer, view_getbuffer as *mut c_void),
    ];
    // SAFETY: GIL held; every slot function has its slot's signature.
    unsafe { TYPE.create(module, slots) }
}

unsafe extern "C" fn view_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython deallocates an instance of our type with the GIL held; `shared` was set by
    // `view_of` (or is NULL if that failed half-way); the instance is freed with tp_free and its
    // reference to the heap type dropped.
    unsafe {
        let raw = obj.cast::<ViewObject>();
        let shared = std::mem::replace(&mut (*raw).shared, std::ptr::null_mut());
        let tp = ffi::Py_TYPE(obj);
        if let Some(free) = (*tp).tp_free {
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
        if !shared.is_null() {
            // May release the Py_buffer (attached to its owner) or park it.
            drop(Box::from_raw(shared));
        }
    }
}

unsafe extern "C" fn view_getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls bf_getbuffer with the GIL held, `obj` our live instance and `view`
    // writable. The Export lives as long as `obj` (which the view references), so the pointers
    // into its format, shape and strides stay valid for the view's life.
    unsafe {
        let shared = (*obj.cast::<ViewObject>()).shared;
        let Some(export) = shared
            .as_ref()
            .and_then(|s| s.buffer().as_any().downcast_ref::<Export>())
        else {
            ffi::PyErr_SetString(ffi::PyExc_BufferError, c"no shared buffer".as_ptr());
            return -1;
        };
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE && export.readonly {
            ffi::PyErr_SetString(ffi::PyExc_BufferError, c"buffer is not writable".as_ptr());
            return -1;
        }
        let v = &mut *view;
        v.buf = export.buf as *mut c_void;
        v.len = export.len as ffi::Py_ssize_t;
        v.readonly = c_int::from(export.readonly);
        v.itemsize = export.itemsize;
        v.format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            export.format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        v.ndim = export.shape.len() as c_int;
        let ptr = |s: &Vec<ffi::Py_ssize_t>| {
            if s.is_empty() {
                std::ptr::null_mut()
            } else {
                s.as_ptr().cast_mut()
            }
        };
        v.shape = ptr(&export.shape);
        v.strides = ptr(&export.strides);
        // The memory is C-contiguous (checked at export), as memoryview's own getbuffer allows.
        if flags & ffi::PyBUF_STRIDES != ffi::PyBUF_STRIDES {
            v.strides = std::ptr::null_mut();
        }
        if flags & ffi::PyBUF_ND != ffi::PyBUF_ND {
            v.ndim = 1;
            v.shape = std::ptr::null_mut();
        }
        v.suboffsets = std::ptr::null_mut();
        v.internal = std::ptr::null_mut();
        v.obj = ffi::Py_NewRef(obj);
        0
    }
}

/// A new `memoryview` in the current interpreter over `shared`'s memory.
///
/// # Safety
/// GIL held; `view_type` this interpreter's `SharedView` type.
pub(crate) unsafe fn view_of(shared: SharedBuffer, view_type: *mut ffi::PyObject) -> Result<PyRef> {
    if shared.buffer().as_any().downcast_ref::<Export>().is_none() {
        return Err(Error::System("foreign buffer of an unknown kind".into()));
    }
    // SAFETY: GIL held; `view_type` is our heap type, so tp_alloc gives a zeroed ViewObject
    // whose `shared` field we set before anything can read it.
    unsafe {
        let tp = view_type.cast::<ffi::PyTypeObject>();
        let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let obj = PyRef::from_owned(alloc(tp, 0))?;
        (*obj.as_ptr().cast::<ViewObject>()).shared = Box::into_raw(Box::new(shared));
        PyRef::from_owned(ffi::PyMemoryView_FromObject(obj.as_ptr()))
    }
}
