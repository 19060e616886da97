//! The ground floor: per-module-instance state (this interpreter's exception classes and
//! types, the classes the PEP 734 layer registers) and how any code finds it, from the module
//! object or from one of our types.
//!
//! Each interpreter that imports `subinterpreters.lowlevel` gets its own module object whose
//! state is a [`ModState`]; no Python object is static. The module definition itself is
//! assembled in `module.rs`, which hands its address down here once CPython asks for it.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3_ffi as ffi;

/// The module definition, recorded by `module.rs` before CPython first uses it.
static MODULE_DEF: AtomicPtr<ffi::PyModuleDef> = AtomicPtr::new(std::ptr::null_mut());

/// Records the module definition that [`state_of_type`] looks types up by.
pub fn set_module_def(def: *mut ffi::PyModuleDef) {
    MODULE_DEF.store(def, Ordering::Release);
}

/// Per-module-instance state: strong references to the classes this instance created.
#[repr(C)]
pub struct ModState {
    /// `InterpreterID`.
    pub interp_id_type: *mut ffi::PyObject,
    /// `ChannelID`.
    pub channel_id_type: *mut ffi::PyObject,
    /// `RunFailedError(RuntimeError)`.
    pub run_failed_error: *mut ffi::PyObject,
    /// `ChannelError(RuntimeError)`.
    pub channel_error: *mut ffi::PyObject,
    /// `ChannelNotFoundError(ChannelError)`.
    pub channel_not_found_error: *mut ffi::PyObject,
    /// `ChannelClosedError(ChannelError)`.
    pub channel_closed_error: *mut ffi::PyObject,
    /// `ChannelEmptyError(ChannelError)`.
    pub channel_empty_error: *mut ffi::PyObject,
    /// `ChannelNotEmptyError(ChannelError)`.
    pub channel_not_empty_error: *mut ffi::PyObject,
    /// `SharedView`: the exporter behind a `memoryview` over another interpreter's memory.
    pub shared_view_type: *mut ffi::PyObject,
    /// `_QueueBase`: the Rust half of `subinterpreters.interpreters.Queue` (queues/handle.rs).
    pub queue_base_type: *mut ffi::PyObject,
    /// The classes of the PEP 734 layer (`subinterpreters.interpreters`), registered by it with
    /// `_queue_register`; NULL until then.
    pub xi: XiClasses,
}

/// Classes defined in Python by `subinterpreters.interpreters` that our queue functions create
/// or raise, registered per interpreter. Cells: registration writes them through the shared
/// state reference every module function gets (always under this interpreter's GIL).
#[repr(C)]
pub struct XiClasses {
    /// `Queue`: built from an id when a queue crosses.
    pub queue_type: Cell<*mut ffi::PyObject>,
    /// `QueueError`.
    pub queue_error: Cell<*mut ffi::PyObject>,
    /// `QueueNotFoundError`.
    pub queue_not_found: Cell<*mut ffi::PyObject>,
    /// `QueueEmpty`.
    pub queue_empty: Cell<*mut ffi::PyObject>,
    /// `QueueFull`.
    pub queue_full: Cell<*mut ffi::PyObject>,
    /// `ItemInterpreterDestroyed`.
    pub item_interp_destroyed: Cell<*mut ffi::PyObject>,
    /// `NotShareableError`.
    pub not_shareable: Cell<*mut ffi::PyObject>,
    /// `UNBOUND`: what `Queue.get` returns for an unbound item, and `unbounditems` flag 3.
    pub unbound: Cell<*mut ffi::PyObject>,
    /// `UNBOUND_ERROR`: `unbounditems` flag 2.
    pub unbound_error: Cell<*mut ffi::PyObject>,
    /// `UNBOUND_REMOVE`: `unbounditems` flag 1.
    pub unbound_remove: Cell<*mut ffi::PyObject>,
    /// `pickle.dumps`, looked up on first need (values/codec.rs).
    pub pickle_dumps: Cell<*mut ffi::PyObject>,
    /// `pickle.loads`, looked up on first need.
    pub pickle_loads: Cell<*mut ffi::PyObject>,
}

/// The module that defines and registers the PEP 734 `Queue` class.
const QUEUES: &std::ffi::CStr = c"subinterpreters.interpreters._queues";

impl ModState {
    /// Loads the PEP 734 queue module in this interpreter if it has not registered its classes
    /// yet (its import registers them); false, with the Python exception set, if it fails. Lives
    /// here, not in `values/`, because raising a queue error (error.rs) needs it too.
    ///
    /// # Safety
    /// GIL held; `self` is the state of the current interpreter's module.
    pub unsafe fn ensure_queue_classes(&self) -> bool {
        if self.xi.queue_type.get().is_null() {
            // SAFETY: GIL held (contract); the new reference is released at once.
            unsafe {
                let module = ffi::PyImport_ImportModule(QUEUES.as_ptr());
                if module.is_null() {
                    return false;
                }
                ffi::Py_DECREF(module);
            }
        }
        true
    }

    /// Every owned reference, for traverse and clear.
    pub fn fields(&mut self) -> [&mut *mut ffi::PyObject; 22] {
        [
            self.xi.pickle_dumps.get_mut(),
            self.xi.pickle_loads.get_mut(),
            self.xi.unbound.get_mut(),
            self.xi.unbound_error.get_mut(),
            self.xi.unbound_remove.get_mut(),
            &mut self.queue_base_type,
            self.xi.queue_type.get_mut(),
            self.xi.queue_error.get_mut(),
            self.xi.queue_not_found.get_mut(),
            self.xi.queue_empty.get_mut(),
            self.xi.queue_full.get_mut(),
            self.xi.item_interp_destroyed.get_mut(),
            self.xi.not_shareable.get_mut(),
            &mut self.interp_id_type,
            &mut self.channel_id_type,
            &mut self.run_failed_error,
            &mut self.channel_error,
            &mut self.channel_not_found_error,
            &mut self.channel_closed_error,
            &mut self.channel_empty_error,
            &mut self.channel_not_empty_error,
            &mut self.shared_view_type,
        ]
    }
}

/// The state of our module object.
///
/// # Safety
/// `module` must be a module created from `MODULE_DEF`; GIL held.
pub unsafe fn state_of_module<'a>(module: *mut ffi::PyObject) -> &'a ModState {
    // SAFETY: our modules have a zero-initialised ModState of m_size bytes.
    unsafe { &*ffi::PyModule_GetState(module).cast::<ModState>() }
}

/// The state of the module that defined `tp` (or one of its bases), `None` with an exception
/// set if there is none.
///
/// # Safety
/// `tp` must be a live type; GIL held.
pub unsafe fn state_of_type<'a>(tp: *mut ffi::PyTypeObject) -> Option<&'a ModState> {
    let def = MODULE_DEF.load(Ordering::Acquire);
    if def.is_null() {
        return None;
    }
    // SAFETY: PyType_GetModuleByDef returns a borrowed module made from our def, or NULL.
    unsafe {
        let module = ffi::PyType_GetModuleByDef(tp, def);
        (!module.is_null()).then(|| state_of_module(module))
    }
}
