//! Heap types as data: each of our types states its name, doc, instance size and flags in one
//! [`HeapType`] beside its layout, and its slot functions in a list; [`HeapType::create`] is the
//! one place that builds a `PyType_Spec` and a type from them for a module instance.

use std::ffi::{c_ulong, c_void, CStr};

use pyo3_ffi as ffi;

use crate::error::Result;
use crate::py::capi::type_slot;
use crate::py::pyref::PyRef;

/// The row that ends a `PyGetSetDef` table.
pub const GETSET_END: ffi::PyGetSetDef = ffi::PyGetSetDef {
    name: std::ptr::null(),
    get: None,
    set: None,
    doc: std::ptr::null(),
    closure: std::ptr::null_mut(),
};

/// What a heap type is, apart from its slot functions.
pub struct HeapType {
    /// The dotted name (`subinterpreters.lowlevel.X`): sets `__module__` and `__name__`.
    pub name: &'static CStr,
    /// `__doc__`, with its `--` signature line if it has one.
    pub doc: &'static CStr,
    /// The instance size: `size_of` the type's `#[repr(C)]` layout.
    pub basicsize: usize,
    /// `Py_TPFLAGS_*`.
    pub flags: c_ulong,
}

impl HeapType {
    /// Creates this type for `module` with the given slots (the doc slot and the end of the
    /// table are added here).
    ///
    /// # Safety
    /// GIL held; `module` is the module being initialised; each slot's pointer has the
    /// signature its slot number requires and lives as long as the process.
    pub unsafe fn create(
        &self,
        module: *mut ffi::PyObject,
        slots: impl IntoIterator<Item = ffi::PyType_Slot>,
    ) -> Result<PyRef> {
        let mut slots: Vec<ffi::PyType_Slot> = slots.into_iter().collect();
        slots.push(type_slot(ffi::Py_tp_doc, self.doc.as_ptr() as *mut c_void));
        slots.push(type_slot(0, std::ptr::null_mut()));
        let mut spec = ffi::PyType_Spec {
            name: self.name.as_ptr(),
            basicsize: self.basicsize as _,
            itemsize: 0,
            flags: self.flags as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: spec and slots outlive the call (CPython copies what it keeps); GIL held and
        // slot pointers valid (contract).
        unsafe {
            PyRef::from_owned(ffi::PyType_FromModuleAndSpec(
                module,
                &mut spec,
                std::ptr::null_mut(),
            ))
        }
    }
}
