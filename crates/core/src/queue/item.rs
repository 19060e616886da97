//! One queued item and what becomes of it when the interpreter that put it is destroyed.

use crate::ids::InterpId;
use crate::value::{ItemSummary, Value};

/// What happens to an item once the interpreter that put it is destroyed (CPython 3.14's
/// `unbounditems`). The discriminants are 3.14's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnboundOp {
    /// `UNBOUND_REMOVE`: the item leaves the queue at once, freeing its slot.
    Remove = 1,
    /// `UNBOUND_ERROR`: the item stays; taking it reports
    /// [`Received::InterpreterDestroyed`].
    Error = 2,
    /// `UNBOUND`: the item stays; taking it gives [`Received::Unbound`].
    Replace = 3,
}

impl UnboundOp {
    /// The op for one of 3.14's flags (1, 2, 3), or `None`.
    pub fn from_flag(flag: i64) -> Option<UnboundOp> {
        match flag {
            1 => Some(UnboundOp::Remove),
            2 => Some(UnboundOp::Error),
            3 => Some(UnboundOp::Replace),
            _ => None,
        }
    }

    /// 3.14's flag for this op.
    pub fn flag(self) -> i64 {
        self as i64
    }
}

/// What a successful `get` took off the queue. Every variant consumed one item.
#[derive(Debug)]
pub enum Received {
    /// The value that was put.
    Value(Value),
    /// An item whose interpreter was destroyed, put with [`UnboundOp::Replace`]: 3.14's `get`
    /// returns the `UNBOUND` marker (the low-level call answers `(None, 3)`).
    Unbound,
    /// An item whose interpreter was destroyed, put with [`UnboundOp::Error`]: 3.14's `get`
    /// raises `ItemInterpreterDestroyed("item's original interpreter destroyed")` (the
    /// low-level call answers `(None, 2)`). The item is gone all the same.
    InterpreterDestroyed,
}

impl Received {
    /// The op of an unbound item, as the low-level `get` reports it; `None` for a value.
    pub fn unbound_op(&self) -> Option<UnboundOp> {
        match self {
            Received::Value(_) => None,
            Received::Unbound => Some(UnboundOp::Replace),
            Received::InterpreterDestroyed => Some(UnboundOp::Error),
        }
    }

    /// The value, if the item was still bound.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Received::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A payload-free description of one queued item (for tests and diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedItem {
    /// The interpreter that put it.
    pub owner: InterpId,
    /// Its op for when that interpreter is destroyed.
    pub unbound: UnboundOp,
    /// The value, or `None` once the item is unbound.
    pub value: Option<ItemSummary>,
}

/// A queued item.
#[derive(Debug)]
pub(crate) struct Item {
    owner: InterpId,
    op: UnboundOp,
    slot: Slot,
}

/// An item's content: one state, not a value plus a flag.
#[derive(Debug)]
enum Slot {
    /// The value as put.
    Bound(Value),
    /// Its interpreter was destroyed and the value dropped (ops `Error` and `Replace` only;
    /// `Remove` items leave the queue instead).
    Unbound,
}

/// What unbinding did to one item.
pub(crate) enum Unbinding {
    /// Not bound to the interpreter: unchanged.
    Kept,
    /// Bound to it, op `Remove`: the caller takes the item out and drops the value.
    Remove(Value),
    /// Bound to it, op `Error` or `Replace`: the item stays, unbound; the caller drops the value.
    Unbound(Value),
}

impl Item {
    pub(crate) fn new(owner: InterpId, op: UnboundOp, value: Value) -> Item {
        Item {
            owner,
            op,
            slot: Slot::Bound(value),
        }
    }

    /// What `get` hands out for this item.
    pub(crate) fn received(self) -> Received {
        match (self.slot, self.op) {
            (Slot::Bound(v), _) => Received::Value(v),
            (Slot::Unbound, UnboundOp::Error) => Received::InterpreterDestroyed,
            // `Remove` items never stay unbound; `Replace` is what is left.
            (Slot::Unbound, _) => Received::Unbound,
        }
    }

    /// The value, if still bound (for disposal).
    pub(crate) fn into_value(self) -> Option<Value> {
        match self.slot {
            Slot::Bound(v) => Some(v),
            Slot::Unbound => None,
        }
    }

    /// Unbinds the item if it belongs to `interp`: put by it, or holding a buffer it owns.
    pub(crate) fn unbind(&mut self, interp: InterpId) -> Unbinding {
        let bound_here = match &self.slot {
            Slot::Bound(v) => self.owner == interp || v.holds_buffer_of(interp),
            Slot::Unbound => false,
        };
        if !bound_here {
            return Unbinding::Kept;
        }
        let Slot::Bound(value) = std::mem::replace(&mut self.slot, Slot::Unbound) else {
            unreachable!("checked above")
        };
        match self.op {
            UnboundOp::Remove => Unbinding::Remove(value),
            UnboundOp::Error | UnboundOp::Replace => Unbinding::Unbound(value),
        }
    }

    pub(crate) fn is_unbound(&self) -> bool {
        matches!(self.slot, Slot::Unbound)
    }

    pub(crate) fn describe(&self) -> QueuedItem {
        QueuedItem {
            owner: self.owner,
            unbound: self.op,
            value: match &self.slot {
                Slot::Bound(v) => Some(v.summary()),
                Slot::Unbound => None,
            },
        }
    }
}
