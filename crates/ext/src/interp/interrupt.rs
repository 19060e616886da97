//! `interrupt(id, exc)`: raising an exception asynchronously in the code a run of ours is
//! executing in another interpreter, and making the blocking waits of our queues give way to it;
//! and the same for one claimed task only (`_claim_interrupt`, see [`interrupt_claim`]).
//!
//! ```text
//! INTERRUPTS: Mutex<Interrupts>                  process-global; lock order: INTERPS, then this,
//! │                                              then the core's claims STATE
//! ├── owed: BTreeMap<interp id, Owed>            an interrupt not delivered yet (at most one per
//! │                                              interpreter: a later one replaces its exception)
//! │   └── Owed { runner OS thread, exc (a static type), token of the pending call asked for,
//! │              claim it is limited to (0: the whole run) }
//! ├── waiting: BTreeMap<(interp id, OS thread), Arc<Cancel>>
//! │                                              threads blocked in one of our queue waits there
//! └── struck: BTreeMap<(interp id, OS thread), claim>
//!                                                an exception set for a claim's task and maybe
//!                                                not raised yet (cleared when the task ends)
//! ```
//!
//! How an interrupt reaches the runner (the OS thread the registry records for the run):
//! - blocked in one of our queue waits (with its GIL released): its `Cancel` is cancelled, and
//!   the wait raises the exception itself ([`Waiting::raise`]);
//! - anywhere else, 3.12+: a pending call is queued for the interpreter, which it runs at its
//!   next check between bytecodes (within microseconds for Python code; when a blocking C call
//!   returns otherwise), and which calls `PyThreadState_SetAsyncExc` for the runner there;
//! - anywhere else, 3.11: we visit the interpreter (the one GIL is ours, so the runner is not
//!   executing) and call `PyThreadState_SetAsyncExc` for it; it raises once it has the GIL back.
//!
//! An interrupt owed when the run ends is dropped with it ([`run_ended`]), so it never reaches
//! a later run. Only static (non-heap) exception types are accepted: every interpreter shares
//! them, so the class object can be raised in the target as it is.
//!
//! A claimed task (a pool task, a `call_async` call) runs inside [`claim_scope`]'s call, which
//! records its runner with the core's claim (`claims::start`). An interrupt of that claim acts
//! only while the claim runs, checked under this lock, and is limited to it: when the task's
//! call returns, [`claim_scope`] drops what is still owed for the claim and clears an exception
//! set for it and not raised yet. So the interrupt strikes inside that call or not at all, never
//! the code around it, nor the task the same thread runs next.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_ulong, c_void};

use pyo3_ffi as ffi;
use subinterpreters_core::claims;
use subinterpreters_core::queue::Cancel;
use subinterpreters_core::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::id_slots::{id_arg, IdKind};
use crate::interp::registry;
use crate::py::text::{text_of, type_name};
use crate::py::trampoline::kw_entry;
use crate::py::tstate::{self, InterpPtr};
use crate::py::{args, version};

/// An interrupt not delivered yet.
struct Owed {
    runner: c_ulong,
    /// A static exception type (never freed), as an address.
    exc: usize,
    /// The token of the pending call queued for it (3.12+), 0 if none.
    token: u64,
    /// The claim whose task it is for (dropped when that task ends), 0 for the whole run.
    claim: u64,
}

struct Interrupts {
    owed: BTreeMap<i64, Owed>,
    waiting: BTreeMap<(i64, c_ulong), Arc<Cancel>>,
    struck: BTreeMap<(i64, c_ulong), u64>,
    next_token: u64,
}

impl Interrupts {
    /// Records who an exception is about to be set for (before it is set, with the GIL of its
    /// interpreter held, so the task cannot end in between): for a claim, its end clears it.
    fn strike(&mut self, key: (i64, c_ulong), claim: u64) {
        if claim == 0 {
            self.struck.remove(&key); // the exception now set is the whole run's
        } else {
            self.struck.insert(key, claim);
        }
    }
}

static INTERRUPTS: Mutex<Interrupts> = Mutex::new(Interrupts {
    owed: BTreeMap::new(),
    waiting: BTreeMap::new(),
    struck: BTreeMap::new(),
    next_token: 1,
});

fn lock() -> MutexGuard<'static, Interrupts> {
    INTERRUPTS.lock()
}

/// The run in interpreter `id` has ended (called under the registry lock): an interrupt still
/// owed to it is dropped.
pub(crate) fn run_ended(id: i64) {
    let mut st = lock();
    st.owed.remove(&id);
    st.struck.retain(|key, _| key.0 != id);
}

/// `exc` if it is a static subclass of `BaseException`, else the `TypeError` to raise.
///
/// # Safety
/// GIL held; `exc` live.
unsafe fn exception_class(exc: *mut ffi::PyObject) -> Result<usize> {
    // SAFETY: GIL held (contract); type checks on a live object.
    unsafe {
        let is_exc_class = ffi::PyType_Check(exc) != 0
            && ffi::PyType_IsSubtype(exc.cast(), ffi::PyExc_BaseException.cast()) != 0;
        if !is_exc_class {
            return Err(Error::Type(format!(
                "interrupt() expects an exception class, got {}",
                type_name(exc)
            )));
        }
        if ffi::PyType_HasFeature(exc.cast(), ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
            return Err(Error::Type(format!(
                "interrupt() expects a built-in exception class (every interpreter shares \
                 those), got {}",
                text_of(exc, true)?
            )));
        }
        Ok(exc as usize)
    }
}

/// What is left to do once the locks are released.
enum Then {
    Nothing,
    /// 3.11: set the exception in the runner from inside the interpreter.
    Visit(InterpPtr, c_ulong),
}

kw_entry!(
    /// `interrupt(id, exc) -> bool`: raises `exc` (a built-in exception class) asynchronously
    /// in the code our run in interpreter `id` is executing; False if no run of ours is in
    /// progress there.
    interrupt, |state, a, kwds| {
        let [id_obj, exc] = args::objects(a, kwds, c"OO:interrupt", &[c"id", c"exc"])?;
        let id = id_arg(id_obj, IdKind::Interpreter, state)?;
        let exc = exception_class(exc)?;
        crate::interp::api::existing(id)?;
        let hit = interrupt_run(id, exc, 0)?;
        Ok(ffi::PyBool_FromLong(hit.into()))
    }
);

/// Interrupts the task of `claim` (`exc`, a built-in exception class) if it is running now
/// and was not interrupted before: whether this call did. See the module documentation.
///
/// # Safety
/// GIL held; `exc` live.
pub(crate) unsafe fn interrupt_claim(claim: u64, exc: *mut ffi::PyObject) -> Result<bool> {
    // SAFETY: GIL held, `exc` live (contract).
    let exc = unsafe { exception_class(exc)? };
    match claims::runner(claim) {
        // SAFETY: GIL held (contract).
        Some(runner) => unsafe { interrupt_run(runner.interp, exc, claim) },
        None => Ok(false),
    }
}

/// Interrupts the run in progress in interpreter `id` with `exc` (a static exception type), or
/// only the task of `claim` there (0: the whole run). Whether anything was interrupted.
///
/// # Safety
/// GIL held.
unsafe fn interrupt_run(id: i64, exc: usize, claim: u64) -> Result<bool> {
    let mut failed = false;
    let then = registry::with_run(id, |run| {
        let (interp, runner) = run?;
        let mut st = lock();
        if claim != 0 {
            // Under this lock: the task cannot end (claim_scope takes it) before the interrupt
            // is recorded, so it is still the one running, and `runner` runs it.
            let by = claims::mark_interrupted(claim)?;
            if by.interp != id || by.thread != runner {
                return None;
            }
        }
        if let Some(cancel) = st.waiting.get(&(id, runner)) {
            let cancel = Arc::clone(cancel);
            st.owed.insert(
                id,
                Owed {
                    runner,
                    exc,
                    token: 0,
                    claim,
                },
            );
            drop(st);
            cancel.cancel();
            return Some(Then::Nothing);
        }
        if !version::OWN_GIL {
            st.strike((id, runner), claim);
            return Some(Then::Visit(interp, runner));
        }
        if let Some(owed) = st.owed.get_mut(&id).filter(|o| o.token != 0) {
            // Its pending call is queued already: it will deliver this exception, for both
            // requests (so for the whole run unless both were for this claim).
            owed.exc = exc;
            if owed.claim != claim {
                owed.claim = 0;
            }
            return Some(Then::Nothing);
        }
        let token = st.next_token;
        st.next_token += 1;
        st.owed.insert(
            id,
            Owed {
                runner,
                exc,
                token,
                claim,
            },
        );
        // SAFETY: the interpreter is running our run (registry lock held), so it is alive;
        // queuing a pending call needs no GIL. The argument is a number, not a pointer:
        // a call left over when the interpreter goes frees nothing.
        let queued = unsafe { version::add_pending_call(interp, deliver, token as *mut c_void) };
        if !queued {
            st.owed.remove(&id);
            failed = true;
        }
        Some(Then::Nothing)
    });
    if failed {
        return Err(Error::Runtime(format!(
            "could not interrupt interpreter {id} (its pending-call queue is full)"
        )));
    }
    if let Some(Then::Visit(interp, runner)) = then {
        // SAFETY: 3.11: this thread holds the one GIL from the registry look above to the
        // end of the visit, so the run (which needs that GIL to end) is still in progress,
        // the claim's task too, and the interpreter alive. SetAsyncExc reaches the runner's
        // thread state among the visited interpreter's.
        unsafe {
            crate::interp::thread_cache::visit_running(id, interp, || {
                ffi::PyThreadState_SetAsyncExc(runner as _, exc as *mut ffi::PyObject);
            });
        }
    }
    Ok(then.is_some())
}

/// Runs `body` as the task of `claim` on this thread (the claim is taken for it as `holder`,
/// recording this thread as its runner): `None` if the claim was not open (cancelled, or taken by
/// another), else `body`'s outcome and whether an interrupt was asked for the task. When
/// `body` returns, no interrupt of the claim can strike any more (see the module
/// documentation).
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn claim_scope<R>(
    claim: u64,
    holder: u64,
    body: impl FnOnce() -> R,
) -> Option<(R, bool)> {
    // SAFETY: GIL held (contract), so a thread state is current.
    let key = unsafe {
        (
            tstate::interp_id(tstate::current_interp()),
            ffi::PyThread_get_thread_ident(),
        )
    };
    let runner = claims::Runner {
        interp: key.0,
        thread: key.1,
    };
    if !claims::start(claim, holder, runner) {
        return None;
    }
    let out = body();
    let (interrupted, clear) = {
        let mut st = lock();
        let interrupted = claims::finish(claim).unwrap_or(false);
        if st.owed.get(&key.0).is_some_and(|o| o.claim == claim) {
            st.owed.remove(&key.0);
        }
        let clear = st.struck.get(&key).is_some_and(|&c| c == claim);
        if clear {
            st.struck.remove(&key);
        }
        (interrupted, clear)
    };
    if clear {
        // SAFETY: GIL held on this thread, attached to the interpreter the exception was set
        // in; clearing one not set (raised already) does nothing.
        unsafe { ffi::PyThreadState_SetAsyncExc(key.1 as _, std::ptr::null_mut()) };
    }
    Some((out, interrupted))
}

/// The pending call (3.12+): runs in the interrupted interpreter, with its GIL, on whichever of
/// its threads checks first; raises the owed exception in the runner unless the run it was
/// meant for has ended (or a queue wait took it over). Run by the runner itself, it raises the
/// exception right there (returning -1): an asynchronous one set from inside this check would
/// wait for the next check on 3.13+, and the runner may reach one of our queue waits first and
/// block in it with the interrupt already taken.
extern "C" fn deliver(arg: *mut c_void) -> c_int {
    // SAFETY: CPython runs pending calls with a thread state of the interpreter current and
    // its GIL held; -1 is returned with the exception set, which CPython raises in the code
    // that was running.
    unsafe { crate::py::trampoline::guard(None, -1, || deliver_owed(arg as u64)) }
}

/// The body of [`deliver`].
///
/// # Safety
/// GIL held, in the interpreter the pending call was queued for.
unsafe fn deliver_owed(token: u64) -> Result<c_int> {
    // SAFETY: a thread state is current (contract).
    let id = unsafe { tstate::interp_id(tstate::current_interp()) };
    // SAFETY: GIL held (contract).
    let me = unsafe { ffi::PyThread_get_thread_ident() };
    let found = {
        let mut st = lock();
        match st.owed.get(&id) {
            Some(owed) if owed.token == token => {
                if let Some(cancel) = st.waiting.get(&(id, owed.runner)) {
                    // Blocked in one of our waits meanwhile: that wait raises it.
                    let cancel = Arc::clone(cancel);
                    drop(st);
                    cancel.cancel();
                    None
                } else {
                    let owed = st.owed.remove(&id);
                    if let Some(o) = owed.as_ref().filter(|o| o.runner != me) {
                        st.strike((id, o.runner), o.claim); // set below, raised later
                    }
                    owed.map(|o| (o.runner, o.exc))
                }
            }
            _ => None,
        }
    };
    if let Some((runner, exc)) = found {
        if runner == me {
            // SAFETY: GIL held, on the runner; `exc` is a static type.
            return Err(unsafe { raise(exc) });
        }
        // SAFETY: attached to interpreter `id`, which the runner's thread state belongs to;
        // `exc` is a static type.
        unsafe { ffi::PyThreadState_SetAsyncExc(runner as _, exc as *mut ffi::PyObject) };
    }
    Ok(0)
}

/// One of our blocking queue waits on this thread, registered so that an interrupt of the
/// interpreter's run can cut it short. Unregistered on drop.
pub(crate) struct Waiting {
    key: (i64, c_ulong),
    cancel: Arc<Cancel>,
}

impl Waiting {
    /// Registers the wait about to begin; if an interrupt is owed to this thread already, it is
    /// raised instead (`Err(Raised)`).
    ///
    /// # Safety
    /// GIL held.
    pub(crate) unsafe fn begin() -> Result<Waiting> {
        // SAFETY: GIL held (contract), so a thread state is current.
        let key = unsafe {
            (
                tstate::interp_id(tstate::current_interp()),
                ffi::PyThread_get_thread_ident(),
            )
        };
        let cancel = Arc::new(Cancel::new());
        let owed = {
            let mut st = lock();
            match st.owed.get(&key.0) {
                Some(o) if o.runner == key.1 => st.owed.remove(&key.0),
                _ => {
                    st.waiting.insert(key, Arc::clone(&cancel));
                    None
                }
            }
        };
        match owed {
            // SAFETY: GIL held.
            Some(owed) => Err(unsafe { raise(owed.exc) }),
            None => Ok(Waiting { key, cancel }),
        }
    }

    /// The flag the wait observes.
    pub(crate) fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The wait was cancelled: raises the interrupt owed to this thread (`Err(Raised)`).
    ///
    /// # Safety
    /// GIL held, on the thread that began the wait.
    pub(crate) unsafe fn raise(self) -> Error {
        match take_owed(self.key, false) {
            // SAFETY: GIL held (contract).
            Some(exc) => unsafe { raise(exc) },
            // Cancelled only together with an interrupt owed to this thread, which nothing but
            // this wait takes while it is registered.
            None => Error::System("an interrupted wait without an interrupt".into()),
        }
    }
}

/// Unregisters the wait `key` and takes the interrupt owed to its thread, if any; `set`: it is
/// about to be set for the thread to raise later (recorded for its claim).
fn take_owed(key: (i64, c_ulong), set: bool) -> Option<usize> {
    let mut st = lock();
    st.waiting.remove(&key);
    match st.owed.get(&key.0) {
        Some(o) if o.runner == key.1 => {
            let owed = st.owed.remove(&key.0)?;
            if set {
                st.strike(key, owed.claim);
            }
            Some(owed.exc)
        }
        _ => None,
    }
}

/// Dropped with the GIL held (every wait takes it back before returning). An interrupt that came
/// as the wait ended with its item is not lost: it is set for this thread to raise at its next
/// check between bytecodes.
impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(exc) = take_owed(self.key, true) {
            // SAFETY: GIL held on this thread (see above), which is the runner; `exc` is a
            // static type.
            unsafe {
                ffi::PyThreadState_SetAsyncExc(self.key.1 as _, exc as *mut ffi::PyObject);
            }
        }
    }
}

/// Raises `exc` here and now, clearing an asynchronous one owed to this thread already (it is
/// the same interrupt: it must not strike twice).
///
/// # Safety
/// GIL held; `exc` a static exception type.
unsafe fn raise(exc: usize) -> Error {
    // SAFETY: GIL held (contract).
    unsafe {
        ffi::PyThreadState_SetAsyncExc(ffi::PyThread_get_thread_ident() as _, std::ptr::null_mut());
        ffi::PyErr_SetNone(exc as *mut ffi::PyObject);
    }
    Error::Raised
}
