//! The `_queue_*` functions: argument checks, conversion of items, and the interruptible
//! blocking loop around the core's `put`/`get`.

use std::ffi::c_long;
use std::time::Duration;

use pyo3_ffi as ffi;
use subinterpreters_core::queue::{
    self, Cancel, Fallback, QueueDefaults, QueueRef, Received, UnboundOp, Wait, Wake,
};
use subinterpreters_core::{QueueError, Value};

use crate::error::{Error, Result};
use crate::interp::interrupt::Waiting;
use crate::py::args::{int_arg, positional, FastArgs};
use crate::py::pyref::PyRef;
use crate::py::text::type_name;
use crate::py::trampoline::{fast_entry, noargs_entry};
use crate::py::tstate;
use crate::state::ModState;
use crate::values::xi::{from_xi, is_shareable, to_xi};

/// How long a blocked call waits between checks for signals (Ctrl-C), with the GIL released.
/// Items, free space and destruction wake it at once; this only bounds the signal latency.
pub(super) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The wait a `block`/`timeout` pair asks for (float seconds, on the monotonic clock); NULL
/// (not given) means `block=True`, `timeout=None`.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn wait_arg(
    block: *mut ffi::PyObject,
    timeout: *mut ffi::PyObject,
) -> Result<Wait> {
    // SAFETY: GIL held; plain conversions.
    unsafe {
        if !block.is_null() {
            let block = ffi::PyObject_IsTrue(block);
            if block < 0 {
                return Err(Error::Raised);
            }
            if block == 0 {
                return Ok(Wait::NoWait);
            }
        }
        if timeout.is_null() || timeout == ffi::Py_None() {
            return Ok(Wait::Forever);
        }
        let secs = ffi::PyFloat_AsDouble(timeout);
        if secs == -1.0 && !ffi::PyErr_Occurred().is_null() {
            return Err(Error::Raised);
        }
        if secs.is_nan() || secs < 0.0 {
            return Err(Error::Value("timeout value must be non-negative".into()));
        }
        Ok(Wait::timeout(Duration::try_from_secs_f64(secs).ok()))
    }
}

fn unbound_arg(flag: i64) -> Result<Option<UnboundOp>> {
    if flag == 0 {
        return Ok(None);
    }
    UnboundOp::from_flag(flag)
        .map(Some)
        .ok_or_else(|| Error::Value(format!("unsupported unbound op {flag}")))
}

/// Runs `attempt` with the GIL released, in slices of [`SIGNAL_CHECK`], until it succeeds,
/// fails (`Err((_, Some(err)))`) or the wait runs out (`timed_out`); `Err((state, None))` means
/// "this slice timed out, retry with `state`" and is when a signal handler may raise. An
/// interrupt of this thread's run cuts the wait short: `attempt` gives its `Cancel` to the core,
/// which then fails with `Cancelled`, and the interrupt is raised.
///
/// # Safety
/// GIL held on the current thread state.
pub(super) unsafe fn blocking<S, T>(
    wait: Wait,
    mut state: S,
    mut attempt: impl FnMut(S, Wait, &Cancel) -> std::result::Result<T, (S, Option<Error>)>,
    timed_out: Error,
) -> Result<T> {
    // SAFETY: GIL held (contract).
    let waiting = unsafe { Waiting::begin()? };
    loop {
        let slice = wait.capped(SIGNAL_CHECK);
        // SAFETY: GIL held (contract); nothing Python is touched while it is released (the
        // attempt works on Rust data only).
        let result = unsafe { tstate::detached(|| attempt(state, slice, waiting.cancel())) };
        match result {
            Ok(v) => return Ok(v),
            Err((_, Some(Error::Queue(QueueError::Cancelled(_))))) => {
                // SAFETY: GIL held again, on the thread that began the wait.
                return Err(unsafe { waiting.raise() });
            }
            Err((_, Some(err))) => return Err(err),
            Err((s, None)) => {
                if wait.is_expired() {
                    return Err(timed_out);
                }
                // SAFETY: GIL held again.
                if unsafe { ffi::PyErr_CheckSignals() } < 0 {
                    return Err(Error::Raised);
                }
                state = s;
            }
        }
    }
}

fast_entry!(
    /// `_queue_register(Queue, QueueError, QueueNotFoundError, QueueEmpty, QueueFull,
    /// ItemInterpreterDestroyed, NotShareableError, UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE)`:
    /// the classes this interpreter's `subinterpreters.interpreters` defined, for the queue
    /// functions to build and raise, and its three `unbounditems` markers, which
    /// `Queue.put` maps to flags and `Queue.get` returns (UNBOUND).
    queue_register, |state, fa| {
        let given = positional(&fa, "_queue_register", 10, 10)?;
        let xi = &state.xi;
        let slots = [
            &xi.queue_type,
            &xi.queue_error,
            &xi.queue_not_found,
            &xi.queue_empty,
            &xi.queue_full,
            &xi.item_interp_destroyed,
            &xi.not_shareable,
            &xi.unbound,
            &xi.unbound_error,
            &xi.unbound_remove,
        ];
        for &obj in &given[..7] {
            if ffi::PyType_Check(obj) == 0 {
                return Err(Error::Type(format!(
                    "_queue_register() expects classes, got {}",
                    type_name(obj)
                )));
            }
        }
        for (slot, &obj) in slots.into_iter().zip(given) {
            // The old object is released after the new one is stored.
            ffi::Py_XDECREF(slot.replace(ffi::Py_NewRef(obj)));
        }
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

fast_entry!(
    /// `_queue_create(maxsize, unbound, fallback, unlisted=False) -> id`: a new queue, with one
    /// binding held by the caller (released by `_queue_release`); `unlisted` leaves it out of
    /// `_queue_list_all` (the package's own call queues).
    queue_create, |_state, fa| {
        let args = positional(&fa, "_queue_create", 3, 4)?;
        let (maxsize, unbound, fallback) = (args[0], args[1], args[2]);
        // A true fourth argument: one of the package's own call queues, not listed.
        let unlisted = match args.get(3) {
            Some(&flag) => ffi::PyObject_IsTrue(flag) == 1,
            None => false,
        };
        let maxsize = int_arg(maxsize, "maxsize")?;
        let unbound = unbound_arg(int_arg(unbound, "unbounditems")?)?.unwrap_or(UnboundOp::Replace);
        let fallback_flag = int_arg(fallback, "fallback")?;
        let fallback = Fallback::from_flag(fallback_flag)
            .ok_or_else(|| Error::Value(format!("unsupported fallback {fallback_flag}")))?;
        let defaults = QueueDefaults { unbound, fallback };
        let handle = if unlisted {
            queue::create_unlisted(maxsize, defaults)
        } else {
            queue::create(maxsize, defaults)
        }
        .map_err(Error::Queue)?;
        let id = handle.id();
        // The caller's binding replaces the creation handle.
        queue::bind(id).map_err(Error::Queue)?;
        drop(handle);
        Ok(ffi::PyLong_FromLongLong(id))
    }
);

/// One queue-id argument, with the registry operation `op` applied to it.
///
/// # Safety
/// GIL held.
unsafe fn with_id(
    fa: &FastArgs,
    name: &str,
    op: impl FnOnce(i64) -> std::result::Result<(), QueueError>,
) -> Result<*mut ffi::PyObject> {
    // SAFETY: GIL held (contract).
    unsafe {
        let [qid] = <[_; 1]>::try_from(positional(fa, name, 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        op(int_arg(qid, "queue ID")?).map_err(Error::Queue)?;
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
}

fast_entry!(
    /// `_queue_destroy(id)`: destroys the queue whatever its bindings; waiters wake.
    queue_destroy, |_state, fa| { with_id(&fa, "_queue_destroy", queue::destroy) }
);

fast_entry!(
    /// `_queue_bind(id)`: one more binding (a `Queue` object in some interpreter).
    queue_bind, |_state, fa| { with_id(&fa, "_queue_bind", queue::bind) }
);

fast_entry!(
    /// `_queue_release(id)`: one binding less; the last one destroys the queue.
    queue_release, |_state, fa| { with_id(&fa, "_queue_release", |id| queue::release(id).map(|_| ())) }
);

/// Adds `obj` to the queue behind `handle` (natively shareable, else pickled if the queue's
/// fallback allows), waiting for room as `wait` says: the body of `_queue_put` and of
/// `Queue.put`.
///
/// # Safety
/// GIL held; `state` belongs to the current interpreter.
pub(super) unsafe fn put(
    state: &ModState,
    handle: &QueueRef,
    obj: *mut ffi::PyObject,
    unbound: Option<UnboundOp>,
    wait: Wait,
) -> Result<()> {
    let pickle = handle.defaults().fallback == Fallback::Full;
    // SAFETY: GIL held (contract).
    let value = unsafe { to_xi(obj, state, pickle)? };
    // SAFETY: GIL held (contract), so a thread state is current.
    let owner = unsafe { tstate::interp_id(tstate::current_interp()) };
    // First without giving up the GIL: the common case never blocks.
    let value = match handle.put(value, owner, unbound, Wait::NoWait) {
        Ok(()) => return Ok(()),
        Err(e) if matches!(e.error, QueueError::Full(_)) && wait != Wait::NoWait => e.into_value(),
        Err(e) => return Err(Error::Queue(e.error)),
    };
    let id = handle.id();
    // SAFETY: GIL held (contract); the attempt touches Rust data only.
    unsafe {
        blocking(
            wait,
            value,
            |value: Value, slice, cancel: &Cancel| match handle
                .put_cancellable(value, owner, unbound, slice, cancel)
            {
                Ok(()) => Ok(()),
                Err(e) => match e.error {
                    QueueError::Full(_) | QueueError::TimedOut(_) => Err((e.into_value(), None)),
                    other => Err((e.into_value(), Some(Error::Queue(other)))),
                },
            },
            Error::QueueTimedOut { id, put: true },
        )
    }
}

/// Takes the oldest item from the queue behind `handle`, waiting for one as `wait` says: the
/// body of `_queue_get` and of `Queue.get`. `Ok(None)` is an item whose interpreter was
/// destroyed under the UNBOUND rule; under UNBOUND_ERROR it raises `ItemInterpreterDestroyed`.
///
/// # Safety
/// GIL held; `state` belongs to the current interpreter.
pub(super) unsafe fn get(state: &ModState, handle: &QueueRef, wait: Wait) -> Result<Option<PyRef>> {
    // SAFETY: forwarded contract.
    unsafe { get_owing(state, handle, wait, None) }
}

/// [`get`], first delivering `owed` (the wake-ups of a quiet put): at once if an item is there
/// already, else right after the GIL is released to wait, so that whoever it wakes does not
/// wake only to wait for the GIL we hold (on 3.11 every interpreter shares it).
///
/// # Safety
/// As for [`get`].
unsafe fn get_owing(
    state: &ModState,
    handle: &QueueRef,
    wait: Wait,
    mut owed: Option<Wake<'_>>,
) -> Result<Option<PyRef>> {
    let id = handle.id();
    let first = handle.get(Wait::NoWait);
    if !matches!(first, Err(QueueError::Empty(_))) || wait == Wait::NoWait {
        if let Some(owed) = owed.take() {
            owed.wake();
        }
    }
    let received = match first {
        Ok(r) => r,
        // SAFETY: GIL held (contract); the attempt touches Rust data only.
        Err(QueueError::Empty(_)) if wait != Wait::NoWait => unsafe {
            blocking(
                wait,
                (),
                |(), slice, cancel: &Cancel| {
                    if let Some(owed) = owed.take() {
                        owed.wake();
                    }
                    match handle.get_cancellable(slice, cancel) {
                        Ok(r) => Ok(r),
                        Err(QueueError::Empty(_) | QueueError::TimedOut(_)) => Err(((), None)),
                        Err(other) => Err(((), Some(Error::Queue(other)))),
                    }
                },
                Error::QueueTimedOut { id, put: false },
            )?
        },
        Err(e) => return Err(Error::Queue(e)),
    };
    match received {
        // SAFETY: GIL held (contract).
        Received::Value(v) => Ok(Some(unsafe { from_xi(v, state)? })),
        Received::Unbound => Ok(None),
        Received::InterpreterDestroyed => Err(Error::ItemInterpreterDestroyed),
    }
}

fast_entry!(
    /// `_queue_put(id, obj, unbound, block, timeout)`: adds `obj` (natively shareable, else
    /// pickled if the queue's fallback allows), waiting for room as `block`/`timeout` say.
    queue_put, |state, fa| {
        let [qid, obj, unbound, block, timeout] =
            <[_; 5]>::try_from(positional(&fa, "_queue_put", 5, 5)?)
                .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(qid, "queue ID")?;
        let unbound = unbound_arg(int_arg(unbound, "unbounditems")?)?;
        let wait = wait_arg(block, timeout)?;
        let handle = QueueRef::open(id).map_err(Error::Queue)?;
        put(state, &handle, obj, unbound, wait)?;
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    }
);

fast_entry!(
    /// `_queue_get(id, block, timeout) -> (obj, None) | (None, unbound)`: takes the oldest
    /// item, waiting for one as `block`/`timeout` say. An item whose interpreter was destroyed
    /// comes back as `(None, 3)` (UNBOUND) or raises `ItemInterpreterDestroyed`.
    queue_get, |state, fa| {
        let [qid, block, timeout] = <[_; 3]>::try_from(positional(&fa, "_queue_get", 3, 3)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let id = int_arg(qid, "queue ID")?;
        let wait = wait_arg(block, timeout)?;
        let handle = QueueRef::open(id).map_err(Error::Queue)?;
        let received = get(state, &handle, wait);
        drop(handle);
        got_pair(received?)
    }
);

/// What `_queue_get` returns for an item: `(obj, None)`, or `(None, 3)` for an UNBOUND one.
///
/// # Safety
/// GIL held.
unsafe fn got_pair(received: Option<PyRef>) -> Result<*mut ffi::PyObject> {
    // SAFETY: (whole body) GIL held; new references owned by PyRef until the tuple takes them.
    unsafe {
        let (obj, op) = match received {
            Some(obj) => (obj, PyRef::from_borrowed(ffi::Py_None())),
            None => (
                PyRef::from_borrowed(ffi::Py_None()),
                PyRef::from_owned(ffi::PyLong_FromLong(UnboundOp::Replace.flag() as c_long))?,
            ),
        };
        let pair = PyRef::from_owned(ffi::PyTuple_New(2))?;
        ffi::PyTuple_SET_ITEM(pair.as_ptr(), 0, obj.into_ptr());
        ffi::PyTuple_SET_ITEM(pair.as_ptr(), 1, op.into_ptr());
        Ok(pair.into_ptr())
    }
}

fast_entry!(
    /// `_queue_put_get(put_id, obj, get_id) -> (obj, None) | (None, unbound)`: a worker's
    /// "answer, then wait for the next task": `_queue_put(put_id, obj, 0, False, None)` then
    /// `_queue_get(get_id, True, None)`, except that the put wakes its reader only once this
    /// thread has released its GIL to wait (or right away if a task is already there). An
    /// answer for a queue that is gone is dropped: nobody waits for it.
    queue_put_get, |state, fa| {
        let [pid, obj, gid] = <[_; 3]>::try_from(positional(&fa, "_queue_put_get", 3, 3)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let pid = int_arg(pid, "queue ID")?;
        let gid = int_arg(gid, "queue ID")?;
        let source = QueueRef::open(gid).map_err(Error::Queue)?;
        let target = QueueRef::open(pid).ok();
        let owed = match &target {
            Some(target) => {
                let value = to_xi(obj, state, target.defaults().fallback == Fallback::Full)?;
                let owner = tstate::interp_id(tstate::current_interp());
                match target.put_quiet(value, owner, None, Wait::NoWait) {
                    Ok(owed) => Some(owed),
                    Err(e) if matches!(e.error, QueueError::Destroyed(_)) => None,
                    Err(e) => return Err(Error::Queue(e.error)),
                }
            }
            None => None,
        };
        let received = get_owing(state, &source, Wait::Forever, owed);
        drop((source, target));
        got_pair(received?)
    }
);

fast_entry!(
    /// `_queue_qsize(id) -> int`
    queue_qsize, |_state, fa| {
        let [qid] = <[_; 1]>::try_from(positional(&fa, "_queue_qsize", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let handle = QueueRef::open(int_arg(qid, "queue ID")?).map_err(Error::Queue)?;
        let n = handle.qsize().map_err(Error::Queue)?;
        Ok(ffi::PyLong_FromSize_t(n))
    }
);

fast_entry!(
    /// `_queue_info(id) -> (maxsize, unbound, fallback)`
    queue_info, |_state, fa| {
        let [qid] = <[_; 1]>::try_from(positional(&fa, "_queue_info", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        let info = queue::info(int_arg(qid, "queue ID")?).map_err(Error::Queue)?;
        let t = PyRef::from_owned(ffi::PyTuple_New(3))?;
        for (i, v) in [info.maxsize, info.defaults.unbound.flag(), info.defaults.fallback.flag()]
            .into_iter()
            .enumerate()
        {
            let item = PyRef::from_owned(ffi::PyLong_FromLongLong(v))?;
            ffi::PyTuple_SET_ITEM(t.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
        }
        Ok(t.into_ptr())
    }
);

noargs_entry!(
    /// `_queue_list_all() -> [(id, unbound, fallback)]`, newest first.
    queue_list_all, |_state| {
        let items = queue::list_all().into_iter().map(|(id, d)| {
            let t = PyRef::from_owned(ffi::PyTuple_New(3))?;
            for (i, v) in [id, d.unbound.flag(), d.fallback.flag()].into_iter().enumerate() {
                let item = PyRef::from_owned(ffi::PyLong_FromLongLong(v))?;
                ffi::PyTuple_SET_ITEM(t.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(t)
        });
        let items: Vec<Result<PyRef>> = items.collect();
        Ok(crate::py::pyref::new_list(items.into_iter())?.into_ptr())
    }
);

fast_entry!(
    /// `_xi_is_shareable(obj) -> bool`: whether `obj` crosses natively (no pickle).
    xi_is_shareable, |state, fa| {
        let [obj] = <[_; 1]>::try_from(positional(&fa, "_xi_is_shareable", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        Ok(ffi::PyBool_FromLong(is_shareable(obj, state)?.into()))
    }
);
