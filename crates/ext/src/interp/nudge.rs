//! 3.11 only: keeping a run of ours that executes pure Python from shutting every other
//! interpreter's threads out of the one shared GIL (a no-op on 3.12+, where each isolated
//! interpreter has its own).
//!
//! On 3.11 a thread waiting for the GIL asks its holder to let go through the *waiter's own*
//! interpreter; a thread executing Python in another interpreter never reads that request and
//! keeps the GIL until it blocks. A `while True: pass` in one of our interpreters would lock
//! out the main interpreter for good, including the thread that wants to `interrupt()` it.
//!
//! The remedy is a waiter from the right interpreter. A watcher thread (an OS thread of ours
//! that runs no Python) wakes twice per switch interval while runs of ours are in progress.
//! When the same thread state has held the GIL at two wake-ups in a row, it asks for a nudge of
//! each run older than one interval. A nudger thread (kept for a second after its last job)
//! makes a thread state of that run's interpreter and waits for the GIL with it. After a switch
//! interval its request reaches the busy code, which lets the GIL go; the waiters then compete
//! for it as within one interpreter. The nudger deletes its thread state as soon as it gets the
//! GIL. A hog thus lets go every one to two switch intervals. The main interpreter is nudged
//! too while runs of ours are in progress: a pure-Python loop there starves them the same way.
//!
//! ```text
//! NUDGE: Mutex<Nudge>     process-global; lock order: the registry's INTERPS, then this
//! ├── runs: id -> Run { interp, since }   runs of ours in progress in our interpreters
//! ├── nudging: interp -> run id           at most one nudge asked for or under way per
//! │                                       interpreter (the main interpreter's under run id 0)
//! ├── jobs, idle                          nudges not taken yet; nudger threads waiting
//! ├── watcher: Idle | Ticking | Parked    the watcher thread, started on first use
//! └── closed                              exit clean-up ended: no nudger starts again
//! NUDGED: Condvar (with NUDGE)            a nudge ended, a run started, or exit began
//! JOBS: Condvar (with NUDGE)              a nudge was asked for, or exit began
//! ```
//!
//! Why an interpreter stays alive for its nudger (the main one outlives them all: exit clean-up
//! closes this first, see [`close`]): a nudger is started only for a registered run
//! (under this lock), and makes its thread state under this lock only while that run is still
//! registered; the run is unregistered here before the registry ends it; and a finalization
//! first waits, with its GIL released, until no nudger of that interpreter is left
//! ([`quiesce`]). A nudger's thread state is counted by whoever counts an interpreter's threads
//! ([`extra_threads`]): it is made without the GIL, so it may appear at any moment while a
//! nudger is under way, and it is deleted under the GIL before the nudger is forgotten.
//!
//! Whoever waits for a nudger to finish (`quiesce`, `close`) takes its own GIL back every
//! switch interval meanwhile: the nudger's request reaches only the interpreter it nudges,
//! so a pure-Python loop in the waiter's interpreter would otherwise keep it out for good. A
//! `fork()` takes the lock first and gives the child a state with no threads of ours.

#[cfg(not(Py_3_12))]
pub(crate) use imp::*;

/// 3.12+: every isolated interpreter has its own GIL, so nothing needs nudging.
#[cfg(Py_3_12)]
mod noop {
    use crate::py::tstate::InterpPtr;

    pub(crate) fn run_started(_id: i64, _interp: InterpPtr) {}

    pub(crate) fn run_ended(_id: i64) {}

    /// # Safety
    /// None (the 3.11 version's contract is kept by every caller).
    pub(crate) unsafe fn quiesce(_interp: InterpPtr) {}

    /// # Safety
    /// None (as [`quiesce`]).
    pub(crate) unsafe fn close(_limit: std::time::Duration) -> bool {
        true
    }

    pub(crate) fn extra_threads(_interp: InterpPtr) -> usize {
        0
    }
}

#[cfg(Py_3_12)]
pub(crate) use noop::*;

#[cfg(not(Py_3_12))]
mod imp {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::sync::Once;
    use std::time::{Duration, Instant};

    use pyo3_ffi as ffi;
    use subinterpreters_core::sync::{Condvar, Mutex, MutexGuard};

    use crate::py::capi;
    use crate::py::tstate::{self, InterpPtr};

    /// The watcher's stack and each nudger's: they call a handful of C functions, no Python.
    const STACK: usize = 256 * 1024;

    /// The run id a nudger of the main interpreter is filed under (the main interpreter's
    /// id: no run of ours there is registered, it is not one we created).
    const MAIN: i64 = 0;

    struct Run {
        interp: InterpPtr,
        since: Instant,
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Watcher {
        /// Not started yet.
        Idle,
        /// Waking twice per switch interval.
        Ticking,
        /// Asleep until a run starts.
        Parked,
    }

    /// A nudge asked for or under way.
    struct Nudging {
        /// The run it is for ([`MAIN`] for the main interpreter).
        run: i64,
        /// Whether its thread state exists: set with the making, under the lock; cleared only
        /// after the deletion (made under the GIL), so a count made under the GIL that saw the
        /// thread state finds it set.
        made: bool,
    }

    struct Nudge {
        runs: BTreeMap<i64, Run>,
        /// Interpreters with a nudge asked for or under way (by address).
        nudging: BTreeMap<usize, Nudging>,
        /// Nudges asked for and not yet taken by a nudger thread (their runs are in `nudging`).
        jobs: Vec<InterpPtr>,
        /// Nudger threads waiting for a job.
        idle: usize,
        watcher: Watcher,
        closed: bool,
    }

    static NUDGE: Mutex<Nudge> = Mutex::new(Nudge {
        runs: BTreeMap::new(),
        nudging: BTreeMap::new(),
        jobs: Vec::new(),
        idle: 0,
        watcher: Watcher::Idle,
        closed: false,
    });
    /// A nudge ended, a run started, or exit clean-up began (for `quiesce`, `close` and the
    /// parked watcher).
    static NUDGED: Condvar = Condvar::new();
    /// A job was queued, or exit clean-up began (for idle nudger threads).
    static JOBS: Condvar = Condvar::new();

    /// How long an idle nudger thread waits for a job before it ends.
    const NUDGER_IDLE: Duration = Duration::from_secs(1);

    fn lock() -> MutexGuard<'static, Nudge> {
        NUDGE.lock()
    }

    fn key(interp: InterpPtr) -> usize {
        interp.0 as usize
    }

    impl Nudge {
        /// Drops the last `n` jobs not taken yet, with their `nudging` entries (nothing was
        /// made for them), and tells the waiters.
        fn drop_jobs(&mut self, n: usize) {
            let from = self.jobs.len() - n;
            for interp in self.jobs.split_off(from) {
                self.nudging.remove(&key(interp));
            }
            NUDGED.notify_all();
        }
    }

    /// Starts one of our threads (the watcher, a nudger): no Python, a small stack.
    fn spawn(body: fn()) -> bool {
        std::thread::Builder::new()
            .name("subinterpreters-nudge".into())
            .stack_size(STACK)
            .spawn(body)
            .is_ok()
    }

    /// A run of ours started in `interp` (one of our interpreters, alive until the run ends).
    pub(crate) fn run_started(id: i64, interp: InterpPtr) {
        let mut st = lock();
        if st.closed {
            return;
        }
        st.runs.insert(
            id,
            Run {
                interp,
                since: Instant::now(),
            },
        );
        match st.watcher {
            Watcher::Ticking => {}
            Watcher::Parked => NUDGED.notify_all(),
            Watcher::Idle => {
                FORK_HANDLERS.call_once(|| {
                    // SAFETY: the three handlers are plain functions of this module, which
                    // is never unloaded. Registration can only fail for lack of memory, which
                    // costs the child its nudging, nothing else.
                    unsafe { pthread_atfork(Some(before_fork), Some(after_fork), Some(in_child)) };
                });
                // Without a watcher nothing is lost but fairness: tried again at the next run.
                if spawn(watch) {
                    st.watcher = Watcher::Ticking;
                }
            }
        }
    }

    /// The run in `id` is ending (called before the registry ends it).
    pub(crate) fn run_ended(id: i64) {
        lock().runs.remove(&id);
    }

    /// How many thread states of `interp` may be nudgers' (an upper bound; see the module
    /// header).
    pub(crate) fn extra_threads(interp: InterpPtr) -> usize {
        lock()
            .nudging
            .get(&key(interp))
            .is_some_and(|n| n.made)
            .into()
    }

    /// Waits until no nudger is under way in `interp`, before it is finalized. Its run has
    /// ended, so none starts again.
    ///
    /// # Safety
    /// The current thread must hold the GIL of its current thread state (released while
    /// waiting: the nudger needs it to finish).
    pub(crate) unsafe fn quiesce(interp: InterpPtr) {
        // SAFETY: forwarded contract.
        unsafe { wait_until(None, |st| !st.nudging.contains_key(&key(interp))) };
    }

    /// Waits, with the caller's GIL released, until `done` holds or `limit` passes; returns
    /// whether it holds. A nudger blocked for the GIL only asks the interpreter it nudges to
    /// let go; if a thread of the caller's interpreter holds the GIL meanwhile (a pure-Python
    /// loop), only a waiter from the caller's interpreter makes it let go. So the caller takes
    /// its GIL back every switch interval, which is such a request.
    ///
    /// # Safety
    /// The current thread must hold the GIL of its current thread state.
    unsafe fn wait_until(limit: Option<Duration>, done: impl Fn(&Nudge) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(&lock()) {
                return true;
            }
            if limit.is_some_and(|limit| start.elapsed() >= limit) {
                return false;
            }
            let slice = || {
                let st = lock();
                if !done(&st) {
                    drop(NUDGED.wait_timeout(st, interval()));
                }
            };
            // SAFETY: contract; the wait touches no Python.
            unsafe { tstate::detached(slice) };
        }
    }

    /// Exit clean-up is ending: no nudger starts from now on, and those under way are waited
    /// for, up to `limit` (the runtime is about to be finalized, and CPython ends a thread that
    /// takes the GIL then). Returns whether none is left.
    ///
    /// # Safety
    /// As [`quiesce`].
    pub(crate) unsafe fn close(limit: Duration) -> bool {
        {
            let mut st = lock();
            st.closed = true;
            st.runs.clear();
            let queued = st.jobs.len();
            st.drop_jobs(queued);
            JOBS.notify_all();
        }
        // Jobs not taken yet were dropped above: only nudges under way are left.
        // SAFETY: forwarded contract.
        unsafe { wait_until(Some(limit), |st| st.nudging.is_empty()) }
    }

    extern "C" {
        /// POSIX: handlers run by `fork()` in the forking thread, before and after it, in the
        /// parent and in the child.
        fn pthread_atfork(
            prepare: Option<unsafe extern "C" fn()>,
            parent: Option<unsafe extern "C" fn()>,
            child: Option<unsafe extern "C" fn()>,
        ) -> std::ffi::c_int;
    }

    static FORK_HANDLERS: Once = Once::new();

    thread_local! {
        /// The lock, held across a `fork()` by the forking thread.
        static FORK_GUARD: RefCell<Option<MutexGuard<'static, Nudge>>> =
            const { RefCell::new(None) };
    }

    /// Before `fork()`: the lock is taken, so the child's copy is never one a vanished thread
    /// held.
    unsafe extern "C" fn before_fork() {
        let st = lock();
        FORK_GUARD.with(|g| *g.borrow_mut() = Some(st));
    }

    /// In the parent after `fork()`: the lock is let go.
    unsafe extern "C" fn after_fork() {
        FORK_GUARD.with(|g| drop(g.borrow_mut().take()));
    }

    /// In the child after `fork()`: only the forking thread exists there, so no watcher,
    /// nudger or run of another thread; the state says so, then the lock is let go.
    unsafe extern "C" fn in_child() {
        FORK_GUARD.with(|g| {
            if let Some(mut st) = g.borrow_mut().take() {
                st.runs.clear();
                st.nudging.clear();
                st.jobs.clear();
                st.idle = 0;
                st.watcher = Watcher::Idle;
            }
        });
    }

    /// The switch interval, bounded to a sensible tick.
    fn interval() -> Duration {
        // SAFETY: a plain read of the runtime's GIL settings, which needs no GIL.
        let micros = unsafe { capi::_PyEval_GetSwitchInterval() };
        Duration::from_micros(micros as u64)
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// The watcher thread's body.
    fn watch() {
        let mut last = std::ptr::null_mut();
        let mut st = lock();
        loop {
            if st.closed {
                st.watcher = Watcher::Idle;
                return;
            }
            if st.runs.is_empty() {
                st.watcher = Watcher::Parked;
                st = NUDGED.wait(st);
                st.watcher = Watcher::Ticking;
                last = std::ptr::null_mut();
                continue;
            }
            // Sampled twice per interval: a hog is seen within one interval of its start.
            let tick = interval() / 2;
            drop(st);
            std::thread::sleep(tick);
            // SAFETY: on 3.11 this is an atomic read of the runtime's current thread state
            // (who holds the GIL), which any thread may do without it.
            let holder = unsafe { capi::current_tstate_unchecked() };
            st = lock();
            let hogged = !holder.is_null() && holder == last;
            last = holder;
            if !hogged || st.closed {
                continue;
            }
            let now = Instant::now();
            let mut due: Vec<(i64, InterpPtr)> = st
                .runs
                .iter()
                .filter(|(_, run)| now.duration_since(run.since) >= 2 * tick)
                .map(|(&id, run)| (id, run.interp))
                .collect();
            // The hog may be the main interpreter's, starving our runs the same way.
            let main = tstate::main_interp();
            if !due.is_empty() {
                due.push((MAIN, main));
            }
            due.retain(|(_, interp)| !st.nudging.contains_key(&key(*interp)));
            for (id, interp) in due {
                st.nudging.insert(
                    key(interp),
                    Nudging {
                        run: id,
                        made: false,
                    },
                );
                st.jobs.push(interp);
            }
            // Idle nudger threads take the jobs; a thread is started for each one short.
            while st.idle < st.jobs.len() {
                if !spawn(serve_nudges) {
                    // Nothing is lost but fairness: the jobs no thread can take are dropped.
                    let short = st.jobs.len() - st.idle;
                    st.drop_jobs(short);
                    break;
                }
                st.idle += 1; // counted at once, so no second thread is started for the job
            }
            JOBS.notify_all();
        }
    }

    /// A nudger thread's body: takes jobs until none came for [`NUDGER_IDLE`], or exit
    /// clean-up began. Counted idle by whoever started it.
    fn serve_nudges() {
        let mut st = lock();
        loop {
            if let Some(interp) = st.jobs.pop() {
                st.idle -= 1;
                drop(st);
                nudge(interp);
                st = lock();
                st.idle += 1;
                continue;
            }
            if st.closed {
                st.idle -= 1;
                return;
            }
            let (guard, timed_out) = JOBS.wait_timeout(st, NUDGER_IDLE);
            st = guard;
            if timed_out && st.jobs.is_empty() {
                st.idle -= 1;
                return;
            }
        }
    }

    /// One nudge: waits for the GIL with a thread state of `interp`, then deletes it.
    fn nudge(interp: InterpPtr) {
        let ts = {
            let mut st = lock();
            let entry = st.nudging.get(&key(interp)).map(|n| n.run);
            // Made only while the run it was started for goes on, so the interpreter is alive
            // (see the module header), and under this lock, so a later count sees it.
            // Once the runtime is finalizing, a thread that waits for the GIL is ended by
            // CPython, so none starts then.
            let go = !st.closed
                && entry.is_some_and(|id| match id {
                    MAIN => !st.runs.is_empty(),
                    id => st.runs.get(&id).is_some_and(|r| r.interp == interp),
                })
                // SAFETY: reads a runtime field; needs no GIL.
                && unsafe { capi::_Py_IsFinalizing() } == 0;
            let ts = if go {
                // SAFETY: the interpreter is alive (its run is registered, checked above under
                // the lock). 3.11 makes a thread state without the GIL, as `PyGILState_Ensure`
                // does.
                unsafe { ffi::PyThreadState_New(interp.0) }
            } else {
                std::ptr::null_mut()
            };
            if ts.is_null() {
                st.nudging.remove(&key(interp));
                NUDGED.notify_all();
                return;
            }
            if let Some(n) = st.nudging.get_mut(&key(interp)) {
                n.made = true;
            }
            ts
        };
        // SAFETY: `ts` is this thread's own, new and never current; its interpreter stays alive
        // while it is registered in `nudging` (finalization waits in `quiesce`). Taking the GIL
        // with it is the point: the wait raises the drop request in `interp`. With the GIL held
        // it is cleared and deleted as the current one, which also releases the GIL: deleting
        // it under the GIL keeps every count made under the GIL exact.
        unsafe {
            ffi::PyEval_RestoreThread(ts);
            ffi::PyThreadState_Clear(ts);
            ffi::PyThreadState_DeleteCurrent();
        }
        let mut st = lock();
        st.nudging.remove(&key(interp));
        NUDGED.notify_all();
    }
}
