//! The module object: definition, multi-phase initialisation, and per-interpreter state.
//!
//! Each interpreter that imports `subinterpreters.lowlevel` gets its own module object whose
//! state holds that interpreter's exception classes and ID types; no Python object is static.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

use pyo3_ffi as ffi;

use crate::error::Result;
use crate::py::pyref::PyRef;
use crate::py::version;

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

impl ModState {
    fn fields(&mut self) -> [&mut *mut ffi::PyObject; 22] {
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
    // SAFETY: PyType_GetModuleByDef returns a borrowed module made from our def, or NULL.
    unsafe {
        let module = ffi::PyType_GetModuleByDef(tp, &raw mut MODULE_DEF);
        (!module.is_null()).then(|| state_of_module(module))
    }
}

/// `PyMethodDef` for a `(module, args, kwargs)` function.
macro_rules! kw_method {
    ($name:literal, $func:path, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionWithKeywords: $func,
            },
            ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

/// `PyMethodDef` for a `(module, args, nargs, kwnames)` fastcall function.
macro_rules! fast_method {
    ($name:literal, $func:path, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: $func,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

/// `PyMethodDef` for a function without arguments.
macro_rules! noargs_method {
    ($name:literal, $func:path, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunction: $func },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

use crate::interp::api as it;

use crate::chan::api as ch;

use crate::queues::api as qu;

static mut METHODS: [ffi::PyMethodDef; 42] = [
    kw_method!(c"create", it::create, c"create(*, isolated=True) -> ID\n\nCreate a new interpreter and return its ID. On 3.12+ an isolated interpreter has its\nown GIL; isolated=False gives a legacy one that shares the main interpreter's GIL."),
    kw_method!(c"destroy", it::destroy, c"destroy(id)\n\nDestroy the identified interpreter.\n\nDestroying the current interpreter, a running one or an unknown ID raises RuntimeError."),
    noargs_method!(c"list_all", it::list_all, c"list_all() -> [ID]\n\nReturn the IDs of every existing interpreter, in ascending order."),
    noargs_method!(c"get_current", it::get_current, c"get_current() -> ID\n\nReturn the ID of the current interpreter."),
    noargs_method!(c"get_main", it::get_main, c"get_main() -> ID\n\nReturn the ID of the main interpreter."),
    kw_method!(c"is_running", it::is_running, c"is_running(id) -> bool\n\nReturn whether the identified interpreter is running code."),
    fast_method!(c"run_string", it::run_string, c"run_string(id, script, shared=None)\n\nExecute the source string in the identified interpreter's __main__ module, after\ncopying the shareable values of the dict `shared` into it. A failure raises\nRunFailedError carrying the remote exception's type name and traceback."),
    kw_method!(c"interrupt", crate::interp::interrupt::interrupt, c"interrupt(id, exc) -> bool\n\nRaise exc (a built-in exception class) asynchronously in the code our run in the\nidentified interpreter is executing. Return False if nothing of ours runs there."),
    kw_method!(c"is_shareable", it::is_shareable_fn, c"is_shareable(obj) -> bool\n\nReturn True if the object's data may be shared between interpreters."),
    noargs_method!(c"_clean_up_at_exit", it::clean_up_at_exit, c"Destroy every idle interpreter made by create() (registered with atexit)."),
    noargs_method!(c"channel_create", ch::channel_create, c"channel_create() -> cid\n\nCreate a new cross-interpreter channel and return its ID."),
    kw_method!(c"channel_destroy", ch::channel_destroy, c"channel_destroy(cid)\n\nClose and forget the channel; afterwards it behaves as if it never existed."),
    noargs_method!(c"channel_list_all", ch::channel_list_all, c"channel_list_all() -> [cid]\n\nReturn the IDs of every registered channel, newest first."),
    kw_method!(c"channel_list_interpreters", ch::channel_list_interpreters, c"channel_list_interpreters(cid, *, send) -> [id]\n\nReturn the IDs of the interpreters associated with the send end (send=True) or\nthe receive end (send=False) of the channel."),
    fast_method!(c"channel_send", ch::channel_send, c"channel_send(cid, obj)\n\nCopy the object's data into the channel's queue. Never blocks."),
    fast_method!(c"channel_recv", ch::channel_recv, c"channel_recv(cid, [default]) -> obj\n\nReturn a new object built from the oldest item in the channel. If the channel is\nempty, return `default` if given, else raise ChannelEmptyError. Never blocks."),
    kw_method!(c"channel_close", ch::channel_close, c"channel_close(cid, *, send=False, recv=False, force=False)\n\nClose the channel for every interpreter. An empty channel closes at once. With\nitems queued: force=True discards them and closes; send=True alone stops new sends\nand closes once the queue is drained; otherwise ChannelNotEmptyError is raised."),
    kw_method!(c"channel_release", ch::channel_release, c"channel_release(cid, *, send=False, recv=False, force=False)\n\nClose the chosen end(s) (both by default) for the current interpreter only. Once\nno interpreter has an end open, the channel is closed."),
    kw_method!(c"_channel_id", crate::chan::id::channel_id_fn, c"_channel_id(id, *, send=None, recv=None, force=False, _resolve=False) -> cid\n\nBuild a ChannelID for an existing channel (any id with force=True)."),
    fast_method!(c"_queue_register", qu::queue_register, c"Register the classes of subinterpreters.interpreters (private)."),
    fast_method!(c"_queue_create", qu::queue_create, c"_queue_create(maxsize, unbound, fallback, unlisted=False) -> id (private)."),
    fast_method!(c"_queue_destroy", qu::queue_destroy, c"_queue_destroy(id) (private)."),
    fast_method!(c"_queue_bind", qu::queue_bind, c"_queue_bind(id) (private)."),
    fast_method!(c"_queue_release", qu::queue_release, c"_queue_release(id) (private)."),
    fast_method!(c"_queue_put", qu::queue_put, c"_queue_put(id, obj, unbound, block, timeout) (private)."),
    fast_method!(c"_queue_get", qu::queue_get, c"_queue_get(id, block, timeout) -> (obj, unbound) (private)."),
    fast_method!(c"_queue_put_get", qu::queue_put_get, c"_queue_put_get(put_id, obj, get_id) -> (obj, unbound) (private): put, then wait for an item.\n"),
    fast_method!(c"_queue_qsize", qu::queue_qsize, c"_queue_qsize(id) -> int (private)."),
    fast_method!(c"_queue_info", qu::queue_info, c"_queue_info(id) -> (maxsize, unbound, fallback) (private)."),
    fast_method!(c"_queue_wait", crate::queues::wait::queue_wait, c"_queue_wait(queues, timeout) -> list (private): the queues that have an item."),
    fast_method!(c"_queue_add_fd_waker", crate::queues::fd_waker::queue_add_fd_waker, c"_queue_add_fd_waker(id, fd) -> token (private)."),
    fast_method!(c"_queue_remove_waker", crate::queues::fd_waker::queue_remove_waker, c"_queue_remove_waker(id, token) -> bool (private)."),
    noargs_method!(c"_queue_list_all", qu::queue_list_all, c"_queue_list_all() -> [(id, unbound, fallback)] (private)."),
    noargs_method!(c"_claim_open", crate::queues::claims::claim_open, c"_claim_open() -> id (private): a new one-time claim."),
    fast_method!(c"_claim_take", crate::queues::claims::claim_take, c"_claim_take(id) -> bool (private): True for the one caller that takes the claim."),
    noargs_method!(c"_claim_count", crate::queues::claims::claim_count, c"_claim_count() -> int (private): claims open in the process."),
    fast_method!(c"_serve_queue", crate::interp::serve::serve_queue, c"_serve_queue(id, qid, script, name) -> None | (item, exception) (private): run script in\nthe interpreter for each item of the queue, bound to name in its __main__, until a None item."),
    kw_method!(c"_whence", it::whence, c"_whence(id) -> int (private): how the interpreter was created."),
    fast_method!(c"_xi_is_shareable", qu::xi_is_shareable, c"_xi_is_shareable(obj) -> bool (private)."),
    fast_method!(c"_dumps", crate::values::codec::dumps_fn, c"_dumps(obj) -> bytes (private): obj in the native format if it is ordinary data, else\npickle.dumps(obj, 5)."),
    fast_method!(c"_loads", crate::values::codec::loads_fn, c"_loads(data) -> obj (private): the object _dumps() gave data for."),
    ffi::PyMethodDef::zeroed(),
];

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

/// The module definition (multi-phase: one module object per importing interpreter).
pub static mut MODULE_DEF: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"subinterpreters.lowlevel".as_ptr(),
    m_doc: c"Low-level operations on Python interpreters and the channels between them.\n\nThe API of CPython 3.11's _xxsubinterpreters, implemented in Rust.".as_ptr(),
    m_size: std::mem::size_of::<ModState>() as ffi::Py_ssize_t,
    m_methods: (&raw mut METHODS).cast(),
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
            init_state(module, state)?;
            Ok(0)
        })
    }
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
        state.channel_id_type =
            crate::chan::id::create_type(module)?.map_or(null_mut(), PyRef::into_ptr);
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
                return Err(crate::error::Error::Raised);
            }
        }
        if crate::py::tstate::current_interp() == crate::py::tstate::main_interp() {
            register_atexit(module)?;
        }
        Ok(())
    }
}

/// `atexit.register(module._clean_up_at_exit)`.
///
/// # Safety
/// GIL held in the main interpreter.
unsafe fn register_atexit(module: *mut ffi::PyObject) -> Result<()> {
    // SAFETY: GIL held; new references owned by PyRef.
    unsafe {
        let atexit = PyRef::from_owned(ffi::PyImport_ImportModule(c"atexit".as_ptr()))?;
        let register = PyRef::from_owned(ffi::PyObject_GetAttrString(
            atexit.as_ptr(),
            c"register".as_ptr(),
        ))?;
        let hook = PyRef::from_owned(ffi::PyObject_GetAttrString(
            module,
            c"_clean_up_at_exit".as_ptr(),
        ))?;
        PyRef::from_owned(ffi::PyObject_CallOneArg(register.as_ptr(), hook.as_ptr()))?;
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
