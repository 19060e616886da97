//! Model-based test of the queue registry: random operation sequences run against the real
//! registry and against a small reference model of 3.14's queue rules (handles, maxsize, FIFO,
//! unbound ops, destruction freeing the handles held by items), written separately from the
//! implementation. Every result and every queue's bookkeeping and items are compared after every
//! step.
//!
//! On a mismatch the panic message carries the seed and the operations so far; rerun one
//! sequence with `MODEL_SEED=<seed> cargo test -p subinterpreters-core --test queue_model`. Set
//! `MODEL_CASES` to run more or fewer sequences.
//!
//! A single test in its own binary: `interp_destroyed` visits every queue in the process.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use subinterpreters_core::queue::{self, QueueDefaults, UnboundOp, Wait};
use subinterpreters_core::{
    InterpId, ItemSummary, QueueError, QueueId, QueueRef, QueuedItem, Received, Value,
};

mod common;
use common::Rng;

/// Unbound ops at random.
trait RandomOp {
    fn op(&mut self) -> UnboundOp;
}

impl RandomOp for Rng {
    fn op(&mut self) -> UnboundOp {
        [UnboundOp::Remove, UnboundOp::Error, UnboundOp::Replace][self.below(3)]
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Int(i64),
    Handle(QueueId),
}

#[derive(Clone, Copy, Debug)]
struct MItem {
    owner: InterpId,
    op: UnboundOp,
    /// `None` once unbound.
    val: Option<Val>,
}

#[derive(Debug)]
struct MQueue {
    handles: usize,
    maxsize: i64,
    default: UnboundOp,
    items: VecDeque<MItem>,
}

#[derive(Default)]
struct Model {
    queues: BTreeMap<QueueId, MQueue>,
}

/// What `get` gave, in model terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Val(Val),
    Unbound,
    Destroyed,
}

impl Model {
    fn incref(&mut self, id: QueueId) {
        if let Some(q) = self.queues.get_mut(&id) {
            q.handles += 1;
        }
    }

    /// Drops handles, freeing queues at zero and, in turn, the handles their items held.
    fn decref(&mut self, ids: impl IntoIterator<Item = QueueId>) {
        let mut stack: Vec<QueueId> = ids.into_iter().collect();
        while let Some(id) = stack.pop() {
            let Some(q) = self.queues.get_mut(&id) else {
                continue;
            };
            q.handles -= 1;
            if q.handles == 0 {
                let q = self.queues.remove(&id).unwrap();
                stack.extend(handles_in(q.items));
            }
        }
    }

    fn destroy(&mut self, id: QueueId) -> bool {
        match self.queues.remove(&id) {
            Some(q) => {
                self.decref(handles_in(q.items));
                true
            }
            None => false,
        }
    }

    fn put(
        &mut self,
        id: QueueId,
        owner: InterpId,
        op: Option<UnboundOp>,
        val: Val,
    ) -> Result<(), Fail> {
        let Some(q) = self.queues.get_mut(&id) else {
            return Err(Fail::Destroyed);
        };
        if q.maxsize > 0 && q.items.len() as i64 >= q.maxsize {
            return Err(Fail::Full);
        }
        let op = op.unwrap_or(q.default);
        q.items.push_back(MItem {
            owner,
            op,
            val: Some(val),
        });
        Ok(())
    }

    fn get(&mut self, id: QueueId) -> Result<Got, Fail> {
        let q = self.queues.get_mut(&id).ok_or(Fail::Destroyed)?;
        let item = q.items.pop_front().ok_or(Fail::Empty)?;
        Ok(match (item.val, item.op) {
            (Some(v), _) => Got::Val(v),
            (None, UnboundOp::Error) => Got::Destroyed,
            (None, _) => Got::Unbound,
        })
    }

    fn interp_destroyed(&mut self, interp: InterpId) -> usize {
        let mut dropped = Vec::new();
        let mut affected = 0;
        for q in self.queues.values_mut() {
            let mut kept = VecDeque::new();
            for mut item in q.items.drain(..) {
                if item.owner == interp && item.val.is_some() {
                    affected += 1;
                    if let Some(Val::Handle(h)) = item.val.take() {
                        dropped.push(h);
                    }
                    if item.op == UnboundOp::Remove {
                        continue;
                    }
                }
                kept.push_back(item);
            }
            q.items = kept;
        }
        self.decref(dropped);
        affected
    }
}

fn handles_in(items: VecDeque<MItem>) -> Vec<QueueId> {
    items
        .into_iter()
        .filter_map(|i| match i.val {
            Some(Val::Handle(h)) => Some(h),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fail {
    Destroyed,
    Full,
    Empty,
}

fn fail_of(e: QueueError) -> Fail {
    match e {
        QueueError::Destroyed(_) => Fail::Destroyed,
        QueueError::Full(_) => Fail::Full,
        QueueError::Empty(_) => Fail::Empty,
        other => panic!("unexpected error {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct Case {
    seed: u64,
    log: String,
    model: Model,
    /// Handles the test holds, with the id each designates in the model.
    held: Vec<QueueRef>,
    /// Counts taken with `bind`, to give back with `release`.
    bound: Vec<QueueId>,
    created: Vec<QueueId>,
    next_int: i64,
}

impl Case {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "model mismatch: {what}\nseed {} (MODEL_SEED={} to rerun)\nops:\n{}",
            self.seed, self.seed, self.log
        );
    }

    fn same<T: PartialEq + std::fmt::Debug>(&self, what: &str, real: T, model: T) {
        if real != model {
            self.fail(&format!("{what}: real {real:?}, model {model:?}"));
        }
    }

    fn pick_id(&mut self, rng: &mut Rng) -> QueueId {
        match self.created.len() {
            0 => 1,
            n if rng.below(10) == 0 => self.created[n - 1] + 1,
            n => self.created[rng.below(n)],
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        let choice = rng.below(100);
        match choice {
            0..=9 => {
                let maxsize = [-1, 0, 1, 2, 3][rng.below(5)];
                let default = rng.op();
                let defaults = QueueDefaults {
                    unbound: default,
                    ..QueueDefaults::default()
                };
                let q = queue::create(maxsize, defaults).unwrap();
                let _ = writeln!(self.log, "create({maxsize}, {default:?}) -> {}", q.id());
                self.model.queues.insert(
                    q.id(),
                    MQueue {
                        handles: 1,
                        maxsize,
                        default,
                        items: VecDeque::new(),
                    },
                );
                self.created.push(q.id());
                self.held.push(q);
            }
            10..=14 if !self.held.is_empty() => {
                let i = rng.below(self.held.len());
                let _ = writeln!(self.log, "clone({})", self.held[i].id());
                self.model.incref(self.held[i].id());
                let h = self.held[i].clone();
                self.held.push(h);
            }
            15..=24 if !self.held.is_empty() => {
                let i = rng.below(self.held.len());
                let h = self.held.swap_remove(i);
                let _ = writeln!(self.log, "drop({})", h.id());
                self.model.decref([h.id()]);
                drop(h);
            }
            25..=29 => {
                let id = self.pick_id(rng);
                let _ = writeln!(self.log, "open({id})");
                let real = QueueRef::open(id);
                let alive = self.model.queues.contains_key(&id);
                self.same("open ok", real.is_ok(), alive);
                match real {
                    Ok(h) => {
                        self.model.incref(id);
                        self.held.push(h);
                    }
                    Err(e) => self.same("open error", e, QueueError::NotFound(id)),
                }
            }
            30..=54 if !self.held.is_empty() => {
                let target = self.held[rng.below(self.held.len())].clone();
                self.model.incref(target.id());
                let id = target.id();
                let owner = 1 + rng.below(3) as InterpId;
                let op = if rng.below(3) == 0 {
                    None
                } else {
                    Some(rng.op())
                };
                let (value, val) = if rng.below(4) == 0 {
                    let h = self.held[rng.below(self.held.len())].clone();
                    self.model.incref(h.id());
                    let hid = h.id();
                    (Value::Queue(h), Val::Handle(hid))
                } else {
                    self.next_int += 1;
                    (Value::Int(self.next_int), Val::Int(self.next_int))
                };
                let _ = writeln!(self.log, "put({id}, {val:?}, owner {owner}, {op:?})");
                let real = target.put(value, owner, op, Wait::NoWait);
                let model = self.model.put(id, owner, op, val);
                match real {
                    Ok(()) => self.same("put", Ok(()), model),
                    Err(e) => {
                        self.same("put", Err(fail_of(e.error)), model);
                        // The refused value comes back and is dropped here.
                        if let Val::Handle(h) = val {
                            drop(e.into_value());
                            self.model.decref([h]);
                        }
                    }
                }
                self.model.decref([id]);
                drop(target);
            }
            55..=74 if !self.held.is_empty() => {
                let target = self.held[rng.below(self.held.len())].clone();
                self.model.incref(target.id());
                let id = target.id();
                let _ = writeln!(self.log, "get({id})");
                let real = target.get(Wait::NoWait);
                let model = self.model.get(id);
                match real {
                    Ok(Received::Value(Value::Int(i))) => {
                        self.same("get", Ok(Got::Val(Val::Int(i))), model)
                    }
                    Ok(Received::Value(Value::Queue(h))) => {
                        self.same("get", Ok(Got::Val(Val::Handle(h.id()))), model);
                        self.held.push(h);
                    }
                    Ok(Received::Value(other)) => self.fail(&format!("got {other:?}")),
                    Ok(Received::Unbound) => self.same("get", Ok(Got::Unbound), model),
                    Ok(Received::InterpreterDestroyed) => {
                        self.same("get", Ok(Got::Destroyed), model)
                    }
                    Err(e) => self.same("get", Err(fail_of(e)), model),
                }
                self.model.decref([id]);
                drop(target);
            }
            75..=79 => {
                let id = self.pick_id(rng);
                let _ = writeln!(self.log, "destroy({id})");
                let real = queue::destroy(id);
                let model = self.model.destroy(id);
                self.same("destroy", real.is_ok(), model);
            }
            80..=86 => {
                let interp = 1 + rng.below(3) as InterpId;
                let _ = writeln!(self.log, "interp_destroyed({interp})");
                let real = queue::interp_destroyed(interp);
                let model = self.model.interp_destroyed(interp);
                self.same("interp_destroyed", real, model);
            }
            87..=91 => {
                let id = self.pick_id(rng);
                let _ = writeln!(self.log, "bind({id})");
                let real = queue::bind(id);
                self.same("bind", real.is_ok(), self.model.queues.contains_key(&id));
                if real.is_ok() {
                    self.model.incref(id);
                    self.bound.push(id);
                }
            }
            92..=96 if !self.bound.is_empty() => {
                let id = self.bound.swap_remove(rng.below(self.bound.len()));
                let _ = writeln!(self.log, "release({id})");
                let alive = self.model.queues.get(&id).map(|q| q.handles);
                let real = queue::release(id);
                match alive {
                    None => self.same("release", real, Err(QueueError::NotFound(id))),
                    Some(n) => {
                        self.same("release", real, Ok(n == 1));
                        self.model.decref([id]);
                    }
                }
            }
            _ => {}
        }
        self.check();
    }

    fn check(&self) {
        for &id in &self.created {
            let real = queue::info(id);
            match self.model.queues.get(&id) {
                None => self.same(&format!("info({id})"), real, Err(QueueError::NotFound(id))),
                Some(q) => {
                    let Ok(info) = real else {
                        self.fail(&format!("queue {id} missing: {real:?}"));
                    };
                    self.same(&format!("handles of {id}"), info.handles, q.handles);
                    self.same(&format!("count of {id}"), info.count, q.items.len());
                    self.same(&format!("maxsize of {id}"), info.maxsize, q.maxsize);
                    let unbound = q.items.iter().filter(|i| i.val.is_none()).count();
                    self.same(&format!("unbound of {id}"), info.unbound, unbound);
                    let h = QueueRef::open(id).unwrap();
                    let full = q.maxsize > 0 && q.items.len() as i64 >= q.maxsize;
                    self.same(&format!("full({id})"), h.is_full(), Ok(full));
                    let expected: Vec<QueuedItem> = q
                        .items
                        .iter()
                        .map(|i| QueuedItem {
                            owner: i.owner,
                            unbound: i.op,
                            value: i.val.map(|v| match v {
                                Val::Int(n) => ItemSummary::Int(n),
                                Val::Handle(h) => ItemSummary::Queue { id: h },
                            }),
                        })
                        .collect();
                    self.same(&format!("items of {id}"), h.items(), Ok(expected));
                }
            }
        }
        let mut listed: Vec<QueueId> = queue::list_all().into_iter().map(|(id, _)| id).collect();
        listed.reverse();
        let model: Vec<QueueId> = self.model.queues.keys().copied().collect();
        self.same("list_all", listed, model);
    }

    /// Drops everything the case holds and checks that every queue it made is gone, except
    /// those kept alive by a cycle (as in CPython), which it destroys.
    fn finish(mut self) {
        let held = std::mem::take(&mut self.held);
        self.model.decref(held.iter().map(QueueRef::id));
        drop(held);
        for id in std::mem::take(&mut self.bound) {
            if queue::release(id).is_ok() {
                self.model.decref([id]);
            }
        }
        self.check();
        for id in self.model.queues.keys().copied().collect::<Vec<_>>() {
            // Destroying one queue of a cycle may free the others.
            let real = queue::destroy(id);
            let model = self.model.destroy(id);
            self.same(&format!("destroy({id})"), real.is_ok(), model);
        }
        self.check();
        assert!(self.created.iter().all(|&id| queue::info(id).is_err()));
    }
}

#[test]
fn queue_registry_matches_model() {
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("MODEL_SEED must be an integer")],
        Err(_) => {
            let cases: u64 = std::env::var("MODEL_CASES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(if cfg!(miri) { 2 } else { 300 });
            (0..cases).collect()
        }
    };
    for seed in seeds {
        let mut rng = Rng(seed);
        let mut case = Case {
            seed,
            log: String::new(),
            model: Model::default(),
            held: Vec::new(),
            bound: Vec::new(),
            created: Vec::new(),
            next_int: 0,
        };
        for _ in 0..150 {
            case.step(&mut rng);
        }
        case.finish();
    }
}
