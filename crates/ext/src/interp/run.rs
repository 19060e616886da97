//! Executing a script inside the target interpreter and turning its failure into data.
//!
//! Everything here runs while the target interpreter is current (inside `tstate::enter`): it
//! takes Rust data in (script, shared values) and gives Rust data out, so no object crosses.

use std::ffi::CString;

use pyo3_ffi as ffi;
use subinterpreters_core::Value;

use crate::error::{Error, RemoteException, Result};
use crate::py::pyref::PyRef;
use crate::py::text::{str_lossy, text_of};
use crate::py::version;
use crate::values::convert::from_value;

/// A script and its `shared` values, converted in the caller's interpreter.
pub struct Job {
    /// UTF-8 source without NULs.
    pub script: CString,
    /// `__main__` names (cut at any NUL, as 3.11 does) and their values.
    pub shared: Vec<(CString, Value)>,
}

/// Runs `job` in the current interpreter's `__main__`: applies `shared`, compiles, executes.
///
/// # Safety
/// The target interpreter must be current, on a thread state with no frame, holding its GIL.
pub unsafe fn execute(job: Job) -> Result<()> {
    // SAFETY: (whole body) GIL held in the target; borrowed pointers (the `__main__` module and
    // its dict) stay valid because `sys.modules` keeps `__main__` alive during the call.
    unsafe {
        let ns = main_dict()?;
        for (name, value) in job.shared {
            // Channel values need this interpreter's module state: found by import there.
            let obj = match from_value(value, None) {
                Ok(obj) => obj,
                Err(Error::Raised) => {
                    return Err(capture(false).into_runtime("failed to share value"))
                }
                Err(err) => return Err(err),
            };
            if ffi::PyDict_SetItemString(ns, name.as_ptr(), obj.as_ptr()) < 0 {
                return Err(capture(false).into_runtime("failed to share value"));
            }
        }
        run_in_main(&job.script, ns)
    }
}

/// `__main__`'s dict (borrowed: `sys.modules` keeps `__main__` alive during a run).
///
/// # Safety
/// GIL held.
pub(super) unsafe fn main_dict() -> Result<*mut ffi::PyObject> {
    // SAFETY: GIL held (contract).
    unsafe {
        let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
        if main.is_null() {
            return Err(capture(false).into_runtime("failed to get __main__"));
        }
        Ok(ffi::PyModule_GetDict(main))
    }
}

/// Compiles `script` (cached) and executes it with `ns` as globals and locals; a failure is
/// captured as `RunFailed`.
///
/// # Safety
/// GIL held; `ns` a live dict of the current interpreter.
unsafe fn run_in_main(script: &CString, ns: *mut ffi::PyObject) -> Result<()> {
    // SAFETY: GIL held (contract); the result is owned by PyRef.
    unsafe {
        let code = compile(script)?;
        let res = ffi::PyEval_EvalCode(code.as_ptr(), ns, ns);
        if res.is_null() {
            return Err(Error::RunFailed(capture(false)));
        }
        drop(PyRef::from_owned(res));
        Ok(())
    }
}

/// Runs `script` in the current interpreter's `__main__` with `item` (a queue item, converted
/// here with this interpreter's classes) bound to `name` there: the body of `_serve_queue`.
///
/// Whatever is bound to `name` when the script ends is unbound and returned (as a value; `None`
/// if nothing is, or it cannot cross): that is how the script hands something back. On
/// failure, the item comes back the same way if the script had not taken it over yet. The
/// item cannot come back from a failure to build it here in the first place.
///
/// # Safety
/// The target interpreter must be current, on a thread state with no frame, holding its GIL.
pub unsafe fn execute_item(
    script: &CString,
    name: &std::ffi::CStr,
    item: Value,
) -> std::result::Result<Option<Value>, (Option<Value>, Error)> {
    // SAFETY: (whole body) GIL held in the target; borrowed pointers (`__main__`, its dict, the
    // imported module) stay valid while `sys.modules` holds them during the call.
    unsafe {
        let ns = main_dict().map_err(|err| (None, err))?;
        let module = match PyRef::from_owned(ffi::PyImport_ImportModule(
            c"subinterpreters.lowlevel".as_ptr(),
        )) {
            Ok(m) => m,
            Err(_) => return Err((None, capture(false).into_runtime("failed to share value"))),
        };
        let state = crate::state::state_of_module(module.as_ptr());
        let obj = match crate::values::xi::from_xi(item, state) {
            Ok(obj) => obj,
            Err(Error::Raised) => {
                return Err((None, capture(false).into_runtime("failed to share value")))
            }
            Err(err) => return Err((None, err)),
        };
        if ffi::PyDict_SetItemString(ns, name.as_ptr(), obj.as_ptr()) < 0 {
            return Err((None, capture(false).into_runtime("failed to share value")));
        }
        drop(obj);
        let ran = run_in_main(script, ns);
        let left = take_back(ns, name, state);
        match ran {
            Ok(()) => Ok(left),
            Err(err) => Err((left, err)),
        }
    }
}

/// The object still bound to `name` in `ns`, unbound and turned back into a value; `None` if
/// the name is gone or the object cannot cross (any error is cleared).
///
/// # Safety
/// GIL held in the interpreter of `ns` and `state`; no exception pending.
unsafe fn take_back(
    ns: *mut ffi::PyObject,
    name: &std::ffi::CStr,
    state: &crate::state::ModState,
) -> Option<Value> {
    // SAFETY: GIL held (contract); the borrowed item is owned by `PyRef` before the dict lets
    // go of it.
    unsafe {
        let found = ffi::PyDict_GetItemString(ns, name.as_ptr());
        if found.is_null() {
            return None;
        }
        let obj = PyRef::from_borrowed(found);
        if ffi::PyDict_DelItemString(ns, name.as_ptr()) < 0 {
            ffi::PyErr_Clear();
        }
        let value = crate::values::xi::to_xi(obj.as_ptr(), state, true).ok();
        ffi::PyErr_Clear();
        value
    }
}

/// Scripts longer than this are compiled every time rather than cached.
const CACHE_MAX_SCRIPT: usize = 16 * 1024;
/// The cache is emptied when it reaches this many entries.
const CACHE_MAX_ENTRIES: ffi::Py_ssize_t = 256;

/// Compiles `script` as a module (filename `<string>`), reusing the code object from an earlier
/// run of the same source in this interpreter.
///
/// Parsing dominates the cost of running a short script; a code object is immutable and
/// executing it again in the same namespace is what compiling the source anew would do. The
/// cache is a dict in the interpreter's own state dict (`PyInterpreterState_GetDict`, invisible
/// to Python code), so it belongs to that interpreter and dies with it.
///
/// # Safety
/// The target interpreter must be current, holding its GIL.
unsafe fn compile(script: &CString) -> Result<PyRef> {
    // SAFETY: (whole body) GIL held in the target; borrowed references (the state dict, the
    // cache) are kept alive by the interpreter's state dict for the duration of this call.
    unsafe {
        let bytes = script.as_bytes();
        let cache = if bytes.len() <= CACHE_MAX_SCRIPT {
            code_cache()
        } else {
            None
        };
        let key = match cache {
            Some(_) => PyRef::from_owned(ffi::PyUnicode_FromStringAndSize(
                bytes.as_ptr().cast(),
                bytes.len() as ffi::Py_ssize_t,
            ))
            .ok(),
            None => None,
        };
        ffi::PyErr_Clear();
        if let (Some(cache), Some(key)) = (cache, &key) {
            let hit = ffi::PyDict_GetItemWithError(cache, key.as_ptr());
            if !hit.is_null() {
                return Ok(PyRef::from_borrowed(hit));
            }
            ffi::PyErr_Clear();
        }
        let code = ffi::Py_CompileStringExFlags(
            script.as_ptr(),
            c"<string>".as_ptr(),
            ffi::Py_file_input,
            std::ptr::null_mut(),
            -1,
        );
        if code.is_null() {
            return Err(Error::RunFailed(capture(true)));
        }
        let code = PyRef::from_owned(code)?;
        if let (Some(cache), Some(key)) = (cache, &key) {
            if ffi::PyDict_Size(cache) >= CACHE_MAX_ENTRIES {
                ffi::PyDict_Clear(cache);
            }
            if ffi::PyDict_SetItem(cache, key.as_ptr(), code.as_ptr()) < 0 {
                ffi::PyErr_Clear();
            }
        }
        Ok(code)
    }
}

/// This interpreter's code cache (a borrowed dict), made on first use; `None` if unavailable.
///
/// # Safety
/// GIL held.
unsafe fn code_cache() -> Option<*mut ffi::PyObject> {
    // SAFETY: GIL held (contract).
    unsafe { state_dict_cache(c"subinterpreters.lowlevel.code_cache") }
}

/// The dict stored under `key` in this interpreter's own state dict (borrowed), made on first
/// use; `None` if unavailable. Such a cache belongs to that interpreter and dies with it.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn state_dict_cache(key: &std::ffi::CStr) -> Option<*mut ffi::PyObject> {
    // SAFETY: GIL held; the state dict owns the cache once stored.
    unsafe {
        let state = ffi::PyInterpreterState_GetDict(ffi::PyInterpreterState_Get());
        if state.is_null() {
            return None;
        }
        let found = ffi::PyDict_GetItemString(state, key.as_ptr());
        if !found.is_null() {
            return Some(found);
        }
        let fresh = PyRef::from_owned(ffi::PyDict_New()).ok()?;
        if ffi::PyDict_SetItemString(state, key.as_ptr(), fresh.as_ptr()) < 0 {
            ffi::PyErr_Clear();
            return None;
        }
        Some(fresh.as_ptr())
    }
}

impl RemoteException {
    fn into_runtime(self, what: &str) -> Error {
        Error::Runtime(format!("{what}: {}", self.message))
    }
}

/// Takes the pending exception and describes it: 3.11's message, type name, traceback.
///
/// `compiling` marks an exception from the compiler: 3.11 stored those unnormalized, with the
/// raw argument tuple as value, and its message shows that tuple; we reproduce it on 3.12+.
///
/// # Safety
/// An exception must be set; GIL held.
pub(super) unsafe fn capture(compiling: bool) -> RemoteException {
    // SAFETY: (whole body) GIL held; each reference taken is released by PyRef.
    unsafe {
        let Some(fetched) = version::fetch_exception() else {
            return RemoteException {
                message: "unknown error".into(),
                type_name: String::new(),
                traceback: String::new(),
            };
        };
        let tp = fetched.tp;
        let message = match (fetched.raw, &fetched.value) {
            // 3.11: the message comes from the value as raised.
            (Some(raw), _) => summary(tp.as_ptr(), raw.as_ref().map(PyRef::as_ptr)),
            (None, Some(exc)) => {
                let shown = if compiling
                    && ffi::PyErr_GivenExceptionMatches(tp.as_ptr(), ffi::PyExc_SyntaxError) != 0
                {
                    // 3.11 showed a compiler error's raw value: its argument tuple.
                    PyRef::from_owned(ffi::PyObject_GetAttrString(exc.as_ptr(), c"args".as_ptr()))
                        .ok()
                } else {
                    Some(PyRef::from_borrowed(exc.as_ptr()))
                };
                ffi::PyErr_Clear();
                summary(tp.as_ptr(), shown.as_ref().map(PyRef::as_ptr))
            }
            (None, None) => summary(tp.as_ptr(), None),
        };
        let traceback = match &fetched.value {
            Some(exc) => format_traceback(exc.as_ptr()),
            None => String::new(),
        };
        RemoteException {
            message,
            type_name: type_name_of(Some(&tp)),
            traceback,
        }
    }
}

/// 3.11's summary `"{str(type)}: {str(value)}"`, with its fallbacks when `str()` fails.
///
/// # Safety
/// GIL held; pointers live.
unsafe fn summary(tp: *mut ffi::PyObject, value: Option<*mut ffi::PyObject>) -> String {
    // SAFETY: GIL held; errors from str() are cleared here (they are part of the message).
    unsafe {
        let tname = if tp.is_null() {
            Err(Error::Raised)
        } else {
            text_of(tp, false)
        };
        let Ok(tname) = tname else {
            ffi::PyErr_Clear();
            return "unable to format exception type name".into();
        };
        match value {
            None => tname,
            Some(v) => match text_of(v, false) {
                Ok(msg) => format!("{tname}: {msg}"),
                Err(_) => {
                    ffi::PyErr_Clear();
                    "unable to format exception message".into()
                }
            },
        }
    }
}

/// `module.qualname` of an exception type (`ValueError` for builtins).
///
/// # Safety
/// GIL held.
unsafe fn type_name_of(tp: Option<&PyRef>) -> String {
    let Some(tp) = tp else { return String::new() };
    // SAFETY: GIL held; attribute lookups on a live type, errors cleared.
    unsafe {
        let get = |name: &std::ffi::CStr| -> Option<String> {
            let a =
                PyRef::from_owned(ffi::PyObject_GetAttrString(tp.as_ptr(), name.as_ptr())).ok()?;
            (ffi::PyUnicode_Check(a.as_ptr()) != 0).then(|| str_lossy(a.as_ptr()))
        };
        let qual = get(c"__qualname__");
        let module = get(c"__module__");
        ffi::PyErr_Clear();
        match (module, qual) {
            (Some(m), Some(q)) if m != "builtins" => format!("{m}.{q}"),
            (_, Some(q)) => q,
            _ => String::new(),
        }
    }
}

/// `"".join(traceback.format_exception(exc))`, or an empty string if that fails.
///
/// # Safety
/// GIL held; `exc` a live exception instance.
unsafe fn format_traceback(exc: *mut ffi::PyObject) -> String {
    // SAFETY: GIL held; every new reference is owned by PyRef; a failure is cleared.
    unsafe {
        let result = (|| -> Result<String> {
            let tb = PyRef::from_owned(ffi::PyImport_ImportModule(c"traceback".as_ptr()))?;
            let func = PyRef::from_owned(ffi::PyObject_GetAttrString(
                tb.as_ptr(),
                c"format_exception".as_ptr(),
            ))?;
            let lines = PyRef::from_owned(ffi::PyObject_CallOneArg(func.as_ptr(), exc))?;
            let empty = PyRef::from_owned(ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0))?;
            let joined = PyRef::from_owned(ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))?;
            Ok(str_lossy(joined.as_ptr()))
        })();
        result.unwrap_or_else(|_| {
            ffi::PyErr_Clear();
            String::new()
        })
    }
}
