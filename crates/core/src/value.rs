//! Values that cross interpreters: owned Rust copies of the shareable Python types.
//!
//! A value is built from a Python object in the sending interpreter and turned back into a fresh
//! object in the receiving one, so it never points into any interpreter's memory and stays valid
//! after the sender is gone. The exceptions are [`Value::Shared`], a zero-copy buffer that
//! stays owned by its exporting interpreter (see [`crate::buffer`]), and
//! [`Value::BorrowedBytes`], a large `bytes` sent through a channel and read in place by the
//! receiver, which the registry copies into Rust memory before its sender exits.

use crate::buffer::SharedBuffer;
use crate::ids::{ChannelId, End, InterpId, QueueId};
use crate::payload::Payload;
use crate::queue::QueueRef;
use crate::registry::ChannelRef;

/// The width of one code point in a string's storage, as in CPython's PEP 393 layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKind {
    /// One byte per code point (U+0000..=U+00FF).
    Latin1 = 1,
    /// Two bytes per code point, native endian (up to U+FFFF, lone surrogates included).
    Ucs2 = 2,
    /// Four bytes per code point, native endian.
    Ucs4 = 4,
}

impl StrKind {
    /// Bytes per code point.
    pub fn width(self) -> usize {
        self as usize
    }
}

/// What a value is, without its payload and without a counted handle: plain data that can be
/// copied out of the registry under its lock and compared or printed freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemSummary {
    /// `None`.
    None,
    /// An `int` and its value.
    Int(i64),
    /// A `bytes` object of this many bytes.
    Bytes {
        /// Length in bytes.
        len: usize,
    },
    /// A `str` of this many code points stored at this width.
    Str {
        /// Storage width.
        kind: StrKind,
        /// Length in code points.
        len: usize,
    },
    /// A `ChannelID` for this channel and end.
    Channel {
        /// The channel it designates.
        id: ChannelId,
        /// The end it designates.
        end: End,
    },
    /// A `bool`.
    Bool(bool),
    /// A `float`, as its bit pattern (`f64::to_bits`), so that summaries compare exactly.
    Float(u64),
    /// An `int` outside the signed 64-bit range, stored in this many bytes.
    BigInt {
        /// Length of its two's-complement encoding in bytes.
        len: usize,
    },
    /// A `tuple` of this many items.
    Tuple {
        /// Number of items.
        len: usize,
    },
    /// A queue.
    Queue {
        /// The queue it designates.
        id: QueueId,
    },
    /// A pickled object.
    Pickled {
        /// Length of the pickle stream in bytes.
        len: usize,
        /// Number of out-of-band buffers.
        buffers: usize,
    },
    /// Ordinary data in the native stream format.
    Native {
        /// Length of the stream in bytes.
        len: usize,
    },
    /// A zero-copy buffer.
    Shared {
        /// Length in bytes.
        len: usize,
        /// The interpreter that owns the memory.
        owner: InterpId,
    },
}

/// One out-of-band buffer of a pickled object (a `PickleBuffer` that pickle handed out).
#[derive(Debug)]
pub enum OutOfBand {
    /// Copied into Rust memory (the exporter's memory could not be shared as it is).
    Copied(Payload),
    /// Shared without copying, owned by an object of the pickling interpreter.
    Shared(SharedBuffer),
}

impl OutOfBand {
    /// The number of bytes.
    pub fn len(&self) -> usize {
        match self {
            OutOfBand::Copied(p) => p.len(),
            OutOfBand::Shared(b) => b.len(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One shareable value.
///
/// Strings keep CPython's compact storage (kind plus raw code units) so that a copy is one
/// `memcpy` each way and strings holding lone surrogates survive unchanged.
#[derive(Debug)]
pub enum Value {
    /// `None`.
    None,
    /// An `int` within the signed 64-bit range.
    Int(i64),
    /// A `bytes` object's contents.
    Bytes(Payload),
    /// A `str`: its code units, `data.len()` is a multiple of `kind.width()`.
    Str {
        /// Storage width.
        kind: StrKind,
        /// Raw code units in native byte order.
        data: Payload,
    },
    /// A `ChannelID`; the handle keeps the channel alive while the value exists.
    Channel(ChannelRef),
    /// A `bool`.
    Bool(bool),
    /// A `float`.
    Float(f64),
    /// An `int` of any size, as little-endian two's-complement bytes (what
    /// `int.to_bytes(n, "little", signed=True)` gives for a large enough `n`; never empty).
    BigInt(Payload),
    /// A `tuple` of shareable items.
    Tuple(Vec<Value>),
    /// A queue; the handle keeps the queue alive while the value exists.
    Queue(QueueRef),
    /// An object pickled with protocol 5: the stream plus its out-of-band buffers, in order.
    Pickled {
        /// The pickle stream.
        data: Payload,
        /// The out-of-band buffers (`PickleBuffer`s), in the order the stream refers to them.
        buffers: Vec<OutOfBand>,
    },
    /// Ordinary data (lists, dicts, sets, frozensets and tuples of `None`, bools, ints, floats,
    /// complex numbers, strings, bytes and bytearrays) as one [`crate::codec`] stream, which
    /// the receiver reads into its own objects in one pass: no pickle either way.
    Native(Payload),
    /// Memory shared without copying, owned by an object of another interpreter.
    Shared(SharedBuffer),
    /// A `bytes` object's contents left in the sender's object (channels only): the receiver
    /// builds its `bytes` from them, so the payload is copied once. Turned into
    /// [`Value::Bytes`] by [`Value::own_borrowed`] before the owner exits.
    BorrowedBytes(SharedBuffer),
    /// A `str` object's code units left in the sender's object (queues and calls): the receiver
    /// builds its `str` from them, so the payload is copied once. Turned into [`Value::Str`] by
    /// [`Value::own_borrowed`] before the owner exits.
    BorrowedStr {
        /// The code unit width of the borrowed text.
        kind: StrKind,
        /// The code units (`len / kind.width()` of them).
        buf: SharedBuffer,
    },
}

impl Value {
    /// Builds a string value from Rust text (stored as the narrowest kind that fits).
    // Infallible and returning `Value`, so `FromStr` (with its `Err` type) would only add noise;
    // the name is part of the API the extension already uses.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Value {
        let max = text.chars().map(u32::from).max().unwrap_or(0);
        let (kind, data): (StrKind, Vec<u8>) = if max <= 0xFF {
            (
                StrKind::Latin1,
                text.chars().map(|c| u32::from(c) as u8).collect(),
            )
        } else if max <= 0xFFFF {
            let mut out = Vec::with_capacity(text.len() * 2);
            for c in text.chars() {
                out.extend_from_slice(&(u32::from(c) as u16).to_ne_bytes());
            }
            (StrKind::Ucs2, out)
        } else {
            let mut out = Vec::with_capacity(text.len() * 4);
            for c in text.chars() {
                out.extend_from_slice(&u32::from(c).to_ne_bytes());
            }
            (StrKind::Ucs4, out)
        };
        Value::Str {
            kind,
            data: Payload::from_vec(data),
        }
    }

    /// A payload-free description of the value (see [`ItemSummary`]).
    pub fn summary(&self) -> ItemSummary {
        match self {
            Value::None => ItemSummary::None,
            Value::Int(i) => ItemSummary::Int(*i),
            Value::Bytes(b) => ItemSummary::Bytes { len: b.len() },
            // Borrowed or owned, the receiver gets the same `bytes`.
            Value::BorrowedBytes(b) => ItemSummary::Bytes { len: b.len() },
            Value::BorrowedStr { kind, buf } => ItemSummary::Str {
                kind: *kind,
                len: buf.len() / kind.width(),
            },
            Value::Str { kind, data } => ItemSummary::Str {
                kind: *kind,
                len: data.len() / kind.width(),
            },
            Value::Channel(r) => ItemSummary::Channel {
                id: r.id(),
                end: r.end(),
            },
            Value::Bool(b) => ItemSummary::Bool(*b),
            Value::Float(x) => ItemSummary::Float(x.to_bits()),
            Value::BigInt(data) => ItemSummary::BigInt { len: data.len() },
            Value::Tuple(items) => ItemSummary::Tuple { len: items.len() },
            Value::Queue(q) => ItemSummary::Queue { id: q.id() },
            Value::Pickled { data, buffers } => ItemSummary::Pickled {
                len: data.len(),
                buffers: buffers.len(),
            },
            Value::Native(data) => ItemSummary::Native { len: data.len() },
            Value::Shared(buf) => ItemSummary::Shared {
                len: buf.len(),
                owner: buf.owner(),
            },
        }
    }

    /// Number of payload bytes the value carries or, for shared buffers, refers to, items of a
    /// tuple included (for accounting and benchmarks).
    pub fn payload_len(&self) -> usize {
        match self {
            Value::Bytes(b) | Value::BigInt(b) | Value::Native(b) => b.len(),
            Value::Str { data, .. } => data.len(),
            Value::Tuple(items) => items.iter().map(Value::payload_len).sum(),
            Value::Pickled { data, buffers } => {
                data.len() + buffers.iter().map(|b| b.len()).sum::<usize>()
            }
            Value::Shared(buf) | Value::BorrowedBytes(buf) | Value::BorrowedStr { buf, .. } => {
                buf.len()
            }
            Value::None
            | Value::Int(_)
            | Value::Channel(_)
            | Value::Bool(_)
            | Value::Float(_)
            | Value::Queue(_) => 0,
        }
    }

    /// Whether the value (a tuple's items included) holds a shared buffer owned by `interp`,
    /// i.e. cannot outlive that interpreter.
    pub fn holds_buffer_of(&self, interp: InterpId) -> bool {
        match self {
            Value::Shared(buf) | Value::BorrowedBytes(buf) | Value::BorrowedStr { buf, .. } => {
                buf.owner() == interp
            }
            Value::Tuple(items) => items.iter().any(|v| v.holds_buffer_of(interp)),
            Value::Pickled { buffers, .. } => buffers
                .iter()
                .any(|b| matches!(b, OutOfBand::Shared(s) if s.owner() == interp)),
            _ => false,
        }
    }

    /// Whether the value (a tuple's items included) holds borrowed bytes of `interp`.
    pub fn borrows_from(&self, interp: InterpId) -> bool {
        match self {
            Value::BorrowedBytes(buf) | Value::BorrowedStr { buf, .. } => buf.owner() == interp,
            Value::Tuple(items) => items.iter().any(|v| v.borrows_from(interp)),
            _ => false,
        }
    }

    /// Replaces every [`Value::BorrowedBytes`] and [`Value::BorrowedStr`] whose owner `gone`
    /// picks (a tuple's items included) by an owned copy of its payload, and hands the borrowed buffers to `released`:
    /// the caller drops them once no lock of the core is held. Returns how many were replaced.
    pub fn own_borrowed(
        &mut self,
        gone: &dyn Fn(InterpId) -> bool,
        released: &mut Vec<SharedBuffer>,
    ) -> usize {
        match self {
            Value::BorrowedBytes(buf) if gone(buf.owner()) => {
                let owned = Value::Bytes(buf.copy_out());
                if let Value::BorrowedBytes(buf) = std::mem::replace(self, owned) {
                    released.push(buf);
                }
                1
            }
            Value::BorrowedStr { kind, buf } if gone(buf.owner()) => {
                let owned = Value::Str {
                    kind: *kind,
                    data: buf.copy_out(),
                };
                if let Value::BorrowedStr { buf, .. } = std::mem::replace(self, owned) {
                    released.push(buf);
                }
                1
            }
            Value::Tuple(items) => items
                .iter_mut()
                .map(|v| v.own_borrowed(gone, released))
                .sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_str_picks_narrowest_kind() {
        assert!(
            matches!(Value::from_str("abc\u{e9}"), Value::Str { kind: StrKind::Latin1, ref data } if data.len() == 4)
        );
        assert!(
            matches!(Value::from_str("\u{20ac}"), Value::Str { kind: StrKind::Ucs2, ref data } if data.len() == 2)
        );
        assert!(
            matches!(Value::from_str("a\u{1F600}"), Value::Str { kind: StrKind::Ucs4, ref data } if data.len() == 8)
        );
    }

    #[test]
    fn rich_values_summarise_and_count_their_bytes() {
        let v = Value::Tuple(vec![
            Value::Bool(true),
            Value::Float(1.5),
            Value::BigInt(Payload::from_vec(vec![0; 9])),
            Value::Pickled {
                data: Payload::from_vec(vec![1; 10]),
                buffers: vec![
                    OutOfBand::Copied(Payload::from_vec(vec![2; 5])),
                    OutOfBand::Copied(Payload::from_vec(vec![3; 6])),
                ],
            },
            Value::Tuple(vec![Value::Bytes(Payload::from_vec(vec![4; 7]))]),
        ]);
        assert_eq!(v.summary(), ItemSummary::Tuple { len: 5 });
        assert_eq!(v.payload_len(), 9 + 10 + 5 + 6 + 7);
        let Value::Tuple(items) = &v else {
            unreachable!()
        };
        assert_eq!(items[0].summary(), ItemSummary::Bool(true));
        assert_eq!(items[1].summary(), ItemSummary::Float(1.5f64.to_bits()));
        assert_eq!(items[2].summary(), ItemSummary::BigInt { len: 9 });
        assert_eq!(
            items[3].summary(),
            ItemSummary::Pickled {
                len: 10,
                buffers: 2
            }
        );
        assert!(!v.holds_buffer_of(0));
    }

    #[test]
    fn native_streams_are_owned_data() {
        let mut w = crate::codec::Writer::new();
        w.list(2);
        w.int(1);
        w.reference(0);
        let data = w.finish();
        let len = data.len();
        let v = Value::Tuple(vec![Value::Native(Payload::from_vec(data))]);
        let Value::Tuple(items) = &v else {
            unreachable!()
        };
        assert_eq!(items[0].summary(), ItemSummary::Native { len });
        assert_eq!(v.payload_len(), len);
        // A stream never refers to an interpreter's memory.
        assert!(!v.holds_buffer_of(0) && !v.borrows_from(0));
    }
}
