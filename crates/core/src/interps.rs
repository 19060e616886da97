//! The interpreter registry's state machine: which interpreters the extension created (with
//! their keeper thread states), how many counted `InterpreterID` objects keep each alive, what
//! each is doing, and the thread states cached for visiting it. Pure data, generic over the
//! extension's opaque handles: `I` stands for an interpreter pointer, `T` for a thread-state
//! pointer; nothing here dereferences them.
//!
//! ```text
//! Interps<I, T>
//! ├── exiting: bool                     exit cleanup has begun: no run or creation starts
//! └── entries: BTreeMap<id, Entry>
//!     ├── interp: I, keeper: Option<T>  keeper: Some for ours (made by our create())
//!     ├── refs                          live counted InterpreterIDs (ours only)
//!     ├── state                         Idle | Running { runner } | Finalizing | Pending
//!     ├── cached: [(thread, T)]         idle visitor thread states, one per OS thread
//!     └── dead: [T]                     cached ones whose OS thread has exited
//! ```
//!
//! The rules: a run ([`Interps::begin_run`]) and a finalization (a [`Doomed`]) are handed out
//! only by moving the state to `Running` / `Finalizing`, so they never overlap and at most one
//! `Doomed` exists per interpreter. An interpreter of ours whose last count goes while it is
//! idle is doomed at once; while it runs, when the run ends; if a finalization is refused
//! (threads still run in it), it becomes `Pending` and is retried ([`Interps::take_pending`]).
//! Interpreters made by others get an entry only while we run code in them or finalize them.
//!
//! The extension keeps one `Interps` behind a lock (`interp/registry.rs`); each method here is
//! one trip through that lock.

use std::collections::BTreeMap;

/// What an interpreter is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Nobody uses it.
    Idle,
    /// A run is in progress on the OS thread `runner`.
    Running {
        /// The running OS thread's id (`threading.get_ident()`).
        runner: u64,
    },
    /// One holder of its [`Doomed`] is finalizing it (or waiting for its threads first).
    Finalizing,
    /// Ours, with no counted reference left, but its finalization was refused because threads
    /// still ran in it: retried later. It can still run code (by integer id) meanwhile.
    Pending,
}

#[derive(Debug)]
struct Entry<I, T> {
    interp: I,
    keeper: Option<T>,
    refs: usize,
    state: State,
    cached: Vec<(u64, T)>,
    dead: Vec<T>,
}

impl<I: Copy, T: Copy> Entry<I, T> {
    fn new(interp: I, keeper: Option<T>, state: State) -> Entry<I, T> {
        Entry {
            interp,
            keeper,
            refs: 0,
            state,
            cached: Vec::new(),
            dead: Vec::new(),
        }
    }

    /// Moves an idle or pending interpreter of ours to `Finalizing` and hands out its keeper.
    fn doom(&mut self, id: i64) -> Option<Doomed<I, T>> {
        let keeper = self.keeper?;
        match self.state {
            State::Idle | State::Pending => {
                self.state = State::Finalizing;
                Some(Doomed {
                    id,
                    interp: self.interp,
                    keeper,
                })
            }
            State::Running { .. } | State::Finalizing => None,
        }
    }

    fn busy(&self) -> bool {
        matches!(self.state, State::Running { .. } | State::Finalizing)
    }
}

/// The right to finalize one interpreter: handed out only with its state moved to
/// `Finalizing`, so at most one exists per interpreter. Give it back with
/// [`Interps::finalized`] or [`Interps::refused`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub struct Doomed<I, T> {
    /// The interpreter's id.
    pub id: i64,
    /// The interpreter as recorded (the extension compares it with CPython's list before use:
    /// CPython's own module may have finalized one of ours meanwhile).
    pub interp: I,
    /// Its keeper thread state (for interpreters made by others, their only thread state).
    pub keeper: T,
}

/// Why an interpreter cannot be taken for a run or a finalization, or made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// Another run or finalization is in progress.
    Running,
    /// No entry for the interpreter (not ours, or finalized).
    Unknown,
    /// Exit cleanup has begun: nothing new starts.
    Exiting,
}

/// What a run needs, from the one trip that started it: the interpreter, whether it is ours
/// (its visitor thread states are cached), and the thread states of exited OS threads to
/// delete once inside (give back those not deleted with [`Interps::end_run`]).
#[derive(Debug, PartialEq, Eq)]
pub struct RunStart<I, T> {
    /// The interpreter to run in; not finalized before the run ends.
    pub interp: I,
    /// Made by our `create()`.
    pub ours: bool,
    /// Cached thread states whose OS thread has exited, now the run's to delete.
    pub dead: Vec<T>,
}

/// The registry's state (see the module documentation).
#[derive(Debug)]
pub struct Interps<I, T> {
    entries: BTreeMap<i64, Entry<I, T>>,
    exiting: bool,
}

impl<I, T> Interps<I, T> {
    /// An empty registry (usable in a `static`).
    pub const fn new() -> Interps<I, T> {
        Interps {
            entries: BTreeMap::new(),
            exiting: false,
        }
    }
}

impl<I, T> Default for Interps<I, T> {
    fn default() -> Self {
        Interps::new()
    }
}

impl<I: Copy, T: Copy + PartialEq> Interps<I, T> {
    /// Whether a creation may start (not after exit cleanup has begun).
    pub fn may_create(&self) -> Result<(), Busy> {
        if self.exiting {
            Err(Busy::Exiting)
        } else {
            Ok(())
        }
    }

    /// Exit cleanup begins: from now on no run starts and no interpreter is created.
    pub fn close_for_exit(&mut self) {
        self.exiting = true;
    }

    /// Records an interpreter our `create()` made, idle, with no counted references yet.
    pub fn register(&mut self, id: i64, interp: I, keeper: T) {
        self.entries
            .insert(id, Entry::new(interp, Some(keeper), State::Idle));
    }

    /// Whether `id` is ours (made by `create()` and not finalized).
    pub fn is_created(&self, id: i64) -> bool {
        self.entries.get(&id).is_some_and(|e| e.keeper.is_some())
    }

    /// The state of `id`, if it has an entry.
    pub fn state(&self, id: i64) -> Option<State> {
        self.entries.get(&id).map(|e| e.state)
    }

    /// Counts one more `InterpreterID` for `id`; whether it counts (only ours are counted:
    /// others never end by count). A `Pending` interpreter counted again is no longer due for
    /// finalization.
    pub fn incref(&mut self, id: i64) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) if e.keeper.is_some() => {
                e.refs += 1;
                if e.state == State::Pending {
                    e.state = State::Idle;
                }
                true
            }
            _ => false,
        }
    }

    /// Drops one count; when the last goes, the interpreter is due for finalization now
    /// (returned) or, if busy, when its run ends or its finalization is refused.
    pub fn decref(&mut self, id: i64) -> Option<Doomed<I, T>> {
        let e = self.entries.get_mut(&id)?;
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return None;
        }
        e.doom(id)
    }

    /// How many counted references `id` has.
    pub fn refs(&self, id: i64) -> usize {
        self.entries.get(&id).map_or(0, |e| e.refs)
    }

    /// Whether a run or a finalization is in progress for `id`.
    pub fn is_busy(&self, id: i64) -> bool {
        self.entries.get(&id).is_some_and(Entry::busy)
    }

    /// Takes `id` for a run on OS thread `runner`. Ours are found in the registry; one made by
    /// someone else needs the pointer the caller found (`foreign`), and gets an entry for the
    /// run's length.
    pub fn begin_run(
        &mut self,
        id: i64,
        runner: u64,
        foreign: Option<I>,
    ) -> Result<RunStart<I, T>, Busy> {
        if self.exiting {
            return Err(Busy::Exiting);
        }
        match self.entries.get_mut(&id) {
            Some(e) if e.busy() => Err(Busy::Running),
            Some(e) => {
                e.state = State::Running { runner };
                Ok(RunStart {
                    interp: e.interp,
                    ours: e.keeper.is_some(),
                    dead: std::mem::take(&mut e.dead),
                })
            }
            None => {
                let interp = foreign.ok_or(Busy::Unknown)?;
                self.entries
                    .insert(id, Entry::new(interp, None, State::Running { runner }));
                Ok(RunStart {
                    interp,
                    ours: false,
                    dead: Vec::new(),
                })
            }
        }
    }

    /// Ends a run, taking back the exited threads' states it did not delete. An interpreter
    /// made by others loses its entry. If ours lost its last count meanwhile, it is due for
    /// finalization: returned (already `Finalizing`) if `may_finalize`, else left `Pending`.
    pub fn end_run(&mut self, id: i64, may_finalize: bool, dead: Vec<T>) -> Option<Doomed<I, T>> {
        let e = self.entries.get_mut(&id)?;
        e.dead.extend(dead);
        let Some(keeper) = e.keeper else {
            self.entries.remove(&id);
            return None;
        };
        if e.refs > 0 {
            e.state = State::Idle;
            None
        } else if may_finalize {
            e.state = State::Finalizing;
            Some(Doomed {
                id,
                interp: e.interp,
                keeper,
            })
        } else {
            e.state = State::Pending;
            None
        }
    }

    /// Takes an interpreter of ours for finalization by `destroy()`.
    pub fn take_for_destroy(&mut self, id: i64) -> Result<Doomed<I, T>, Busy> {
        let e = self.entries.get_mut(&id).ok_or(Busy::Unknown)?;
        if e.busy() {
            return Err(Busy::Running);
        }
        e.doom(id).ok_or(Busy::Unknown)
    }

    /// Takes an interpreter made by someone else for finalization through `keeper`, its only
    /// thread state; refused while we run code in it.
    pub fn take_foreign(&mut self, id: i64, interp: I, keeper: T) -> Result<Doomed<I, T>, Busy> {
        if self.entries.contains_key(&id) {
            return Err(Busy::Running);
        }
        self.entries
            .insert(id, Entry::new(interp, None, State::Finalizing));
        Ok(Doomed { id, interp, keeper })
    }

    /// Forgets an interpreter once it has been finalized.
    pub fn finalized(&mut self, doomed: Doomed<I, T>) {
        self.entries.remove(&doomed.id);
    }

    /// A finalization was refused and nothing was deleted: the interpreter is usable again,
    /// `Pending` if nothing counts on it any more (one made by others loses its entry). Its
    /// cached thread states stay where they are.
    pub fn refused(&mut self, doomed: Doomed<I, T>) {
        let Some(e) = self.entries.get_mut(&doomed.id) else {
            return;
        };
        if e.keeper.is_none() {
            self.entries.remove(&doomed.id);
        } else {
            e.state = if e.refs == 0 {
                State::Pending
            } else {
                State::Idle
            };
        }
    }

    /// `Pending` interpreters, each moved to `Finalizing` for another attempt.
    pub fn take_pending(&mut self) -> Vec<Doomed<I, T>> {
        self.entries
            .iter_mut()
            .filter(|(_, e)| e.state == State::Pending)
            .filter_map(|(&id, e)| e.doom(id))
            .collect()
    }

    /// The ids of every interpreter of ours not finalized yet.
    pub fn remaining_created(&self) -> Vec<i64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.keeper.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// The interpreters exit cleanup could not leave in a state CPython's own finalization
    /// survives: ours not finalized, and any we still run code in.
    pub fn left_at_exit(&self) -> Vec<i64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.keeper.is_some() || e.busy())
            .map(|(&id, _)| id)
            .collect()
    }

    /// Records a thread state made on OS thread `thread` to visit `id`, kept for reuse.
    pub fn cache_add(&mut self, id: i64, thread: u64, ts: T) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.cached.push((thread, ts));
        }
    }

    /// Takes the cached thread states of OS threads that have exited (to delete them).
    pub fn take_dead_threads(&mut self, id: i64) -> Vec<T> {
        self.entries
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.dead))
            .unwrap_or_default()
    }

    /// OS thread `thread` is exiting: its cached thread states are deleted later, by the next
    /// run or the finalization of their interpreter.
    pub fn thread_exited(&mut self, thread: u64, states: impl IntoIterator<Item = (i64, T)>) {
        for (id, ts) in states {
            if let Some(e) = self.entries.get_mut(&id) {
                if let Some(pos) = e.cached.iter().position(|&c| c == (thread, ts)) {
                    e.cached.swap_remove(pos);
                    e.dead.push(ts);
                }
            }
        }
    }

    /// Every thread state of ours in `id` besides its keeper (cached, live or of exited
    /// threads), for a finalization. They stay recorded until the finalization succeeds.
    pub fn thread_states(&self, id: i64) -> Vec<T> {
        let Some(e) = self.entries.get(&id) else {
            return Vec::new();
        };
        e.cached
            .iter()
            .map(|&(_, ts)| ts)
            .chain(e.dead.iter().copied())
            .collect()
    }

    /// How many thread states of `id` are ours besides its keeper.
    pub fn cached_count(&self, id: i64) -> usize {
        self.entries
            .get(&id)
            .map_or(0, |e| e.cached.len() + e.dead.len())
    }

    /// The interpreters (ours or not) a run is in progress in, with the running OS thread.
    pub fn runs_in_progress(&self) -> Vec<(i64, I, u64)> {
        self.entries
            .iter()
            .filter_map(|(&id, e)| match e.state {
                State::Running { runner } => Some((id, e.interp, runner)),
                _ => None,
            })
            .collect()
    }

    /// The interpreter `id` and the OS thread running in it, if a run is in progress there.
    pub fn run_of(&self, id: i64) -> Option<(I, u64)> {
        self.entries.get(&id).and_then(|e| match e.state {
            State::Running { runner } => Some((e.interp, runner)),
            _ => None,
        })
    }

    /// The interpreter `id` if a run on OS thread `runner` is still in progress in it.
    pub fn running_on(&self, id: i64, runner: u64) -> Option<I> {
        self.entries
            .get(&id)
            .filter(|e| e.state == State::Running { runner })
            .map(|e| e.interp)
    }

    /// Whether some interpreter is being finalized.
    pub fn any_finalizing(&self) -> bool {
        self.entries.values().any(|e| e.state == State::Finalizing)
    }
}
