//! Where a dropped `Py_buffer` waits for its owner: a buffer held on an object of one
//! interpreter is released only by a thread attached to that interpreter. A drop anywhere else
//! parks it here, and it is released at the next entry into our module there (the entry
//! prologue calls [`drain_current`]), by a pending call (main interpreter, 3.12+), or by the
//! owner's exit hook, registered with `atexit` at its first export or borrow.
//!
//! ```text
//! OWNERS: Mutex<BTreeMap<InterpId, Owner>>
//! └── Owner::Alive(parked)    Py_buffers dropped while not attached to their owner
//!     | Owner::Gone           the owner ran its exit hook (its borrowed channel items were
//!                             copied); later drops leak the exporter, so views stay valid
//! ```

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3_ffi as ffi;
use subinterpreters_core::sync::{Mutex, MutexGuard};
use subinterpreters_core::InterpId;

use crate::error::Result;
use crate::py::capi;
use crate::py::pyref::{register_atexit, PyRef};
use crate::py::version;

/// A `Py_buffer` taken on an object of the owner interpreter.
pub(crate) struct Held(pub(crate) ffi::Py_buffer);

// SAFETY: the struct's pointers are only dereferenced by `PyBuffer_Release`, which `release`
// calls on a thread attached to the owner; elsewhere the struct is moved as plain data. The
// exported memory (`buf`) is read and written by views in any interpreter, which is the point of
// sharing it (CPython's own 3.14 memoryview sharing does the same).
unsafe impl Send for Held {}
// SAFETY: as above; shared references only read `buf` and `len`.
unsafe impl Sync for Held {}

/// What is known of an interpreter that exported buffers.
enum Owner {
    /// Alive; these buffers were dropped while another interpreter (or none) was attached.
    Alive(Vec<Held>),
    /// Its exit hook ran: nothing is released for it any more.
    Gone,
}

static OWNERS: Mutex<BTreeMap<InterpId, Owner>> = Mutex::new(BTreeMap::new());
/// Buffers parked in `OWNERS` (a fast check for `drain_current`).
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// A pending call to drain the main interpreter is scheduled and has not run yet.
static MAIN_CALL_SCHEDULED: AtomicBool = AtomicBool::new(false);

fn owners() -> MutexGuard<'static, BTreeMap<InterpId, Owner>> {
    OWNERS.lock()
}

/// The id of the interpreter whose thread state is current (attached) on this thread, if any.
pub(crate) fn attached_interp() -> Option<InterpId> {
    // SAFETY: reading this thread's current thread state is allowed with or without a GIL; a
    // non-NULL one is attached (we and CPython unset it on every detach), so its interpreter is
    // alive while we read its id.
    unsafe {
        let ts = capi::current_tstate_unchecked();
        if ts.is_null() {
            return None;
        }
        Some(ffi::PyInterpreterState_GetID(
            ffi::PyThreadState_GetInterpreter(ts),
        ))
    }
}

/// Releases `held` now if this thread is attached to `owner`, else parks it for the owner (or
/// leaks it if the owner is gone).
pub(crate) fn release(owner: InterpId, held: Held) {
    if attached_interp() == Some(owner) {
        // SAFETY: attached to the owner, so its GIL is held and the exporter is alive (our
        // Py_buffer holds a reference to it).
        unsafe { release_now(held) };
        return;
    }
    let mut map = owners();
    match map.get_mut(&owner) {
        Some(Owner::Alive(list)) => {
            list.push(held);
            PENDING.fetch_add(1, Ordering::SeqCst);
            drop(map);
            if owner == 0 {
                schedule_main_drain();
            }
        }
        // The owner ran its exit hook (or never registered one): the exporter is left alive
        // forever, so views elsewhere stay valid; its Py_buffer goes as plain data (`Held`
        // has no Drop: nothing is released).
        _ => {
            let _leaked = held;
        }
    }
}

/// Asks the main interpreter to drain its parked buffers soon, where CPython's pending calls
/// target it (3.12+).
fn schedule_main_drain() {
    if !version::PENDING_CALLS_RUN_IN_MAIN || MAIN_CALL_SCHEDULED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: Py_AddPendingCall may be called from any thread without a GIL (3.12+, where it
    // always queues the call for the main interpreter's main thread).
    let queued = unsafe { ffi::Py_AddPendingCall(Some(main_drain), std::ptr::null_mut()) };
    if queued != 0 {
        // The queue is full: the next entry into our module drains instead.
        MAIN_CALL_SCHEDULED.store(false, Ordering::SeqCst);
    }
}

extern "C" fn main_drain(_arg: *mut c_void) -> c_int {
    MAIN_CALL_SCHEDULED.store(false, Ordering::SeqCst);
    // SAFETY: CPython runs pending calls on a thread attached to the main interpreter (3.12+),
    // with no exception pending; `drain_current` keeps any it meets.
    unsafe { drain_current() };
    0
}

/// Releases one buffer.
///
/// # Safety
/// The current thread must be attached to the buffer's owner.
unsafe fn release_now(mut held: Held) {
    // SAFETY: attached to the owner (contract); a pending exception is set aside, since the
    // release may run Python code (`__release_buffer__`, a dealloc).
    unsafe {
        let saved = version::save_exception();
        ffi::PyBuffer_Release(&mut held.0);
        version::restore_saved(saved);
    }
}

/// Releases the buffers parked for the current interpreter, if any.
///
/// # Safety
/// A thread state must be current, holding its GIL.
pub(crate) unsafe fn drain_current() {
    if PENDING.load(Ordering::SeqCst) == 0 {
        return;
    }
    let Some(me) = attached_interp() else { return };
    let list = match owners().get_mut(&me) {
        Some(Owner::Alive(list)) => std::mem::take(list),
        _ => return,
    };
    PENDING.fetch_sub(list.len(), Ordering::SeqCst);
    for held in list {
        // SAFETY: attached to `me`, the owner of every buffer parked under it (contract).
        unsafe { release_now(held) };
    }
}

/// The exit hook of an interpreter that exported buffers: queued values holding its buffers are
/// dropped (the queues' unbound rules, applied now while it can still run code), its parked
/// buffers released, and it is marked gone.
unsafe extern "C" fn owner_exit(
    _slf: *mut ffi::PyObject,
    _arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls atexit hooks attached to the exiting interpreter, the owner.
    unsafe {
        crate::py::trampoline::guard_obj(None, || {
            let Some(me) = attached_interp() else {
                return Ok(ffi::Py_NewRef(ffi::Py_None()));
            };
            // Drops on this thread while attached to `me`: released at once. Channel items
            // borrowing its bytes get owned copies first, so they outlive it.
            subinterpreters_core::registry::owner_exiting(me);
            subinterpreters_core::queue::interp_destroyed(me);
            let parked = match owners().insert(me, Owner::Gone) {
                Some(Owner::Alive(list)) => list,
                _ => Vec::new(),
            };
            PENDING.fetch_sub(parked.len(), Ordering::SeqCst);
            for held in parked {
                release_now(held);
            }
            Ok(ffi::Py_NewRef(ffi::Py_None()))
        })
    }
}

static mut EXIT_HOOK_DEF: ffi::PyMethodDef = ffi::PyMethodDef {
    ml_name: c"_release_shared_buffers".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: owner_exit,
    },
    ml_flags: ffi::METH_NOARGS,
    ml_doc: c"Release the buffers this interpreter shared (registered with atexit).".as_ptr(),
};

/// Makes sure the current interpreter `me` has its exit hook and an `OWNERS` entry; false if
/// that hook already ran (`me` is exiting).
///
/// # Safety
/// GIL held, attached to `me`.
pub(crate) unsafe fn ensure_owner(me: InterpId) -> Result<bool> {
    match owners().get(&me) {
        Some(Owner::Alive(_)) => return Ok(true),
        Some(Owner::Gone) => return Ok(false),
        None => {}
    }
    // SAFETY: GIL held; new references owned by PyRef. Two threads of `me` may both get here and
    // register twice: the second run of the hook finds `Gone` and does nothing.
    unsafe {
        let hook = PyRef::from_owned(ffi::PyCFunction_NewEx(
            &raw mut EXIT_HOOK_DEF,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ))?;
        register_atexit(hook.as_ptr())?;
    }
    let alive = matches!(
        owners()
            .entry(me)
            .or_insert_with(|| Owner::Alive(Vec::new())),
        Owner::Alive(_)
    );
    Ok(alive)
}
