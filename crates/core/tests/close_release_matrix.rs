//! The close/release decision table of docs/channels.md#close-and-release as data: each row names a
//! starting state (built by setup operations on a fresh channel), one operation, the result it must
//! give, and the state the channel must be left in.
//!
//! Rows whose operation is a `close` list the ends and `force` values they cover; the runner
//! tries every combination on its own fresh channel, so "any end / any force" rows are checked
//! in full. Channels are made fresh per case, so the rows do not depend on each other or on
//! other tests running in parallel against the same global registry.

use subinterpreters_core::registry;
use subinterpreters_core::{ChannelError, ChannelId, ChannelState, End, InterpId, Value};

/// `force` values a close row covers.
#[derive(Clone, Copy, Debug)]
enum Force {
    No,
    Yes,
    Any,
}

impl Force {
    fn values(self) -> &'static [bool] {
        match self {
            Force::No => &[false],
            Force::Yes => &[true],
            Force::Any => &[false, true],
        }
    }
}

/// One operation, as the extension would issue it.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Sends the row's next integer (1, 2, 3, … per case) from this interpreter.
    Send(InterpId),
    CheckSend(InterpId),
    Recv(InterpId),
    /// `close` with each of these ends (Both = both flags clear and both flags set) and forces.
    Close(&'static [End], Force),
    Release {
        interp: InterpId,
        send: bool,
        recv: bool,
    },
    List {
        send: bool,
    },
    Count,
    Destroy,
}

const ANY_END: &[End] = &[End::Send, End::Recv, End::Both];
const SEND_END: &[End] = &[End::Send];
const BOTH_END: &[End] = &[End::Both];
const RECV_OR_BOTH: &[End] = &[End::Recv, End::Both];

/// Setup shorthands.
const CLOSE: Op = Op::Close(BOTH_END, Force::No);
const CLOSE_SEND: Op = Op::Close(SEND_END, Force::No);
const fn release(interp: InterpId, send: bool, recv: bool) -> Op {
    Op::Release { interp, send, recv }
}

/// What the operation must return.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    /// `recv` result: the integer received, or nothing queued.
    Item(Option<i64>),
    Interps(&'static [InterpId]),
    Count(usize),
    NotFound,
    Closed,
    AlreadyClosed,
    NotEmpty,
}

/// The state the channel must be in afterwards: unregistered, or a state and a queue length.
#[derive(Clone, Copy, Debug)]
enum Then {
    Gone,
    Is(ChannelState, usize),
}

use ChannelState::{ClosedByClose, ClosedByRelease, Closing, Open};

struct Row {
    name: &'static str,
    setup: &'static [Op],
    op: Op,
    expect: Expect,
    then: Then,
}

const fn row(name: &'static str, setup: &'static [Op], op: Op, expect: Expect, then: Then) -> Row {
    Row {
        name,
        setup,
        op,
        expect,
        then,
    }
}

// Starting states used by many rows.
const OPEN_EMPTY: &[Op] = &[];
const OPEN_ITEMS: &[Op] = &[Op::Send(0)];
const CLOSING: &[Op] = &[Op::Send(0), Op::Send(0), CLOSE_SEND];
const CLOSED_BY_CLOSE: &[Op] = &[CLOSE];
const CLOSED_BY_DRAIN: &[Op] = &[Op::Send(0), CLOSE_SEND, Op::Recv(1)];
const CLOSED_BY_RELEASE: &[Op] = &[release(0, true, true)];
const RELEASED_WITH_ITEMS: &[Op] = &[Op::Send(0), release(0, true, false)];
const CLOSING_THEN_RELEASED: &[Op] = &[Op::Send(0), CLOSE_SEND, release(0, true, false)];
const DESTROYED: &[Op] = &[Op::Send(0), Op::Destroy];
/// A sub (1) sent; main (0) released its send end, then both ends: the second release counts
/// main's send end down again, to zero, while the sub's association is still open.
const RELEASED_TWICE: &[Op] = &[Op::Send(1), release(0, true, false), release(0, true, true)];
/// Main used both ends, then released its send end twice: the send end's count is below zero,
/// so the channel stays open although no association is.
const BELOW_ZERO: &[Op] = &[
    Op::Send(0),
    Op::Recv(0),
    release(0, true, false),
    release(0, true, true),
];

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // docs/channels.md#close: one row per line of the table.
    row("close: not registered", DESTROYED, Op::Close(ANY_END, Force::Any), Expect::NotFound, Then::Gone),
    row("close: closed by close", CLOSED_BY_CLOSE, Op::Close(ANY_END, Force::Any), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("close: closed by draining", CLOSED_BY_DRAIN, Op::Close(ANY_END, Force::Any), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("close: closed by release", CLOSED_BY_RELEASE, Op::Close(ANY_END, Force::Any), Expect::AlreadyClosed, Then::Is(ClosedByRelease, 0)),
    row("close: closed by release, items stranded", RELEASED_WITH_ITEMS, Op::Close(ANY_END, Force::Any), Expect::AlreadyClosed, Then::Is(ClosedByRelease, 1)),
    row("close: open, empty", OPEN_EMPTY, Op::Close(ANY_END, Force::Any), Expect::Ok, Then::Is(ClosedByClose, 0)),
    row("close: open, items, both/recv", OPEN_ITEMS, Op::Close(RECV_OR_BOTH, Force::No), Expect::NotEmpty, Then::Is(Open, 1)),
    row("close: open, items, send", OPEN_ITEMS, Op::Close(SEND_END, Force::No), Expect::Ok, Then::Is(Closing, 1)),
    row("close: open, items, force", OPEN_ITEMS, Op::Close(ANY_END, Force::Yes), Expect::Ok, Then::Is(ClosedByClose, 0)),
    row("close: closing, force", CLOSING, Op::Close(ANY_END, Force::Yes), Expect::Ok, Then::Is(ClosedByClose, 0)),
    row("close: closing, send", CLOSING, Op::Close(SEND_END, Force::No), Expect::Closed, Then::Is(Closing, 2)),
    row("close: closing, both/recv", CLOSING, Op::Close(RECV_OR_BOTH, Force::No), Expect::NotEmpty, Then::Is(Closing, 2)),
    // A closing channel that a release then closed: CPython checks "closing + send-only" before
    // "closed by release" (_channels_close), so only that combination says `channel N closed`.
    row("close: closing then released, send", CLOSING_THEN_RELEASED, Op::Close(SEND_END, Force::No), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("close: closing then released, send force", CLOSING_THEN_RELEASED, Op::Close(SEND_END, Force::Yes), Expect::AlreadyClosed, Then::Is(ClosedByRelease, 1)),
    row("close: closing then released, both/recv", CLOSING_THEN_RELEASED, Op::Close(RECV_OR_BOTH, Force::Any), Expect::AlreadyClosed, Then::Is(ClosedByRelease, 1)),

    // docs/channels.md#closing: behaviour while closing.
    row("closing: send from the sender", CLOSING, Op::Send(0), Expect::Closed, Then::Is(Closing, 2)),
    row("closing: send from a new interpreter", CLOSING, Op::Send(5), Expect::Closed, Then::Is(Closing, 2)),
    row("closing: check_send", CLOSING, Op::CheckSend(5), Expect::Closed, Then::Is(Closing, 2)),
    row("closing: recv by a never-associated interpreter", CLOSING, Op::Recv(9), Expect::Item(Some(1)), Then::Is(Closing, 1)),
    row("closing: recv of the last item closes", &[Op::Send(0), CLOSE_SEND], Op::Recv(9), Expect::Item(Some(1)), Then::Is(ClosedByClose, 0)),
    row("closing: recv after draining", CLOSED_BY_DRAIN, Op::Recv(1), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closing: list send end", CLOSING, Op::List { send: true }, Expect::Closed, Then::Is(Closing, 2)),
    row("closing: list recv end", &[Op::Recv(1), Op::Send(0), CLOSE_SEND], Op::List { send: false }, Expect::Interps(&[1]), Then::Is(Closing, 1)),
    row("closing: lone user releases both", &[Op::Send(0), CLOSE_SEND], release(0, true, true), Expect::Ok, Then::Is(ClosedByRelease, 1)),
    row("closing: receiver releases, sender still open", &[Op::Recv(1), Op::Send(0), CLOSE_SEND], release(1, false, true), Expect::Ok, Then::Is(Closing, 1)),
    row("closing: released caller cannot recv", &[Op::Recv(1), Op::Send(0), Op::Send(0), CLOSE_SEND, release(1, false, true)], Op::Recv(1), Expect::AlreadyClosed, Then::Is(Closing, 2)),

    // docs/channels.md#release: release and the "open for everyone" rule.
    row("release: never used, send", OPEN_EMPTY, release(0, true, false), Expect::Ok, Then::Is(ClosedByRelease, 0)),
    row("release: never used, recv", OPEN_EMPTY, release(0, false, true), Expect::Ok, Then::Is(ClosedByRelease, 0)),
    row("release: never used, no flag", OPEN_EMPTY, release(0, false, false), Expect::Ok, Then::Is(ClosedByRelease, 0)),
    row("release: lone sender strands items", OPEN_ITEMS, release(0, true, false), Expect::Ok, Then::Is(ClosedByRelease, 1)),
    row("release: other end still open", &[Op::Send(0), Op::Recv(0)], release(0, true, false), Expect::Ok, Then::Is(Open, 0)),
    row("release: releaser still uses its other end", &[Op::Send(0), Op::Send(0), Op::Recv(0), release(0, true, false)], Op::Recv(0), Expect::Item(Some(2)), Then::Is(Open, 0)),
    row("release: others keep using it", &[Op::Send(0), Op::Recv(1), release(0, true, true)], Op::Send(2), Expect::Ok, Then::Is(Open, 1)),
    row("release: released sender cannot send", &[Op::Recv(1), Op::Send(0), release(0, true, false)], Op::Send(0), Expect::AlreadyClosed, Then::Is(Open, 1)),
    row("release: released receiver cannot recv", &[Op::Recv(0), Op::Send(1), release(0, false, true)], Op::Recv(0), Expect::AlreadyClosed, Then::Is(Open, 1)),
    row("release: no flag releases both ends", &[Op::Recv(1), Op::Send(0), release(0, false, false)], Op::Recv(0), Expect::AlreadyClosed, Then::Is(Open, 1)),
    row("release: never-associated end is recorded released", &[Op::Send(0), release(1, false, true)], Op::Recv(1), Expect::AlreadyClosed, Then::Is(Open, 1)),
    // Repeating a release counts the end down again (3.11's open counts), with two outcomes.
    row("release: same end twice, other end open", &[Op::Recv(1), Op::Send(0), release(0, true, false)], release(0, true, false), Expect::Ok, Then::Is(Open, 1)),
    row("release: same end twice closes under another sender", &[Op::Send(0), Op::Send(1), release(0, true, false)], release(0, true, false), Expect::Ok, Then::Is(ClosedByRelease, 2)),
    row("release: send end then both closes under a sub's sender", &[Op::Send(1), release(0, true, false)], release(0, true, true), Expect::Ok, Then::Is(ClosedByRelease, 1)),
    row("release: count below zero keeps it open", &[Op::Send(0), Op::Recv(0), release(0, true, false)], release(0, true, true), Expect::Ok, Then::Is(Open, 0)),
    row("released twice: send is closed for everyone", RELEASED_TWICE, Op::Send(0), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("released twice: check_send is closed for everyone", RELEASED_TWICE, Op::CheckSend(0), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("released twice: a sub's send is closed", RELEASED_TWICE, Op::Send(1), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("released twice: recv", RELEASED_TWICE, Op::Recv(1), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("released twice: release", RELEASED_TWICE, release(1, true, true), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("released twice: close", RELEASED_TWICE, Op::Close(ANY_END, Force::Any), Expect::AlreadyClosed, Then::Is(ClosedByRelease, 1)),
    row("below zero: release by a sub", BELOW_ZERO, release(1, true, true), Expect::Ok, Then::Is(Open, 0)),
    row("below zero: check_send by a newcomer", BELOW_ZERO, Op::CheckSend(2), Expect::Ok, Then::Is(Open, 0)),
    row("below zero: send by a newcomer", BELOW_ZERO, Op::Send(2), Expect::Ok, Then::Is(Open, 1)),
    row("below zero: the releaser's own send", BELOW_ZERO, Op::Send(0), Expect::AlreadyClosed, Then::Is(Open, 0)),
    row("below zero: the releaser's check_send", BELOW_ZERO, Op::CheckSend(0), Expect::Ok, Then::Is(Open, 0)),
    row("below zero: list send end", BELOW_ZERO, Op::List { send: true }, Expect::Interps(&[]), Then::Is(Open, 0)),
    row("below zero: close", BELOW_ZERO, Op::Close(ANY_END, Force::Any), Expect::Ok, Then::Is(ClosedByClose, 0)),
    row("release: last open association", &[Op::Recv(1), Op::Send(0), release(0, true, false)], release(1, false, true), Expect::Ok, Then::Is(ClosedByRelease, 1)),
    row("release: check_send ignores own release", &[Op::Recv(1), Op::Send(0), release(0, true, false)], Op::CheckSend(0), Expect::Ok, Then::Is(Open, 1)),

    // docs/channels.md#operations-on-a-closed-channel: every other operation on a closed channel,
    // of either kind.
    row("closed by close: send", CLOSED_BY_CLOSE, Op::Send(0), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: check_send", CLOSED_BY_CLOSE, Op::CheckSend(0), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: recv", CLOSED_BY_CLOSE, Op::Recv(0), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: list send", CLOSED_BY_CLOSE, Op::List { send: true }, Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: list recv", CLOSED_BY_CLOSE, Op::List { send: false }, Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: release", CLOSED_BY_CLOSE, release(0, true, true), Expect::Closed, Then::Is(ClosedByClose, 0)),
    row("closed by close: count", CLOSED_BY_CLOSE, Op::Count, Expect::Count(0), Then::Is(ClosedByClose, 0)),
    row("closed by close: destroy", CLOSED_BY_CLOSE, Op::Destroy, Expect::Ok, Then::Gone),
    row("closed by release: send", RELEASED_WITH_ITEMS, Op::Send(1), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: check_send", RELEASED_WITH_ITEMS, Op::CheckSend(1), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: recv", RELEASED_WITH_ITEMS, Op::Recv(1), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: list send", RELEASED_WITH_ITEMS, Op::List { send: true }, Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: list recv", RELEASED_WITH_ITEMS, Op::List { send: false }, Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: release", RELEASED_WITH_ITEMS, release(1, false, true), Expect::Closed, Then::Is(ClosedByRelease, 1)),
    row("closed by release: count", RELEASED_WITH_ITEMS, Op::Count, Expect::Count(1), Then::Is(ClosedByRelease, 1)),
    row("closed by release: destroy", RELEASED_WITH_ITEMS, Op::Destroy, Expect::Ok, Then::Gone),

    // list_interpreters and association (docs/channels.md).
    row("list: open send associations", &[Op::Send(2), Op::Send(0), Op::Recv(1), release(2, true, false)], Op::List { send: true }, Expect::Interps(&[0]), Then::Is(Open, 1)),
    row("list: open recv associations, ascending", &[Op::Recv(3), Op::Recv(1), Op::Send(0)], Op::List { send: false }, Expect::Interps(&[1, 3]), Then::Is(Open, 1)),
    row("associate: recv on empty associates", &[Op::Recv(3)], Op::List { send: false }, Expect::Interps(&[3]), Then::Is(Open, 0)),
    row("associate: recv on empty returns nothing", OPEN_EMPTY, Op::Recv(3), Expect::Item(None), Then::Is(Open, 0)),
    row("associate: check_send does not associate", &[Op::CheckSend(4)], Op::List { send: true }, Expect::Interps(&[]), Then::Is(Open, 0)),
    row("associate: fifo across senders", &[Op::Send(0), Op::Send(1)], Op::Recv(2), Expect::Item(Some(1)), Then::Is(Open, 1)),

    // docs/channels.md#other-channel-functions: destroy.
    row("destroy: open with items", OPEN_ITEMS, Op::Destroy, Expect::Ok, Then::Gone),
    row("destroy: closing", CLOSING, Op::Destroy, Expect::Ok, Then::Gone),
    row("destroy: twice", DESTROYED, Op::Destroy, Expect::NotFound, Then::Gone),
    row("destroyed: send", DESTROYED, Op::Send(0), Expect::NotFound, Then::Gone),
    row("destroyed: check_send", DESTROYED, Op::CheckSend(0), Expect::NotFound, Then::Gone),
    row("destroyed: recv", DESTROYED, Op::Recv(0), Expect::NotFound, Then::Gone),
    row("destroyed: release", DESTROYED, release(0, true, true), Expect::NotFound, Then::Gone),
    row("destroyed: list", DESTROYED, Op::List { send: false }, Expect::NotFound, Then::Gone),
    row("destroyed: count", DESTROYED, Op::Count, Expect::NotFound, Then::Gone),
];

/// The result of one operation, in the terms of [`Expect`].
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Ok,
    Item(Option<i64>),
    Interps(Vec<InterpId>),
    Count(usize),
    Err(ChannelError),
}

impl Got {
    fn matches(&self, expect: Expect, id: ChannelId) -> bool {
        match (self, expect) {
            (Got::Ok, Expect::Ok) => true,
            (Got::Item(a), Expect::Item(b)) => *a == b,
            (Got::Interps(a), Expect::Interps(b)) => a == b,
            (Got::Count(a), Expect::Count(b)) => *a == b,
            (Got::Err(e), Expect::NotFound) => *e == ChannelError::NotFound(id),
            (Got::Err(e), Expect::Closed) => *e == ChannelError::Closed(id),
            (Got::Err(e), Expect::AlreadyClosed) => *e == ChannelError::AlreadyClosed,
            (Got::Err(e), Expect::NotEmpty) => *e == ChannelError::NotEmpty,
            _ => false,
        }
    }
}

fn flags(end: End) -> &'static [(bool, bool)] {
    match end {
        End::Send => &[(true, false)],
        End::Recv => &[(false, true)],
        End::Both => &[(false, false), (true, true)],
    }
}

/// A concrete operation: a close row expanded to one flag combination.
#[derive(Clone, Copy, Debug)]
enum Step {
    Op(Op),
    Close { send: bool, recv: bool, force: bool },
}

fn expand(op: Op) -> Vec<Step> {
    match op {
        Op::Close(ends, force) => {
            let mut out = Vec::new();
            for &end in ends {
                for &(send, recv) in flags(end) {
                    for &force in force.values() {
                        out.push(Step::Close { send, recv, force });
                    }
                }
            }
            out
        }
        other => vec![Step::Op(other)],
    }
}

fn apply(id: ChannelId, step: Step, next_item: &mut i64) -> Got {
    let unit = |r: Result<(), ChannelError>| r.map_or_else(Got::Err, |()| Got::Ok);
    match step {
        Step::Close { send, recv, force } => unit(registry::close(id, send, recv, force)),
        Step::Op(op) => match op {
            Op::Send(interp) => {
                *next_item += 1;
                unit(registry::send(id, interp, Value::Int(*next_item)))
            }
            Op::CheckSend(interp) => unit(registry::check_send(id, interp)),
            Op::Recv(interp) => match registry::recv(id, interp) {
                Ok(None) => Got::Item(None),
                Ok(Some(Value::Int(i))) => Got::Item(Some(i)),
                Ok(Some(other)) => panic!("unexpected item {other:?}"),
                Err(e) => Got::Err(e),
            },
            Op::Close(..) => unreachable!("expanded by `expand`"),
            Op::Release { interp, send, recv } => unit(registry::release(id, interp, send, recv)),
            Op::List { send } => {
                registry::list_interpreters(id, send).map_or_else(Got::Err, Got::Interps)
            }
            Op::Count => registry::count(id).map_or_else(Got::Err, Got::Count),
            Op::Destroy => unit(registry::destroy(id)),
        },
    }
}

fn run_case(row: &Row, step: Step) -> Result<(), String> {
    let handle = registry::create();
    let id = handle.id();
    let mut next_item = 0;
    for &setup in row.setup {
        // A setup close uses the first flag combination its row names.
        let setup = expand(setup)[0];
        if let Got::Err(e) = apply(id, setup, &mut next_item) {
            return Err(format!("setup {setup:?} failed: {e}"));
        }
    }
    let got = apply(id, step, &mut next_item);
    if !got.matches(row.expect, id) {
        return Err(format!("{step:?}: expected {:?}, got {got:?}", row.expect));
    }
    let now = match registry::info(id) {
        Err(_) => Then::Gone,
        Ok(info) => Then::Is(info.state, info.queued),
    };
    let same = match (now, row.then) {
        (Then::Gone, Then::Gone) => true,
        (Then::Is(s1, n1), Then::Is(s2, n2)) => s1 == s2 && n1 == n2,
        _ => false,
    };
    if !same {
        return Err(format!(
            "{step:?}: expected to leave {:?}, left {now:?}",
            row.then
        ));
    }
    Ok(())
}

#[test]
fn close_release_matrix() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for row in ROWS {
        for step in expand(row.op) {
            cases += 1;
            if let Err(msg) = run_case(row, step) {
                failures.push(format!("{}: {msg}", row.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every row's starting state is what its name says, so the table is about the states it claims.
#[test]
fn setup_states_are_as_named() {
    let states: &[(&[Op], Then)] = &[
        (OPEN_EMPTY, Then::Is(Open, 0)),
        (OPEN_ITEMS, Then::Is(Open, 1)),
        (CLOSING, Then::Is(Closing, 2)),
        (CLOSED_BY_CLOSE, Then::Is(ClosedByClose, 0)),
        (CLOSED_BY_DRAIN, Then::Is(ClosedByClose, 0)),
        (CLOSED_BY_RELEASE, Then::Is(ClosedByRelease, 0)),
        (RELEASED_WITH_ITEMS, Then::Is(ClosedByRelease, 1)),
        (CLOSING_THEN_RELEASED, Then::Is(ClosedByRelease, 1)),
        (RELEASED_TWICE, Then::Is(ClosedByRelease, 1)),
        (BELOW_ZERO, Then::Is(Open, 0)),
        (DESTROYED, Then::Gone),
    ];
    for &(setup, then) in states {
        let r = Row {
            name: "setup",
            setup,
            op: Op::Count,
            expect: match then {
                Then::Gone => Expect::NotFound,
                Then::Is(_, n) => Expect::Count(n),
            },
            then,
        };
        for step in expand(r.op) {
            run_case(&r, step).unwrap_or_else(|e| panic!("{setup:?}: {e}"));
        }
    }
}
