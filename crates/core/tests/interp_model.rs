//! Model-based test of the interpreter registry's state machine (`interps`): random operation
//! sequences (creations, counted references, runs of ours and of others' interpreters, destroys,
//! finalizations that succeed or are refused, pending retries, cached thread states and exiting
//! threads, exit) run against the real `Interps` and against a small reference model written
//! separately from it. Every result is compared after every step, and the rules are checked:
//! a run and a finalization never overlap, at most one `Doomed` exists per interpreter, an
//! interpreter of ours is doomed exactly when nothing counts on it and nobody uses it, no thread
//! state is lost or handed out twice.
//!
//! On a mismatch the panic message carries the seed and the operations so far; rerun one
//! sequence with `MODEL_SEED=<seed> cargo test -p subinterpreters-core --test interp_model`.
//! Set `MODEL_CASES` to run more or fewer sequences.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use subinterpreters_core::interps::{Busy, Doomed, Interps, RunStart, State};

mod common;
use common::Rng;

/// Opaque handles as the extension would have them: an interpreter is its id times 10, a
/// keeper its id times 100, a visitor thread state a fresh number from 1_000_000 on.
type I = i64;
type T = i64;

// ---------------------------------------------------------------------------------------------
// The reference model.

#[derive(Debug, Default)]
struct MInterp {
    ours: bool,
    refs: usize,
    /// The OS thread running in it, if a run is in progress.
    run: Option<u64>,
    /// A `Doomed` is out for it.
    doomed: bool,
    /// Ours, nothing counts on it, a finalization was refused (or a run was abandoned).
    pending: bool,
    cached: Vec<(u64, T)>,
    dead: Vec<T>,
}

#[derive(Debug, Default)]
struct Model {
    interps: BTreeMap<i64, MInterp>,
    exiting: bool,
}

impl Model {
    fn used(&self, id: i64) -> bool {
        self.interps
            .get(&id)
            .is_some_and(|m| m.run.is_some() || m.doomed)
    }

    /// Dooms an unused interpreter of ours.
    fn doom(&mut self, id: i64) -> Option<Doomed<I, T>> {
        let m = self.interps.get_mut(&id)?;
        if !m.ours || m.run.is_some() || m.doomed {
            return None;
        }
        m.doomed = true;
        m.pending = false;
        Some(Doomed {
            id,
            interp: id * 10,
            keeper: id * 100,
        })
    }

    fn state(&self, id: i64) -> Option<State> {
        let m = self.interps.get(&id)?;
        Some(if let Some(runner) = m.run {
            State::Running { runner }
        } else if m.doomed {
            State::Finalizing
        } else if m.pending {
            State::Pending
        } else {
            State::Idle
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct Run {
    id: i64,
    dead: Vec<T>,
}

fn run_case(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut real: Interps<I, T> = Interps::new();
    let mut model = Model::default();
    let mut log = String::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut doomed: Vec<Doomed<I, T>> = Vec::new();
    let mut next_ts: T = 1_000_000;
    // Thread states handed out to runs and finalizations (deleted), to check none twice.
    let mut deleted: Vec<T> = Vec::new();
    let ours = [1, 2, 3];
    let foreign = [7, 8];
    macro_rules! check {
        ($cond:expr, $($what:tt)*) => {
            if !$cond {
                panic!("seed {seed}: {}\nops:\n{log}", format!($($what)*));
            }
        };
    }
    for _ in 0..steps {
        let all: Vec<i64> = ours.iter().chain(&foreign).copied().collect();
        let id = all[rng.below(all.len())];
        let thread = 1 + rng.below(3) as u64;
        match rng.below(13) {
            0 => {
                // create(): only ours, never twice for an id.
                if !ours.contains(&id) || model.interps.contains_key(&id) {
                    continue;
                }
                let _ = writeln!(log, "create {id}");
                let got = real.may_create();
                check!(
                    got == if model.exiting {
                        Err(Busy::Exiting)
                    } else {
                        Ok(())
                    },
                    "may_create {got:?}"
                );
                if got.is_ok() {
                    real.register(id, id * 10, id * 100);
                    model.interps.insert(
                        id,
                        MInterp {
                            ours: true,
                            ..Default::default()
                        },
                    );
                    // create() returns one counted ID.
                    check!(real.incref(id), "incref after create");
                    model.interps.get_mut(&id).unwrap().refs += 1;
                }
            }
            1 => {
                let _ = writeln!(log, "incref {id}");
                let got = real.incref(id);
                let want = match model.interps.get_mut(&id) {
                    Some(m) if m.ours => {
                        m.refs += 1;
                        m.pending = false;
                        true
                    }
                    _ => false,
                };
                check!(got == want, "incref {id}: {got} vs {want}");
            }
            2 => {
                if model.interps.get(&id).is_none_or(|m| m.refs == 0) {
                    continue;
                }
                let _ = writeln!(log, "decref {id}");
                let got = real.decref(id);
                let m = model.interps.get_mut(&id).unwrap();
                m.refs -= 1;
                let want = if m.refs == 0 { model.doom(id) } else { None };
                check!(got == want, "decref {id}: {got:?} vs {want:?}");
                if let Some(d) = got {
                    doomed.push(d);
                }
            }
            3 => {
                // A run on `thread`, of ours or (with the pointer CPython's lookup gave) of
                // someone else's.
                if runs.iter().any(|r| r.id == id) && rng.flag() {
                    continue;
                }
                let is_foreign = foreign.contains(&id);
                let _ = writeln!(log, "begin_run {id} on {thread}");
                let got = real.begin_run(id, thread, is_foreign.then_some(id * 10));
                let want = if model.exiting {
                    Err(Busy::Exiting)
                } else if model.used(id) {
                    Err(Busy::Running)
                } else if let Some(m) = model.interps.get_mut(&id) {
                    m.run = Some(thread);
                    Ok(RunStart {
                        interp: id * 10,
                        ours: m.ours,
                        dead: std::mem::take(&mut m.dead),
                    })
                } else if is_foreign {
                    model.interps.insert(
                        id,
                        MInterp {
                            run: Some(thread),
                            ..Default::default()
                        },
                    );
                    Ok(RunStart {
                        interp: id * 10,
                        ours: false,
                        dead: Vec::new(),
                    })
                } else {
                    Err(Busy::Unknown)
                };
                check!(got == want, "begin_run {id}: {got:?} vs {want:?}");
                if let Ok(start) = got {
                    // Inside, the run deletes some of the exited threads' states and, on a new
                    // OS thread, caches a visitor of its own.
                    let mut dead = start.dead;
                    let keep = rng.below(dead.len() + 1);
                    for ts in dead.drain(keep..) {
                        check!(!deleted.contains(&ts), "thread state {ts} deleted twice");
                        deleted.push(ts);
                    }
                    let m = model.interps.get_mut(&id).unwrap();
                    if start.ours && !m.cached.iter().any(|&(t, _)| t == thread) {
                        next_ts += 1;
                        let _ = writeln!(log, "  cache_add {id} {thread} {next_ts}");
                        real.cache_add(id, thread, next_ts);
                        m.cached.push((thread, next_ts));
                    }
                    runs.push(Run { id, dead });
                }
            }
            4 => {
                if runs.is_empty() {
                    continue;
                }
                let run = runs.remove(rng.below(runs.len()));
                let may_finalize = rng.below(4) != 0;
                let _ = writeln!(log, "end_run {} finalize={may_finalize}", run.id);
                let got = real.end_run(run.id, may_finalize, run.dead.clone());
                let m = model.interps.get_mut(&run.id).unwrap();
                m.run = None;
                m.dead.extend(run.dead);
                let want = if !m.ours {
                    model.interps.remove(&run.id);
                    None
                } else if m.refs > 0 {
                    m.pending = false;
                    None
                } else if may_finalize {
                    model.doom(run.id)
                } else {
                    m.pending = true;
                    None
                };
                check!(got == want, "end_run {}: {got:?} vs {want:?}", run.id);
                if let Some(d) = got {
                    doomed.push(d);
                }
            }
            5 => {
                let _ = writeln!(log, "take_for_destroy {id}");
                let got = real.take_for_destroy(id);
                let want = match model.interps.get(&id) {
                    None => Err(Busy::Unknown),
                    Some(_) if model.used(id) => Err(Busy::Running),
                    Some(m) if !m.ours => Err(Busy::Unknown),
                    Some(_) => Ok(model.doom(id).unwrap()),
                };
                check!(got == want, "take_for_destroy {id}: {got:?} vs {want:?}");
                if let Ok(d) = got {
                    doomed.push(d);
                }
            }
            6 => {
                if !foreign.contains(&id) {
                    continue;
                }
                let _ = writeln!(log, "take_foreign {id}");
                let got = real.take_foreign(id, id * 10, id * 100);
                let want = match model.interps.entry(id) {
                    std::collections::btree_map::Entry::Occupied(_) => Err(Busy::Running),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(MInterp {
                            doomed: true,
                            ..Default::default()
                        });
                        Ok(Doomed {
                            id,
                            interp: id * 10,
                            keeper: id * 100,
                        })
                    }
                };
                check!(got == want, "take_foreign {id}: {got:?} vs {want:?}");
                if let Ok(d) = got {
                    doomed.push(d);
                }
            }
            7 | 8 => {
                // The holder of a Doomed finalizes (all thread states besides the keeper are
                // deleted first) or is refused (threads still run; nothing deleted).
                if doomed.is_empty() {
                    continue;
                }
                let d = doomed.remove(rng.below(doomed.len()));
                let id = d.id;
                let ok = rng.flag();
                let _ = writeln!(log, "finalize {id} ok={ok}");
                let states = real.thread_states(id);
                let m = model.interps.get_mut(&id).unwrap();
                let mut want: Vec<T> = m.cached.iter().map(|&(_, ts)| ts).collect();
                want.extend(&m.dead);
                check!(states == want, "thread_states {id}: {states:?} vs {want:?}");
                if ok {
                    for ts in states {
                        check!(!deleted.contains(&ts), "thread state {ts} deleted twice");
                        deleted.push(ts);
                    }
                    real.finalized(d);
                    model.interps.remove(&id);
                } else {
                    real.refused(d);
                    m.doomed = false;
                    if !m.ours {
                        model.interps.remove(&id);
                    } else if m.refs == 0 {
                        m.pending = true;
                    }
                }
            }
            9 => {
                let _ = writeln!(log, "take_pending");
                let got = real.take_pending();
                let pending: Vec<i64> = model
                    .interps
                    .iter()
                    .filter(|(_, m)| m.pending && m.run.is_none() && !m.doomed)
                    .map(|(&id, _)| id)
                    .collect();
                let want: Vec<Doomed<I, T>> = pending
                    .into_iter()
                    .filter_map(|id| model.doom(id))
                    .collect();
                check!(got == want, "take_pending: {got:?} vs {want:?}");
                doomed.extend(got);
            }
            10 => {
                // OS thread `thread` exits: its cached states become dead.
                let _ = writeln!(log, "thread_exited {thread}");
                let mut states = Vec::new();
                for (&id, m) in model.interps.iter_mut() {
                    if let Some(pos) = m.cached.iter().position(|&(t, _)| t == thread) {
                        let (_, ts) = m.cached.remove(pos);
                        m.dead.push(ts);
                        states.push((id, ts));
                    }
                }
                real.thread_exited(thread, states);
            }
            11 => {
                if rng.below(8) != 0 {
                    continue;
                }
                let _ = writeln!(log, "close_for_exit");
                real.close_for_exit();
                model.exiting = true;
            }
            _ => {
                let _ = writeln!(log, "take_dead_threads {id}");
                let got = real.take_dead_threads(id);
                let want = model
                    .interps
                    .get_mut(&id)
                    .map(|m| std::mem::take(&mut m.dead))
                    .unwrap_or_default();
                check!(got == want, "take_dead_threads {id}: {got:?} vs {want:?}");
                for ts in got {
                    check!(!deleted.contains(&ts), "thread state {ts} deleted twice");
                    deleted.push(ts);
                }
            }
        }
        // Every interpreter's bookkeeping agrees, after every step.
        for id in ours.iter().chain(&foreign).copied() {
            let want = model.state(id);
            check!(
                real.state(id) == want,
                "state of {id}: {:?} vs {want:?}",
                real.state(id)
            );
            let m = model.interps.get(&id);
            check!(
                real.is_created(id) == m.is_some_and(|m| m.ours),
                "is_created {id}"
            );
            check!(real.refs(id) == m.map_or(0, |m| m.refs), "refs of {id}");
            check!(real.is_busy(id) == model.used(id), "is_busy {id}");
            let cached = m.map_or(0, |m| m.cached.len() + m.dead.len());
            check!(real.cached_count(id) == cached, "cached_count {id}");
            // One user at a time, and at most one Doomed per interpreter.
            let outstanding = doomed.iter().filter(|d| d.id == id).count();
            check!(outstanding <= 1, "{outstanding} Doomed for {id}");
            check!(
                !(outstanding == 1 && runs.iter().any(|r| r.id == id)),
                "{id} doomed while running"
            );
            // Doomed exactly when nothing counts on an idle interpreter of ours (or on request).
            if let Some(m) = m {
                if m.ours && m.refs == 0 && m.run.is_none() {
                    check!(m.doomed || m.pending, "{id} unreferenced, idle and kept");
                }
            }
        }
        let want_runs: Vec<(i64, I, u64)> = model
            .interps
            .iter()
            .filter_map(|(&id, m)| m.run.map(|r| (id, id * 10, r)))
            .collect();
        check!(real.runs_in_progress() == want_runs, "runs_in_progress");
        for id in ours.iter().chain(&foreign).copied() {
            let want = want_runs
                .iter()
                .find(|r| r.0 == id)
                .map(|&(_, interp, runner)| (interp, runner));
            check!(real.run_of(id) == want, "run_of {id}");
            for thread in 1..=3 {
                let want = want.filter(|&(_, r)| r == thread).map(|(interp, _)| interp);
                check!(
                    real.running_on(id, thread) == want,
                    "running_on {id} {thread}"
                );
            }
        }
        let left: Vec<i64> = model
            .interps
            .iter()
            .filter(|(&id, m)| m.ours || model.used(id))
            .map(|(&id, _)| id)
            .collect();
        check!(real.left_at_exit() == left, "left_at_exit");
        check!(
            real.any_finalizing() == model.interps.values().any(|m| m.doomed && m.run.is_none()),
            "any_finalizing"
        );
    }
}

#[test]
fn random_sequences_match_the_model() {
    if let Ok(seed) = std::env::var("MODEL_SEED") {
        run_case(seed.parse().expect("MODEL_SEED is a number"), 400);
        return;
    }
    let cases: u64 = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    for seed in 0..cases {
        run_case(seed, 400);
    }
}
