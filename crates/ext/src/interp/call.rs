//! `_call_code(id, fdata, akind, adata)`: the fast path of the call protocol
//! (`subinterpreters._protocol`) for its commonest call, a function that needs no state, sent
//! as its code, called with scalar arguments. It runs as `run_string` does (same ticket, same
//! checks, errors and running marks, `interrupt` reaches it) but serves the task itself, in
//! Rust: the function is rebuilt from its code with the target's `__main__` as globals, as the
//! protocol's own `_function` does, and called; a scalar result comes back as the protocol's
//! `(OK, result)` reply. So a call that returns normally imports nothing in the target: a fresh
//! interpreter's first call costs no import of this package there.
//!
//! What the fast path does not cover takes the protocol's own code, loaded in the target only
//! then: an exception the call raised is encoded by `_protocol.raised`, any other result by
//! `_protocol.result_reply` (pickled, or not shareable). Code that cannot be rebuilt as such a
//! function answers `None` before anything runs, and the caller takes the slow path: a call is
//! made exactly once either way.

use pyo3_ffi as ffi;
use subinterpreters_core::{Payload, Value};

use crate::error::{Error, Result};
use crate::id_slots::{id_arg, IdKind};
use crate::interp::api::{existing, run_in};
use crate::interp::run::{capture, main_dict, state_dict_cache};
use crate::py::args::int_arg;
use crate::py::pyref::PyRef;
use crate::py::text::bytes_slice;
use crate::py::trampoline::fast_entry;
use crate::py::version;
use crate::state::ModState;
use crate::values::{codec, xi};

/// The protocol's argument kinds and reply statuses (`_protocol.ARGS_*`, `SCRIPT`, `OK`,
/// `RAISED`), the ones this path takes or gives.
const ARGS_NONE: i64 = 0;
const ARGS_ONE: i64 = 1;
const ARGS_TUPLE: i64 = 2;
const SCRIPT: i64 = 5;
const OK: i64 = 0;
const RAISED: i64 = 2;

/// Built functions kept per interpreter, by their `fdata`, at most this many (as the protocol's
/// own cache): a function called again keeps its code object, and with it what the
/// interpreter has specialised in it.
const CACHE_MAX_ENTRIES: ffi::Py_ssize_t = 256;

/// What to do with the function once built.
enum Work {
    /// Call it with these arguments (scalars, see `xi::is_scalar`).
    Call(Vec<Value>),
    /// Run its code in `__main__`, as `exec` runs a code object.
    Script,
}

fast_entry!(
    /// `_call_code(id, fdata, akind, adata) -> (status, payload) | None` (see the module
    /// documentation).
    call_code, |state, fa| {
        let [id_obj, fdata, akind, adata] = fa.objects(
            4,
            c"OOOO:_call_code",
            &[c"id", c"fdata", c"akind", c"adata"],
            |_| true,
        )?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        existing(id)?;
        if ffi::PyBytes_CheckExact(fdata) == 0 || bytes_slice(fdata).first() != Some(&0) {
            return Err(Error::Value(
                "fdata must be a NUL and marshalled code".into(),
            ));
        }
        // Copied before switching: nothing of the caller's is read in the target.
        let fdata = bytes_slice(fdata).to_vec();
        let akind = int_arg(akind, "akind")?;
        let reply = run_in(
            id,
            || work(akind, adata, state),
            |work| execute(&fdata, work),
        )?;
        match reply {
            Some(reply) => Ok(xi::from_xi(reply, state)?.into_ptr()),
            None => Ok(ffi::Py_NewRef(ffi::Py_None())),
        }
    }
);

/// The arguments of kind `akind` as scalars, converted in the caller.
///
/// # Safety
/// GIL held; `state` of the current interpreter; `adata` live.
unsafe fn work(akind: i64, adata: *mut ffi::PyObject, state: &ModState) -> Result<Work> {
    // SAFETY: GIL held (contract); tuple items are borrowed while the tuple lives.
    unsafe {
        let scalar = |obj| match xi::to_xi(obj, state, false)? {
            v if xi::is_scalar(&v) => Ok(v),
            _ => Err(Error::Value("arguments must be scalars".into())),
        };
        Ok(match akind {
            ARGS_NONE => Work::Call(Vec::new()),
            ARGS_ONE => Work::Call(vec![scalar(adata)?]),
            ARGS_TUPLE if ffi::PyTuple_CheckExact(adata) != 0 => Work::Call(
                (0..ffi::PyTuple_GET_SIZE(adata))
                    .map(|i| scalar(ffi::PyTuple_GET_ITEM(adata, i)))
                    .collect::<Result<_>>()?,
            ),
            SCRIPT => Work::Script,
            _ => return Err(Error::Value(format!("unsupported call kind {akind}"))),
        })
    }
}

/// The call made in the current interpreter: the reply `(status, payload)` as a value (which
/// borrows nothing of this interpreter), or `None` if `fdata` cannot be rebuilt as a function
/// (nothing ran). A failure to encode the reply is the protocol's own failure: `RunFailed`,
/// as a task that could not be served.
///
/// # Safety
/// The target interpreter must be current, on a thread state with no frame, holding its GIL.
unsafe fn execute(fdata: &[u8], work: Work) -> Result<Option<Value>> {
    // SAFETY: (whole body) GIL held in the target; new references owned by PyRef; `ns` is
    // borrowed from `__main__`, which `sys.modules` keeps alive during the call.
    unsafe {
        let ns = main_dict()?;
        let Some(func) = function(fdata, ns).map_err(|e| failed(e))? else {
            return Ok(None);
        };
        let res = match work {
            Work::Script => ffi::PyEval_EvalCode(ffi::PyFunction_GetCode(func.as_ptr()), ns, ns),
            Work::Call(args) => {
                let n = args.len();
                let mut objs = Vec::with_capacity(n);
                for arg in args {
                    objs.push(xi::from_scalar(arg).map_err(|e| failed(e))?);
                }
                let ptrs: Vec<_> = objs.iter().map(PyRef::as_ptr).collect();
                ffi::PyObject_Vectorcall(func.as_ptr(), ptrs.as_ptr(), n, std::ptr::null_mut())
            }
        };
        if res.is_null() {
            // The call raised: the protocol encodes its exception (loaded here only now).
            let exc = version::fetch_exception()
                .and_then(|f| f.value)
                .ok_or_else(|| Error::System("a call failed without an exception".into()))?;
            let payload = protocol(c"raised", exc.as_ptr())?;
            return Ok(Some(Value::Tuple(vec![Value::Int(RAISED), payload])));
        }
        let res = PyRef::from_owned(res)?;
        match xi::copy_scalar(res.as_ptr()).map_err(|e| failed(e))? {
            Some(value) => Ok(Some(Value::Tuple(vec![Value::Int(OK), value]))),
            None => protocol(c"result_reply", res.as_ptr()).map(Some),
        }
    }
}

/// `Error::Raised` (an exception pending in the target) as the `RunFailed` it is for the
/// caller; other errors are data already.
///
/// # Safety
/// GIL held in the target.
unsafe fn failed(err: Error) -> Error {
    match err {
        // SAFETY: GIL held (contract); an exception is pending.
        Error::Raised => Error::RunFailed(unsafe { capture(false) }),
        other => other,
    }
}

/// `_protocol.<name>(obj)` in the current interpreter, encoded as a value with the native
/// codec (a copy: the value outlives this visit).
///
/// # Safety
/// GIL held in the target; `obj` live; no exception pending.
unsafe fn protocol(name: &std::ffi::CStr, obj: *mut ffi::PyObject) -> Result<Value> {
    // SAFETY: GIL held (contract); new references owned by PyRef.
    let out = unsafe {
        (|| -> Result<Option<Vec<u8>>> {
            let module = PyRef::from_owned(ffi::PyImport_ImportModule(
                c"subinterpreters._protocol".as_ptr(),
            ))?;
            let func =
                PyRef::from_owned(ffi::PyObject_GetAttrString(module.as_ptr(), name.as_ptr()))?;
            let out = PyRef::from_owned(ffi::PyObject_CallOneArg(func.as_ptr(), obj))?;
            codec::encode(out.as_ptr(), false)
        })()
    };
    // SAFETY: GIL held in the target (contract).
    match unsafe { out.map_err(|e| failed(e)) }? {
        Some(data) => Ok(Value::Native(Payload::from_vec(data))),
        None => Err(Error::System(format!(
            "_protocol.{} gave a reply that is not plain data",
            name.to_string_lossy()
        ))),
    }
}

/// The function `fdata` (NUL + marshalled code) stands for, bound to `ns` (`__main__`'s
/// dict), as the protocol's `_function` builds it; reused from this interpreter's cache when
/// built before. `None` if the data is not the code of a function that needs no closure.
///
/// # Safety
/// GIL held in the target; `ns` a live dict of it.
unsafe fn function(fdata: &[u8], ns: *mut ffi::PyObject) -> Result<Option<PyRef>> {
    // SAFETY: (whole body) GIL held (contract); new references owned by PyRef; the cache is
    // borrowed from the interpreter's state dict, which keeps it during this call.
    unsafe {
        let cache = state_dict_cache(c"subinterpreters.lowlevel.function_cache");
        let key = PyRef::from_owned(ffi::PyBytes_FromStringAndSize(
            fdata.as_ptr().cast(),
            fdata.len() as ffi::Py_ssize_t,
        ))?;
        if let Some(cache) = cache {
            let hit = ffi::PyDict_GetItemWithError(cache, key.as_ptr());
            if !hit.is_null() {
                return Ok(Some(PyRef::from_borrowed(hit)));
            }
            ffi::PyErr_Clear();
        }
        let code = &fdata[1..];
        let code = ffi::PyMarshal_ReadObjectFromString(
            code.as_ptr().cast(),
            code.len() as ffi::Py_ssize_t,
        );
        let Ok(code) = PyRef::from_owned(code) else {
            ffi::PyErr_Clear();
            return Ok(None);
        };
        if ffi::PyCode_Check(code.as_ptr()) == 0 || has_free_vars(code.as_ptr()) {
            ffi::PyErr_Clear();
            return Ok(None);
        }
        let func = PyRef::from_owned(ffi::PyFunction_New(code.as_ptr(), ns))?;
        if let Some(cache) = cache {
            if ffi::PyDict_Size(cache) >= CACHE_MAX_ENTRIES {
                ffi::PyDict_Clear(cache);
            }
            if ffi::PyDict_SetItem(cache, key.as_ptr(), func.as_ptr()) < 0 {
                ffi::PyErr_Clear();
            }
        }
        Ok(Some(func))
    }
}

/// Whether `code` needs a closure (or its free variables cannot be read): a function made
/// without one would read cells that are not there.
///
/// # Safety
/// GIL held; `code` a live code object.
unsafe fn has_free_vars(code: *mut ffi::PyObject) -> bool {
    // SAFETY: GIL held (contract); an attribute read of a live object.
    unsafe {
        match PyRef::from_owned(ffi::PyObject_GetAttrString(code, c"co_freevars".as_ptr())) {
            Ok(free) => {
                ffi::PyTuple_Check(free.as_ptr()) == 0 || ffi::PyTuple_GET_SIZE(free.as_ptr()) != 0
            }
            Err(_) => true,
        }
    }
}
