//! The module object, assembled: its definition, and the multi-phase initialisation that adds
//! each area's method table, creates this interpreter's exception classes and types into its
//! [`ModState`], and (main interpreter) registers the exit clean-up. The top floor: it only
//! assembles what the areas export.

use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

use pyo3_ffi as ffi;

use crate::error::{Error, Result};
use crate::py::pyref::{register_atexit, PyRef};
use crate::py::version;
use crate::state::ModState;

/// Every area's method table, in the order their functions are added.
fn method_tables() -> [*mut ffi::PyMethodDef; 4] {
    // SAFETY: taking the addresses of static tables that CPython only reads.
    [
        (&raw mut crate::interp::METHODS).cast(),
        (&raw mut crate::chan::METHODS).cast(),
        (&raw mut crate::queues::METHODS).cast(),
        (&raw mut crate::values::METHODS).cast(),
    ]
}

static mut SLOTS: [ffi::PyModuleDef_Slot; 3] = [
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: module_exec as *mut c_void,
    },
    version::MULTIPLE_INTERPRETERS_SLOT,
    ffi::PyModuleDef_Slot {
        slot: 0,
        value: null_mut(),
    },
];

/// The module definition (multi-phase: one module object per importing interpreter); its
/// address goes down to `state.rs` in [`init`].
static mut MODULE_DEF: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"subinterpreters.lowlevel".as_ptr(),
    m_doc: c"Low-level operations on Python interpreters and the channels between them.\n\nThe API of CPython 3.11's _xxsubinterpreters, implemented in Rust.".as_ptr(),
    m_size: std::mem::size_of::<ModState>() as ffi::Py_ssize_t,
    // Added by module_exec from each area's table.
    m_methods: null_mut(),
    m_slots: (&raw mut SLOTS).cast(),
    m_traverse: Some(module_traverse),
    m_clear: Some(module_clear),
    m_free: Some(module_free),
};

unsafe extern "C" fn module_exec(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython runs exec slots with the GIL held on a fresh module of our def.
    unsafe {
        let state = &mut *ffi::PyModule_GetState(module).cast::<ModState>();
        crate::py::trampoline::guard(None, -1, || {
            for table in method_tables() {
                if ffi::PyModule_AddFunctions(module, table) < 0 {
                    return Err(Error::Raised);
                }
            }
            init_state(module, state)?;
            Ok(0)
        })
    }
}

/// The definition CPython's import machinery initialises, for `PyInit_lowlevel`.
///
/// # Safety
/// Called by CPython's import machinery with the GIL held.
pub unsafe fn init() -> *mut ffi::PyObject {
    let def = &raw mut MODULE_DEF;
    crate::state::set_module_def(def);
    // SAFETY: MODULE_DEF is a static that lives for the whole process; CPython initialises its
    // base on first use, under the import lock.
    unsafe { ffi::PyModuleDef_Init(def) }
}

/// Creates the classes, stores them in the state and the module, and (in the main interpreter)
/// registers exit-time cleanup.
///
/// # Safety
/// GIL held; `module` is a fresh module of our def and `state` its state.
unsafe fn init_state(module: *mut ffi::PyObject, state: &mut ModState) -> Result<()> {
    // SAFETY: (whole body) GIL held; each new reference is either stored in the state (released
    // by module_clear) or released here.
    unsafe {
        let exc = |name: &std::ffi::CStr, base: *mut ffi::PyObject| -> Result<*mut ffi::PyObject> {
            Ok(
                PyRef::from_owned(ffi::PyErr_NewException(name.as_ptr(), base, null_mut()))?
                    .into_ptr(),
            )
        };
        state.run_failed_error = exc(
            c"subinterpreters.lowlevel.RunFailedError",
            ffi::PyExc_RuntimeError,
        )?;
        state.channel_error = exc(
            c"subinterpreters.lowlevel.ChannelError",
            ffi::PyExc_RuntimeError,
        )?;
        state.channel_not_found_error = exc(
            c"subinterpreters.lowlevel.ChannelNotFoundError",
            state.channel_error,
        )?;
        state.channel_closed_error = exc(
            c"subinterpreters.lowlevel.ChannelClosedError",
            state.channel_error,
        )?;
        state.channel_empty_error = exc(
            c"subinterpreters.lowlevel.ChannelEmptyError",
            state.channel_error,
        )?;
        state.channel_not_empty_error = exc(
            c"subinterpreters.lowlevel.ChannelNotEmptyError",
            state.channel_error,
        )?;
        state.interp_id_type = crate::interp::id::create_type(module)?.into_ptr();
        state.channel_id_type = crate::chan::id::create_type(module)?.into_ptr();
        state.shared_view_type = crate::values::shared::create_type(module)?.into_ptr();
        state.queue_base_type = crate::queues::handle::create_type(module)?.into_ptr();
        let names: [(&std::ffi::CStr, *mut ffi::PyObject); 9] = [
            (c"_QueueBase", state.queue_base_type),
            (c"InterpreterID", state.interp_id_type),
            (c"ChannelID", state.channel_id_type),
            (c"RunFailedError", state.run_failed_error),
            (c"ChannelError", state.channel_error),
            (c"ChannelNotFoundError", state.channel_not_found_error),
            (c"ChannelClosedError", state.channel_closed_error),
            (c"ChannelEmptyError", state.channel_empty_error),
            (c"ChannelNotEmptyError", state.channel_not_empty_error),
        ];
        for (name, obj) in names {
            if obj.is_null() {
                continue;
            }
            if ffi::PyModule_AddObjectRef(module, name.as_ptr(), obj) < 0 {
                return Err(Error::Raised);
            }
        }
        if crate::py::tstate::current_interp() == crate::py::tstate::main_interp() {
            let hook = PyRef::from_owned(ffi::PyObject_GetAttrString(
                module,
                c"_clean_up_at_exit".as_ptr(),
            ))?;
            register_atexit(hook.as_ptr())?;
        }
        Ok(())
    }
}

unsafe extern "C" fn module_traverse(
    module: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the GC calls this with a module of our def; the state may be NULL before exec.
    unsafe {
        let st = ffi::PyModule_GetState(module).cast::<ModState>();
        if st.is_null() {
            return 0;
        }
        for field in (*st).fields() {
            if !field.is_null() {
                let r = visit(*field, arg);
                if r != 0 {
                    return r;
                }
            }
        }
        0
    }
}

unsafe extern "C" fn module_clear(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: the GC or module teardown calls this with the GIL held; each field owns a strong
    // reference and is nulled before release so a re-entrant clear sees it gone.
    unsafe {
        let st = ffi::PyModule_GetState(module).cast::<ModState>();
        if st.is_null() {
            return 0;
        }
        for field in (*st).fields() {
            let obj = std::mem::replace(field, null_mut());
            ffi::Py_XDECREF(obj);
        }
        0
    }
}

unsafe extern "C" fn module_free(module: *mut c_void) {
    // SAFETY: called once when the module object is freed, with the GIL held.
    unsafe {
        module_clear(module.cast());
    }
}
