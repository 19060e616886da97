//! Values that cross interpreters: owned Rust copies of the shareable Python types.
//!
//! A value is built from a Python object in the sending interpreter and turned back into a fresh
//! object in the receiving one, so it never points into any interpreter's memory and stays valid
//! after the sender is gone.

use crate::ids::{ChannelId, End};
use crate::payload::Payload;
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
            Value::Str { kind, data } => ItemSummary::Str {
                kind: *kind,
                len: data.len() / kind.width(),
            },
            Value::Channel(r) => ItemSummary::Channel {
                id: r.id(),
                end: r.end(),
            },
        }
    }

    /// Number of payload bytes the value carries (for accounting and benchmarks).
    pub fn payload_len(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Str { data, .. } => data.len(),
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
}
