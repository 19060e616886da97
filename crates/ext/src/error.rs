//! Typed errors of the extension and the one function that turns them into Python exceptions.
//!
//! Errors are plain Rust data until [`Error::restore`] raises them, so an error met while another
//! interpreter was current (a failed script, a channel error) is raised in the caller's
//! interpreter, with that interpreter's exception classes.

use std::ffi::{CStr, CString};

use pyo3_ffi as ffi;
use subinterpreters_core::{ChannelError, QueueError};

use crate::state::ModState;

/// What a Python-facing function can fail with.
#[derive(Debug)]
pub enum Error {
    /// A Python exception is already set in the current interpreter.
    Raised,
    /// `RuntimeError(msg)`: interpreter-level failures (CPython's module uses the builtin class).
    Runtime(String),
    /// An interpreter operation refused for a reason the PEP 734 layer tells apart: a
    /// `RuntimeError` (3.11's class and message) whose `_kind` attribute names the case.
    Interp(InterpError),
    /// `TypeError(msg)`.
    Type(String),
    /// `ValueError(msg)`.
    Value(String),
    /// `OverflowError(msg)`.
    Overflow(String),
    /// `SystemError(msg)`: a bug of ours (a panic, a broken invariant).
    System(String),
    /// The script given to `run_string` raised: `RunFailedError`.
    RunFailed(RemoteException),
    /// A channel operation failed: one of the `Channel*Error` classes.
    Channel(ChannelError),
    /// A queue operation failed: `QueueNotFoundError`, `QueueEmpty`, `QueueFull`, `QueueError`
    /// (the classes `subinterpreters.interpreters` registered; `RuntimeError` before that).
    Queue(QueueError),
    /// `QueueFull`/`QueueEmpty` after a blocking call's timeout (`put` is true for a put).
    QueueTimedOut {
        /// The queue.
        id: i64,
        /// Whether it was a put (full) rather than a get (empty).
        put: bool,
    },
    /// The item taken was put by an interpreter since destroyed: `ItemInterpreterDestroyed`.
    ItemInterpreterDestroyed,
    /// The object cannot cross: `NotShareableError` (`ValueError` before registration).
    NotShareable(String),
}

/// The interpreter errors [`Error::Interp`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpError {
    /// No interpreter has this id (`_kind` `"not_found"`).
    NotFound(i64),
    /// The interpreter is running code, or is the main one (`_kind` `"running"`).
    Running,
}

impl InterpError {
    /// The `_kind` attribute's value.
    fn kind(self) -> &'static str {
        match self {
            InterpError::NotFound(_) => "not_found",
            InterpError::Running => "running",
        }
    }

    /// 3.11's message.
    fn message(self) -> String {
        match self {
            InterpError::NotFound(id) => format!("unrecognized interpreter ID {id}"),
            InterpError::Running => "interpreter already running".into(),
        }
    }
}

/// An exception raised inside another interpreter, carried as data.
#[derive(Debug, Clone)]
pub struct RemoteException {
    /// 3.11's summary: `"{str(type)}: {str(value)}"`, e.g. `<class 'ValueError'>: boom`.
    pub message: String,
    /// The exception type's qualified name (`ValueError`, `__main__.MyError`).
    pub type_name: String,
    /// The formatted traceback, as `traceback.format_exception` prints it.
    pub traceback: String,
}

/// Result of the extension's internal functions.
pub type Result<T> = std::result::Result<T, Error>;

impl From<ChannelError> for Error {
    fn from(err: ChannelError) -> Self {
        Error::Channel(err)
    }
}

fn to_cstring(msg: &str) -> CString {
    // Messages can contain NULs only through user data; cut there rather than lose the message.
    let bytes = msg.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

/// Raises `cls(msg)` in the current interpreter.
///
/// # Safety
/// The current thread must hold the GIL and `cls` must be an exception class.
unsafe fn set_string(cls: *mut ffi::PyObject, msg: &str) {
    let text = to_cstring(msg);
    // SAFETY: GIL held and `cls` an exception class, by this function's contract.
    unsafe { ffi::PyErr_SetString(cls, text.as_ptr()) };
}

impl Error {
    /// Raises this error as a Python exception in the current interpreter.
    ///
    /// `state` supplies the module's own exception classes; without it (a type slot that could
    /// not find its module) module-specific errors fall back to `RuntimeError`.
    ///
    /// # Safety
    /// The current thread must hold the GIL of the interpreter `state` belongs to.
    pub unsafe fn restore(self, state: Option<&ModState>) {
        // SAFETY: (whole body) the caller holds the GIL; every class pointer is either a builtin
        // exception or one held alive by the module state.
        unsafe {
            match self {
                Error::Raised => {
                    if ffi::PyErr_Occurred().is_null() {
                        set_string(ffi::PyExc_SystemError, "error return without exception set");
                    }
                }
                Error::Runtime(m) => set_string(ffi::PyExc_RuntimeError, &m),
                Error::Interp(err) => raise_with_attrs(
                    ffi::PyExc_RuntimeError,
                    &err.message(),
                    &[(c"_kind", err.kind())],
                ),
                Error::Type(m) => set_string(ffi::PyExc_TypeError, &m),
                Error::Value(m) => set_string(ffi::PyExc_ValueError, &m),
                Error::Overflow(m) => set_string(ffi::PyExc_OverflowError, &m),
                Error::System(m) => set_string(ffi::PyExc_SystemError, &m),
                Error::RunFailed(remote) => raise_run_failed(state, remote),
                Error::Channel(err) => {
                    let cls = match state {
                        Some(st) => match err {
                            ChannelError::NotFound(_) => st.channel_not_found_error,
                            ChannelError::Closed(_) | ChannelError::AlreadyClosed => {
                                st.channel_closed_error
                            }
                            ChannelError::Empty(_) => st.channel_empty_error,
                            ChannelError::NotEmpty => st.channel_not_empty_error,
                        },
                        None => ffi::PyExc_RuntimeError,
                    };
                    set_string(cls, &err.to_string());
                }
                Error::Queue(_) | Error::ItemInterpreterDestroyed | Error::NotShareable(_)
                    if state.is_some_and(|st| st.xi.queue_type.get().is_null()) =>
                {
                    // The classes are registered on first use of the queue layer: load it
                    // (if that fails, the built-in fallbacks below are raised).
                    let st = state.expect("checked by the guard");
                    if !st.ensure_queue_classes() {
                        ffi::PyErr_Clear();
                    }
                    let registered = !st.xi.queue_type.get().is_null();
                    self.restore(if registered { state } else { None });
                }
                Error::Queue(err) => {
                    let xi = state.map(|st| &st.xi);
                    let pick = |f: fn(&crate::state::XiClasses) -> *mut ffi::PyObject| {
                        xi.map(f)
                            .filter(|c| !c.is_null())
                            .unwrap_or(ffi::PyExc_RuntimeError)
                    };
                    let cls = match err {
                        QueueError::NotFound(_) | QueueError::Destroyed(_) => {
                            pick(|x| x.queue_not_found.get())
                        }
                        QueueError::Empty(_) => pick(|x| x.queue_empty.get()),
                        QueueError::Full(_) => pick(|x| x.queue_full.get()),
                        QueueError::TimedOut(_)
                        | QueueError::Cancelled(_)
                        | QueueError::IdsExhausted => pick(|x| x.queue_error.get()),
                    };
                    set_string(cls, &err.to_string());
                }
                Error::QueueTimedOut { id, put } => {
                    let err = if put {
                        QueueError::Full(id)
                    } else {
                        QueueError::Empty(id)
                    };
                    Error::Queue(err).restore(state);
                }
                Error::ItemInterpreterDestroyed => {
                    let cls = state
                        .map(|st| st.xi.item_interp_destroyed.get())
                        .filter(|c| !c.is_null())
                        .unwrap_or(ffi::PyExc_RuntimeError);
                    set_string(cls, "item's original interpreter destroyed");
                }
                Error::NotShareable(m) => {
                    let cls = state
                        .map(|st| st.xi.not_shareable.get())
                        .filter(|c| !c.is_null())
                        .unwrap_or(ffi::PyExc_ValueError);
                    set_string(cls, &m);
                }
            }
        }
    }
}

/// Raises `RunFailedError(message)` with `type_name` and `traceback` attributes.
///
/// # Safety
/// The current thread must hold the GIL of the interpreter `state` belongs to.
unsafe fn raise_run_failed(state: Option<&ModState>, remote: RemoteException) {
    let cls = state.map_or(
        // SAFETY: reading a builtin exception class's address.
        unsafe { ffi::PyExc_RuntimeError },
        |st| st.run_failed_error,
    );
    let attrs = [
        (c"type_name", remote.type_name.as_str()),
        (c"traceback", remote.traceback.as_str()),
    ];
    // SAFETY: GIL held (contract); `cls` a builtin class or one the state keeps alive.
    unsafe { raise_with_attrs(cls, &remote.message, &attrs) };
}

/// Raises `cls(message)` with the given `str` attributes set on the instance. If building it
/// fails, that failure is the exception raised instead.
///
/// # Safety
/// The current thread must hold the GIL; `cls` must be an exception class whose instances
/// take attributes.
unsafe fn raise_with_attrs(cls: *mut ffi::PyObject, message: &str, attrs: &[(&CStr, &str)]) {
    let new_str = |text: &str| {
        // SAFETY: GIL held (contract); a valid UTF-8 buffer of the given length.
        unsafe {
            ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as ffi::Py_ssize_t)
        }
    };
    // SAFETY: (whole body) GIL held by contract; every pointer is checked for NULL before use
    // and each new reference is released exactly once.
    unsafe {
        let msg = new_str(message);
        if msg.is_null() {
            return;
        }
        let exc = ffi::PyObject_CallOneArg(cls, msg);
        ffi::Py_DECREF(msg);
        if exc.is_null() {
            return;
        }
        for &(name, value) in attrs {
            let text = new_str(value);
            if text.is_null() || ffi::PyObject_SetAttrString(exc, name.as_ptr(), text) < 0 {
                ffi::Py_XDECREF(text);
                ffi::Py_DECREF(exc);
                return;
            }
            ffi::Py_DECREF(text);
        }
        ffi::PyErr_SetObject(cls, exc);
        ffi::Py_DECREF(exc);
    }
}
