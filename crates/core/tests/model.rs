//! Model-based test: random operation sequences run against the real registry and against a
//! small reference model of docs/channels.md (object count, close and release), written separately
//! from the implementation and kept as plain as possible. Every result, every channel's bookkeeping
//! and every queue is compared after every step.
//!
//! On a mismatch the panic message carries the seed and the operations so far; rerun one
//! sequence with `MODEL_SEED=<seed> cargo test -p subinterpreters-core --test model`. Set
//! `MODEL_CASES` to run more or fewer sequences.
//!
//! This binary holds a single test on purpose: `list_all` adds a count to every registered
//! channel for a moment, which would disturb exact object counts checked by a parallel test.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use subinterpreters_core::registry;
use subinterpreters_core::{
    ChannelError, ChannelId, ChannelRef, ChannelState, End, InterpId, ItemSummary, Value,
};

mod common;
use common::Rng;

// ---------------------------------------------------------------------------------------------
// Random choices beyond common::Rng.

/// Channel ends at random.
trait RandomEnd {
    fn end(&mut self) -> End;
}

impl RandomEnd for Rng {
    fn end(&mut self) -> End {
        [End::Send, End::Recv, End::Both][self.below(3)]
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Int(i64),
    Handle(ChannelId, End),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    No,
    ByClose,
    ByRelease,
}

#[derive(Debug)]
struct Chan {
    handles: usize,
    queue: Vec<Item>,
    send: BTreeMap<InterpId, bool>,
    recv: BTreeMap<InterpId, bool>,
    /// 3.11's open counts (send, recv): up when an interpreter first uses an end, down on every
    /// release of a known association, already released or not.
    open: (i64, i64),
    closing: bool,
    closed: Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fail {
    NotFound,
    Closed,
    AlreadyClosed,
    NotEmpty,
}

#[derive(Default)]
struct Model {
    chans: BTreeMap<ChannelId, Chan>,
}

impl Model {
    fn create(&mut self, id: ChannelId) {
        let chan = Chan {
            handles: 1,
            queue: Vec::new(),
            send: BTreeMap::new(),
            recv: BTreeMap::new(),
            open: (0, 0),
            closing: false,
            closed: Closed::No,
        };
        self.chans.insert(id, chan);
    }

    /// A new handle: counts only if the channel exists.
    fn add_handle(&mut self, id: ChannelId) -> bool {
        match self.chans.get_mut(&id) {
            Some(c) => {
                c.handles += 1;
                true
            }
            None => false,
        }
    }

    /// A handle goes away; at zero the channel and everything in its queue go too.
    fn drop_handle(&mut self, id: ChannelId) {
        let Some(c) = self.chans.get_mut(&id) else {
            return;
        };
        c.handles -= 1;
        if c.handles == 0 {
            let c = self.chans.remove(&id).unwrap();
            self.throw_away(c.queue);
        }
    }

    fn throw_away(&mut self, items: Vec<Item>) {
        for item in items {
            if let Item::Handle(id, _) = item {
                self.drop_handle(id);
            }
        }
    }

    /// What "look the channel up" gives send, recv, release and list: not found, or closed.
    fn usable(&mut self, id: ChannelId) -> Result<&mut Chan, Fail> {
        let c = self.chans.get_mut(&id).ok_or(Fail::NotFound)?;
        if c.closed != Closed::No {
            return Err(Fail::Closed);
        }
        Ok(c)
    }

    fn check_send(&mut self, id: ChannelId) -> Result<(), Fail> {
        let c = self.usable(id)?;
        if c.closing {
            return Err(Fail::Closed);
        }
        Ok(())
    }

    fn send(&mut self, id: ChannelId, interp: InterpId, item: Item) -> Result<(), Fail> {
        let result = self.try_send(id, interp, item);
        if result.is_err() {
            // The refused value is dropped.
            self.throw_away(vec![item]);
        }
        result
    }

    fn try_send(&mut self, id: ChannelId, interp: InterpId, item: Item) -> Result<(), Fail> {
        self.check_send(id)?;
        let c = self.usable(id)?;
        if c.send.get(&interp) == Some(&false) {
            return Err(Fail::AlreadyClosed);
        }
        if c.send.insert(interp, true).is_none() {
            c.open.0 += 1;
        }
        c.queue.push(item);
        Ok(())
    }

    fn recv(&mut self, id: ChannelId, interp: InterpId) -> Result<Option<Item>, Fail> {
        let c = self.usable(id)?;
        if c.recv.get(&interp) == Some(&false) {
            return Err(Fail::AlreadyClosed);
        }
        if c.recv.insert(interp, true).is_none() {
            c.open.1 += 1;
        }
        if c.queue.is_empty() {
            return Ok(None);
        }
        let item = c.queue.remove(0);
        if c.closing && c.queue.is_empty() {
            c.closed = Closed::ByClose;
            c.closing = false;
            c.send.clear();
            c.recv.clear();
            c.open = (0, 0);
        }
        Ok(Some(item))
    }

    /// docs/channels.md#close, read row by row.
    fn close(&mut self, id: ChannelId, send: bool, recv: bool, force: bool) -> Result<(), Fail> {
        let send_only = send && !recv;
        let c = self.chans.get_mut(&id).ok_or(Fail::NotFound)?;
        match c.closed {
            Closed::ByClose => return Err(Fail::Closed),
            // CPython tests "closing and send-only" before "closed by release", so a closing
            // channel that a release closed answers that one case with `channel N closed`.
            Closed::ByRelease if c.closing && send_only && !force => return Err(Fail::Closed),
            Closed::ByRelease => return Err(Fail::AlreadyClosed),
            Closed::No => {}
        }
        if !c.queue.is_empty() && !force {
            if !send_only {
                return Err(Fail::NotEmpty);
            }
            if c.closing {
                return Err(Fail::Closed);
            }
            c.closing = true;
            return Ok(());
        }
        c.closed = Closed::ByClose;
        c.closing = false;
        c.send.clear();
        c.recv.clear();
        c.open = (0, 0);
        let items = std::mem::take(&mut c.queue);
        self.throw_away(items);
        Ok(())
    }

    /// Release, then closed for everyone iff both open counts are zero. A known association
    /// counts down (again, if already released); a new one is recorded released and counts
    /// nothing.
    fn release(
        &mut self,
        id: ChannelId,
        interp: InterpId,
        send: bool,
        recv: bool,
    ) -> Result<(), Fail> {
        let c = self.usable(id)?;
        let (send, recv) = if send == recv {
            (true, true)
        } else {
            (send, recv)
        };
        if send && c.send.insert(interp, false).is_some() {
            c.open.0 -= 1;
        }
        if recv && c.recv.insert(interp, false).is_some() {
            c.open.1 -= 1;
        }
        if c.open == (0, 0) {
            c.closed = Closed::ByRelease;
        }
        Ok(())
    }

    fn list_interpreters(&mut self, id: ChannelId, send: bool) -> Result<Vec<InterpId>, Fail> {
        let c = self.usable(id)?;
        if send && c.closing {
            return Err(Fail::Closed);
        }
        let end = if send { &c.send } else { &c.recv };
        Ok(end
            .iter()
            .filter(|(_, &open)| open)
            .map(|(&i, _)| i)
            .collect())
    }

    fn destroy(&mut self, id: ChannelId) -> Result<(), Fail> {
        let c = self.chans.remove(&id).ok_or(Fail::NotFound)?;
        self.throw_away(c.queue);
        Ok(())
    }

    fn state(c: &Chan) -> ChannelState {
        match (c.closed, c.closing) {
            (Closed::ByClose, _) => ChannelState::ClosedByClose,
            (Closed::ByRelease, _) => ChannelState::ClosedByRelease,
            (Closed::No, true) => ChannelState::Closing,
            (Closed::No, false) => ChannelState::Open,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving both sides.

const INTERPS: i64 = 3;
const MAX_CHANNELS: usize = 5;

fn real_err(e: ChannelError, id: ChannelId) -> Fail {
    match e {
        ChannelError::NotFound(n) if n == id => Fail::NotFound,
        ChannelError::Closed(n) if n == id => Fail::Closed,
        ChannelError::AlreadyClosed => Fail::AlreadyClosed,
        ChannelError::NotEmpty => Fail::NotEmpty,
        other => panic!("error for the wrong channel or of an unexpected kind: {other:?}"),
    }
}

fn real<T>(r: Result<T, ChannelError>, id: ChannelId) -> Result<T, Fail> {
    r.map_err(|e| real_err(e, id))
}

fn summary(item: Item) -> ItemSummary {
    match item {
        Item::Int(i) => ItemSummary::Int(i),
        Item::Handle(id, end) => ItemSummary::Channel { id, end },
    }
}

struct Run {
    seed: u64,
    rng: Rng,
    model: Model,
    /// Every id created in this run, plus ids that were never registered.
    ids: Vec<ChannelId>,
    /// Live handles held by the test (the model counts them in `Chan::handles`).
    handles: Vec<ChannelRef>,
    log: String,
    next_int: i64,
}

impl Run {
    fn fail(&self, what: String) -> ! {
        panic!(
            "model mismatch (seed {:#x}): {what}\noperations:\n{}",
            self.seed, self.log
        );
    }

    fn same<T: PartialEq + std::fmt::Debug>(&self, what: &str, real: T, model: T) {
        if real != model {
            self.fail(format!("{what}: real {real:?}, model {model:?}"));
        }
    }

    fn pick_id(&mut self) -> ChannelId {
        // Mostly ids of this run; sometimes one no channel will ever have.
        if self.ids.is_empty() || self.rng.chance(3) {
            i64::MAX - self.rng.below(3) as i64
        } else {
            self.ids[self.rng.below(self.ids.len())]
        }
    }

    fn live_channels(&self) -> usize {
        self.model.chans.len()
    }

    /// A value to send: mostly integers, sometimes a copy of a handle we hold.
    fn make_value(&mut self) -> (Value, Item) {
        if !self.handles.is_empty() && self.rng.chance(30) {
            let i = self.rng.below(self.handles.len());
            let end = self.rng.end();
            let handle = self.handles[i].with_end(end);
            self.model.add_handle(handle.id());
            let item = Item::Handle(handle.id(), end);
            (Value::Channel(handle), item)
        } else {
            self.next_int += 1;
            (Value::Int(self.next_int), Item::Int(self.next_int))
        }
    }

    fn step(&mut self) {
        let choice = self.rng.below(100);
        match choice {
            0..=7 => {
                if self.live_channels() >= MAX_CHANNELS {
                    return;
                }
                let h = registry::create();
                let _ = writeln!(self.log, "create -> {}", h.id());
                if self.ids.contains(&h.id()) || h.end() != End::Both {
                    self.fail(format!("create returned {h:?}"));
                }
                self.model.create(h.id());
                self.ids.push(h.id());
                self.handles.push(h);
            }
            8..=27 => {
                let (id, interp) = (self.pick_id(), self.rng.below(INTERPS as usize) as i64);
                let (value, item) = self.make_value();
                let _ = writeln!(self.log, "send({id}, interp {interp}, {item:?})");
                let got = real(registry::send(id, interp, value), id);
                let want = self.model.send(id, interp, item);
                self.same("send", got, want);
            }
            28..=31 => {
                let (id, interp) = (self.pick_id(), self.rng.below(INTERPS as usize) as i64);
                let _ = writeln!(self.log, "check_send({id}, interp {interp})");
                let got = real(registry::check_send(id, interp), id);
                let want = self.model.check_send(id);
                self.same("check_send", got, want);
            }
            32..=51 => {
                let (id, interp) = (self.pick_id(), self.rng.below(INTERPS as usize) as i64);
                let _ = writeln!(self.log, "recv({id}, interp {interp})");
                let got = real(registry::recv(id, interp), id);
                let want = self.model.recv(id, interp);
                match (got, want) {
                    (Ok(Some(value)), Ok(Some(item))) => {
                        self.same("recv item", value.summary(), summary(item));
                        if let Value::Channel(h) = value {
                            // The handle moves from the queue to us: no count changes.
                            self.handles.push(h);
                        }
                    }
                    (got, want) => {
                        let got = got.map(|v| v.map(|v| v.summary()));
                        self.same("recv", got, want.map(|i| i.map(summary)));
                    }
                }
            }
            52..=61 => {
                let id = self.pick_id();
                // Send-only closes are weighted up: they lead to the closing state.
                let (send, recv) = match self.rng.below(5) {
                    0 | 1 => (true, false),
                    2 => (false, true),
                    3 => (false, false),
                    _ => (true, true),
                };
                let force = self.rng.chance(20);
                let _ = writeln!(
                    self.log,
                    "close({id}, send={send}, recv={recv}, force={force})"
                );
                let got = real(registry::close(id, send, recv, force), id);
                let want = self.model.close(id, send, recv, force);
                self.same("close", got, want);
            }
            62..=69 => {
                let (id, interp) = (self.pick_id(), self.rng.below(INTERPS as usize) as i64);
                let (send, recv) = (self.rng.flag(), self.rng.flag());
                let _ = writeln!(
                    self.log,
                    "release({id}, interp {interp}, send={send}, recv={recv})"
                );
                let got = real(registry::release(id, interp, send, recv), id);
                let want = self.model.release(id, interp, send, recv);
                self.same("release", got, want);
            }
            70..=72 => {
                let id = self.pick_id();
                let _ = writeln!(self.log, "destroy({id})");
                let got = real(registry::destroy(id), id);
                let want = self.model.destroy(id);
                self.same("destroy", got, want);
            }
            73..=82 => {
                if self.handles.is_empty() {
                    return;
                }
                let i = self.rng.below(self.handles.len());
                let h = self.handles.swap_remove(i);
                let _ = writeln!(self.log, "drop handle {h:?}");
                let id = h.id();
                drop(h);
                self.model.drop_handle(id);
            }
            83..=86 => {
                if self.handles.is_empty() {
                    return;
                }
                let i = self.rng.below(self.handles.len());
                let end = self.rng.end();
                let h = if self.rng.flag() {
                    self.handles[i].clone()
                } else {
                    self.handles[i].with_end(end)
                };
                let _ = writeln!(self.log, "copy handle {:?} -> {h:?}", self.handles[i]);
                self.model.add_handle(h.id());
                self.handles.push(h);
            }
            87..=89 => {
                let (id, end) = (self.pick_id(), self.rng.end());
                let forced = self.rng.flag();
                let _ = writeln!(self.log, "lookup({id}, {end:?}, forced={forced})");
                let got = if forced {
                    registry::forced_ref(id, end).ok_or(ChannelError::NotFound(id))
                } else {
                    registry::lookup(id, end)
                };
                let counted = self.model.add_handle(id);
                match got {
                    Ok(h) => {
                        if !counted || h.id() != id || h.end() != end {
                            self.fail(format!("lookup gave {h:?}; model has it: {counted}"));
                        }
                        self.handles.push(h);
                    }
                    Err(e) => {
                        self.same("lookup", real_err(e, id), Fail::NotFound);
                        if counted {
                            self.fail("lookup failed on a registered channel".into());
                        }
                    }
                }
            }
            90..=94 => {
                let (id, send) = (self.pick_id(), self.rng.flag());
                let _ = writeln!(self.log, "list_interpreters({id}, send={send})");
                let got = real(registry::list_interpreters(id, send), id);
                let want = self.model.list_interpreters(id, send);
                self.same("list_interpreters", got, want);
            }
            95..=96 => {
                let _ = writeln!(self.log, "list_all");
                let all = registry::list_all();
                let ours: Vec<(ChannelId, End)> = all
                    .iter()
                    .filter(|h| self.ids.contains(&h.id()))
                    .map(|h| (h.id(), h.end()))
                    .collect();
                let want: Vec<(ChannelId, End)> = self
                    .model
                    .chans
                    .keys()
                    .rev()
                    .map(|&id| (id, End::Both))
                    .collect();
                self.same("list_all", ours, want);
                // Other tests' channels come back too; dropping those handles undoes their +1.
                drop(all);
            }
            _ => {
                let id = self.pick_id();
                let _ = writeln!(self.log, "count({id})");
                let got = real(registry::count(id), id);
                let want = self
                    .model
                    .chans
                    .get(&id)
                    .map(|c| c.queue.len())
                    .ok_or(Fail::NotFound);
                self.same("count", got, want);
            }
        }
        self.compare_all();
    }

    /// Every channel of this run: registered or not, state, counts, associations, queue.
    fn compare_all(&self) {
        for &id in &self.ids {
            let want = self.model.chans.get(&id);
            match (registry::info(id), want) {
                (Err(e), None) => self.same("info error", real_err(e, id), Fail::NotFound),
                (Ok(info), Some(c)) => {
                    let what = format!("channel {id}");
                    self.same(&format!("{what} state"), info.state, Model::state(c));
                    self.same(&format!("{what} closing"), info.closing, c.closing);
                    self.same(
                        &format!("{what} object count"),
                        info.object_count,
                        c.handles,
                    );
                    self.same(&format!("{what} queued"), info.queued, c.queue.len());
                    self.same(&format!("{what} open counts"), info.open_counts, c.open);
                    let sorted = |mut v: Vec<(InterpId, bool)>| {
                        v.sort_unstable();
                        v
                    };
                    let model_send: Vec<_> = c.send.iter().map(|(&i, &o)| (i, o)).collect();
                    let model_recv: Vec<_> = c.recv.iter().map(|(&i, &o)| (i, o)).collect();
                    self.same(
                        &format!("{what} send associations"),
                        sorted(info.send),
                        model_send,
                    );
                    self.same(
                        &format!("{what} recv associations"),
                        sorted(info.recv),
                        model_recv,
                    );
                    let queue = registry::queue_summary(id).unwrap();
                    let model_queue: Vec<_> = c.queue.iter().copied().map(summary).collect();
                    self.same(&format!("{what} queue"), queue, model_queue);
                }
                (real, model) => self.fail(format!(
                    "channel {id}: real {:?}, model {}",
                    real.map(|i| i.state),
                    if model.is_some() {
                        "registered"
                    } else {
                        "gone"
                    }
                )),
            }
        }
    }

    /// Drops every handle, checks what survives (only channels kept by cycles), then destroys
    /// the rest so that the next run starts clean.
    fn finish(&mut self) {
        let _ = writeln!(self.log, "drop all handles");
        for h in std::mem::take(&mut self.handles) {
            let id = h.id();
            drop(h);
            self.model.drop_handle(id);
        }
        self.compare_all();
        let _ = writeln!(self.log, "destroy the rest");
        let left: Vec<ChannelId> = self.model.chans.keys().copied().collect();
        for id in left {
            // Destroying one may free others (their last handles were in its queue).
            if self.model.chans.contains_key(&id) {
                let got = real(registry::destroy(id), id);
                let want = self.model.destroy(id);
                self.same("final destroy", got, want);
            }
        }
        self.compare_all();
        if !self.model.chans.is_empty() {
            self.fail("channels left after cleanup".into());
        }
    }
}

fn run_one(seed: u64, steps: usize) {
    let mut run = Run {
        seed,
        rng: Rng(seed),
        model: Model::default(),
        ids: Vec::new(),
        handles: Vec::new(),
        log: String::new(),
        next_int: 0,
    };
    for _ in 0..steps {
        run.step();
    }
    run.finish();
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[test]
fn registry_matches_the_model() {
    let steps = if cfg!(miri) { 30 } else { 80 };
    if let Some(seed) = env_number("MODEL_SEED") {
        run_one(seed, steps);
        return;
    }
    let cases = env_number("MODEL_CASES").unwrap_or(if cfg!(miri) { 10 } else { 3_000 });
    let mut seeds = Rng(0x5EED_0FC0_FFEE);
    for _ in 0..cases {
        run_one(seeds.next(), steps);
    }
}
