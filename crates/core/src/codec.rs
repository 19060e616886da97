//! The stream format of ordinary data (lists, dicts, sets, tuples of plain values) crossing
//! without pickle: a [`Writer`] the sender fills in one pass over its objects, a [`Reader`] the
//! receiver reads its tokens from in one pass, building its own objects as it goes.
//!
//! A stream is a sequence of tokens, each a tag byte and a body: counts, lengths and memo
//! indices as LEB128 varints, ints zigzag-encoded the same way, floats as 8 little-endian
//! bytes, text and bytes length-prefixed. (Small numbers take one byte: the stream stays
//! about as compact as a pickle, which matters as much as the work per token.) Containers give their item count, then their items (a dict: key, value,
//! key, value, ...). Identity within one value is kept with a memo, as pickle keeps it: every
//! list, dict, set, bytearray and memoized string (a dict key, or a string the sender's value
//! may hold more than once) gets the next memo index when it starts, every
//! tuple and frozenset when it ends (its items come first, so a tuple can only be referred to
//! once complete), and a later [`Token::Ref`] names an earlier one by index. Both sides count
//! the same way, so the indices never travel. A list that contains itself is a list whose items
//! include a reference to its own index.
//!
//! The reader trusts nothing: a short body, an unknown tag, a count larger than the bytes left
//! or a reference beyond the memo is a [`CodecError`], never a panic.

use crate::value::StrKind;

/// First byte of a stream handed to Python (`lowlevel._dumps`): tells it apart from a pickle,
/// whose protocol 2+ streams start with 0x80.
pub const MAGIC: u8 = 0xB5;

const NONE: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const INT: u8 = 3;
const BIG_INT: u8 = 4;
const FLOAT: u8 = 5;
const COMPLEX: u8 = 6;
const STR: u8 = 7; // + 0/1/2 for Latin-1/UCS-2/UCS-4
const MEMO_STR: u8 = 10; // + 0/1/2: a memoized string
const BYTES: u8 = 13;
const BYTE_ARRAY: u8 = 14;
const LIST: u8 = 15;
const DICT: u8 = 16;
const SET: u8 = 17;
const FROZEN_SET: u8 = 18;
const TUPLE: u8 = 19;
const REF: u8 = 20;

/// One token of a stream, borrowing its bytes from the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Token<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` within 64 bits.
    Int(i64),
    /// A larger `int`, as little-endian two's-complement bytes (never empty).
    BigInt(&'a [u8]),
    /// A `float`.
    Float(f64),
    /// A `complex`: real and imaginary parts.
    Complex(f64, f64),
    /// A `str` as code units of `kind` width; `memo`: it takes a memo index.
    Str {
        /// Storage width.
        kind: StrKind,
        /// Raw code units, native byte order.
        data: &'a [u8],
        /// Whether it takes the next memo index.
        memo: bool,
    },
    /// A `bytes`.
    Bytes(&'a [u8]),
    /// A `bytearray` (takes a memo index).
    ByteArray(&'a [u8]),
    /// A `list` of this many items, which follow (takes a memo index first).
    List(usize),
    /// A `dict` of this many key/value pairs, which follow (takes a memo index first).
    Dict(usize),
    /// A `set` of this many items, which follow (takes a memo index first).
    Set(usize),
    /// A `frozenset` of this many items, which follow (takes a memo index after them).
    FrozenSet(usize),
    /// A `tuple` of this many items, which follow (takes a memo index after them).
    Tuple(usize),
    /// The object that took this memo index earlier in the stream.
    Ref(usize),
}

/// A stream that does not follow the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The stream ends inside a token, or a count exceeds what is left.
    Truncated,
    /// An unknown tag byte.
    BadTag(u8),
    /// A string whose byte length is not a multiple of its code-unit width.
    BadStr,
    /// A reference to a memo index not taken yet.
    BadRef(usize),
    /// Containers nested deeper than the reader accepts.
    TooDeep,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Truncated => write!(f, "truncated data"),
            CodecError::BadTag(t) => write!(f, "unknown tag {t}"),
            CodecError::BadStr => write!(f, "bad string length"),
            CodecError::BadRef(i) => write!(f, "reference to unknown object {i}"),
            CodecError::TooDeep => write!(f, "nested too deep"),
        }
    }
}

fn kind_code(kind: StrKind) -> u8 {
    match kind {
        StrKind::Latin1 => 0,
        StrKind::Ucs2 => 1,
        StrKind::Ucs4 => 2,
    }
}

/// Builds a stream, token by token; the caller keeps the memo count (see the module docs).
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty stream.
    pub fn new() -> Writer {
        Writer {
            buf: Vec::with_capacity(256),
        }
    }

    /// A stream that starts with [`MAGIC`] (for `lowlevel._dumps`).
    pub fn with_magic() -> Writer {
        let mut w = Writer::new();
        w.buf.push(MAGIC);
        w
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn len_prefixed(&mut self, tag: u8, data: &[u8]) {
        self.buf.push(tag);
        self.varint(data.len() as u64);
        self.buf.extend_from_slice(data);
    }

    fn count(&mut self, tag: u8, n: usize) {
        self.buf.push(tag);
        self.varint(n as u64);
    }

    /// `None`.
    pub fn none(&mut self) {
        self.buf.push(NONE);
    }
    /// A bool.
    pub fn bool(&mut self, b: bool) {
        self.buf.push(if b { TRUE } else { FALSE });
    }
    /// An int within 64 bits.
    pub fn int(&mut self, v: i64) {
        self.buf.push(INT);
        self.varint(((v << 1) ^ (v >> 63)) as u64); // zigzag: small magnitudes stay short
    }
    /// A larger int, as little-endian two's complement.
    pub fn big_int(&mut self, le_bytes: &[u8]) {
        self.len_prefixed(BIG_INT, le_bytes);
    }
    /// A float.
    pub fn float(&mut self, v: f64) {
        self.buf.push(FLOAT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A complex.
    pub fn complex(&mut self, re: f64, im: f64) {
        self.buf.push(COMPLEX);
        self.buf.extend_from_slice(&re.to_le_bytes());
        self.buf.extend_from_slice(&im.to_le_bytes());
    }
    /// A str (`memo`: it takes the next memo index).
    pub fn str(&mut self, kind: StrKind, data: &[u8], memo: bool) {
        let base = if memo { MEMO_STR } else { STR };
        self.len_prefixed(base + kind_code(kind), data);
    }
    /// A bytes.
    pub fn bytes(&mut self, data: &[u8]) {
        self.len_prefixed(BYTES, data);
    }
    /// A bytearray (takes the next memo index).
    pub fn byte_array(&mut self, data: &[u8]) {
        self.len_prefixed(BYTE_ARRAY, data);
    }
    /// A list of `n` items, to be written next.
    pub fn list(&mut self, n: usize) {
        self.count(LIST, n);
    }
    /// A dict of `n` pairs, to be written next (key, value, ...).
    pub fn dict(&mut self, n: usize) {
        self.count(DICT, n);
    }
    /// A set of `n` items, to be written next.
    pub fn set(&mut self, n: usize) {
        self.count(SET, n);
    }
    /// A frozenset of `n` items, to be written next.
    pub fn frozen_set(&mut self, n: usize) {
        self.count(FROZEN_SET, n);
    }
    /// A tuple of `n` items, to be written next.
    pub fn tuple(&mut self, n: usize) {
        self.count(TUPLE, n);
    }
    /// The object that took memo index `i`.
    pub fn reference(&mut self, i: usize) {
        self.count(REF, i);
    }

    /// The stream.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads the tokens of a stream in order.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data` (without the [`MAGIC`] byte).
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    /// Whether every byte was read.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let out = self.data.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// A LEB128 varint of at most 64 bits.
    #[inline]
    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.data.get(self.pos).ok_or(CodecError::Truncated)?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(CodecError::Truncated); // more than 64 bits
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(CodecError::Truncated);
            }
        }
    }

    #[inline]
    fn usize(&mut self) -> Result<usize, CodecError> {
        usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)
    }

    #[inline]
    fn f64(&mut self) -> Result<f64, CodecError> {
        let b = self.take(8)?;
        let bits = u64::from_le_bytes(b.try_into().map_err(|_| CodecError::Truncated)?);
        Ok(f64::from_bits(bits))
    }

    #[inline]
    fn body(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.usize()?;
        self.take(n)
    }

    /// A count of items, each at least one byte: never more than the bytes left.
    #[inline]
    fn items(&mut self, per_item: usize) -> Result<usize, CodecError> {
        let n = self.usize()?;
        let left = self.data.len() - self.pos;
        if n.checked_mul(per_item).is_none_or(|need| need > left) {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }

    /// The next token. `memo_len` is how many memo indices the caller has given out so far: a
    /// reference must name one of them.
    #[inline]
    pub fn next(&mut self, memo_len: usize) -> Result<Token<'a>, CodecError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            NONE => Token::None,
            TRUE => Token::Bool(true),
            FALSE => Token::Bool(false),
            INT => {
                let z = self.varint()?;
                Token::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            BIG_INT => {
                let b = self.body()?;
                if b.is_empty() {
                    return Err(CodecError::Truncated);
                }
                Token::BigInt(b)
            }
            FLOAT => Token::Float(self.f64()?),
            COMPLEX => Token::Complex(self.f64()?, self.f64()?),
            STR..=12 => {
                let code = if tag >= MEMO_STR {
                    tag - MEMO_STR
                } else {
                    tag - STR
                };
                let kind = match code {
                    0 => StrKind::Latin1,
                    1 => StrKind::Ucs2,
                    _ => StrKind::Ucs4,
                };
                let data = self.body()?;
                if data.len() % kind.width() != 0 {
                    return Err(CodecError::BadStr);
                }
                Token::Str {
                    kind,
                    data,
                    memo: tag >= MEMO_STR,
                }
            }
            BYTES => Token::Bytes(self.body()?),
            BYTE_ARRAY => Token::ByteArray(self.body()?),
            LIST => Token::List(self.items(1)?),
            DICT => Token::Dict(self.items(2)?),
            SET => Token::Set(self.items(1)?),
            FROZEN_SET => Token::FrozenSet(self.items(1)?),
            TUPLE => Token::Tuple(self.items(1)?),
            REF => {
                let i = self.usize()?;
                if i >= memo_len {
                    return Err(CodecError::BadRef(i));
                }
                Token::Ref(i)
            }
            other => return Err(CodecError::BadTag(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of the objects a stream describes: containers by index into an arena, so shared
    /// and recursive structures can be written down and compared.
    #[derive(Clone, Debug, PartialEq)]
    enum Obj {
        None,
        Int(i64),
        Str(String),
        Bytes(Vec<u8>),
        Float(f64),
        /// A list: its node in the arena.
        List(usize),
        Tuple(Vec<Obj>),
    }

    /// Writes `obj` with the memo rules of the module docs; `arena[i]` are the lists' items.
    fn write(
        w: &mut Writer,
        obj: &Obj,
        arena: &[Vec<Obj>],
        memo: &mut Vec<Option<usize>>,
        next: &mut usize,
    ) {
        match obj {
            Obj::None => w.none(),
            Obj::Int(v) => w.int(*v),
            Obj::Float(v) => w.float(*v),
            Obj::Str(s) => w.str(StrKind::Latin1, s.as_bytes(), false),
            Obj::Bytes(b) => w.bytes(b),
            Obj::List(node) => {
                if let Some(i) = memo[*node] {
                    return w.reference(i);
                }
                memo[*node] = Some(*next);
                *next += 1;
                w.list(arena[*node].len());
                for item in &arena[*node] {
                    write(w, item, arena, memo, next);
                }
            }
            Obj::Tuple(items) => {
                w.tuple(items.len());
                for item in items {
                    write(w, item, arena, memo, next);
                }
                *next += 1;
            }
        }
    }

    /// Reads one object back into a fresh arena (`nodes`), following the same memo rules.
    fn read(
        r: &mut Reader<'_>,
        nodes: &mut Vec<Vec<Obj>>,
        memo: &mut Vec<Option<usize>>,
    ) -> Result<Obj, CodecError> {
        Ok(match r.next(memo.len())? {
            Token::None => Obj::None,
            Token::Int(v) => Obj::Int(v),
            Token::Float(v) => Obj::Float(v),
            Token::Str { data, .. } => Obj::Str(String::from_utf8(data.to_vec()).unwrap()),
            Token::Bytes(b) => Obj::Bytes(b.to_vec()),
            Token::List(n) => {
                let node = nodes.len();
                nodes.push(Vec::new());
                memo.push(Some(node));
                for _ in 0..n {
                    let item = read(r, nodes, memo)?;
                    nodes[node].push(item);
                }
                Obj::List(node)
            }
            Token::Tuple(n) => {
                let items = (0..n)
                    .map(|_| read(r, nodes, memo))
                    .collect::<Result<_, _>>()?;
                memo.push(None); // a tuple's index; this model never refers to one
                Obj::Tuple(items)
            }
            Token::Ref(i) => Obj::List(memo[i].expect("only lists are referred to here")),
            other => panic!("unexpected {other:?}"),
        })
    }

    fn round_trip(root: &Obj, arena: &[Vec<Obj>]) -> (Obj, Vec<Vec<Obj>>) {
        let mut w = Writer::new();
        write(&mut w, root, arena, &mut vec![None; arena.len()], &mut 0);
        let data = w.finish();
        let mut r = Reader::new(&data);
        let mut nodes = Vec::new();
        let back = read(&mut r, &mut nodes, &mut Vec::new()).unwrap();
        assert!(r.at_end());
        (back, nodes)
    }

    #[test]
    fn plain_values_round_trip() {
        let root = Obj::Tuple(vec![
            Obj::None,
            Obj::Int(i64::MIN),
            Obj::Float(-0.5),
            Obj::Str("key".into()),
            Obj::Bytes(vec![0, 1, 2]),
            Obj::Tuple(vec![]),
        ]);
        assert_eq!(round_trip(&root, &[]).0, root);
    }

    #[test]
    fn a_list_shared_twice_arrives_once() {
        // [shared, shared] with shared = [1]: one node, referred to twice.
        let arena = vec![vec![Obj::List(1), Obj::List(1)], vec![Obj::Int(1)]];
        let (back, nodes) = round_trip(&Obj::List(0), &arena);
        assert_eq!(back, Obj::List(0));
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0], vec![Obj::List(1), Obj::List(1)]);
        assert_eq!(nodes[1], vec![Obj::Int(1)]);
    }

    #[test]
    fn a_list_containing_itself_through_a_tuple() {
        // a = [(a,), a]: the tuple takes its index after its items, the list before them.
        let arena = vec![vec![Obj::Tuple(vec![Obj::List(0)]), Obj::List(0)]];
        let (back, nodes) = round_trip(&Obj::List(0), &arena);
        assert_eq!(back, Obj::List(0));
        assert_eq!(nodes, arena);
    }

    #[test]
    fn every_token_kind_reads_back() {
        let mut w = Writer::new();
        w.bool(true);
        w.bool(false);
        w.big_int(&[0xff; 9]);
        w.complex(1.5, -2.0);
        w.str(StrKind::Ucs2, &[0x20, 0xac], true);
        w.str(StrKind::Ucs4, &[0; 8], false);
        w.byte_array(b"ba");
        w.dict(1);
        w.set(0);
        w.frozen_set(0);
        w.reference(0);
        let data = w.finish();
        let mut r = Reader::new(&data);
        let want = [
            Token::Bool(true),
            Token::Bool(false),
            Token::BigInt(&[0xff; 9]),
            Token::Complex(1.5, -2.0),
            Token::Str {
                kind: StrKind::Ucs2,
                data: &[0x20, 0xac],
                memo: true,
            },
            Token::Str {
                kind: StrKind::Ucs4,
                data: &[0; 8],
                memo: false,
            },
            Token::ByteArray(b"ba"),
        ];
        for t in want {
            assert_eq!(r.next(0).unwrap(), t);
        }
        // A dict of one pair needs at least two bytes after its count: there are more here.
        assert_eq!(r.next(0).unwrap(), Token::Dict(1));
        assert_eq!(r.next(0).unwrap(), Token::Set(0));
        assert_eq!(r.next(0).unwrap(), Token::FrozenSet(0));
        assert_eq!(r.next(0), Err(CodecError::BadRef(0)));
    }

    #[test]
    fn ints_of_every_magnitude_round_trip() {
        let values = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::MAX,
            i64::MIN,
            1 << 40,
        ];
        let mut w = Writer::new();
        for v in values {
            w.int(v);
        }
        let data = w.finish();
        assert!(data.len() < values.len() * 9, "small ints take fewer bytes");
        let mut r = Reader::new(&data);
        for v in values {
            assert_eq!(r.next(0).unwrap(), Token::Int(v));
        }
        assert!(r.at_end());
    }

    #[test]
    fn malformed_streams_are_errors() {
        assert_eq!(Reader::new(&[]).next(0), Err(CodecError::Truncated));
        assert_eq!(Reader::new(&[99]).next(0), Err(CodecError::BadTag(99)));
        assert_eq!(
            Reader::new(&[INT, 0x81, 0x82]).next(0),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            Reader::new(&[FLOAT, 1, 2]).next(0),
            Err(CodecError::Truncated)
        );
        // A list claiming more items than bytes left.
        let mut w = Writer::new();
        w.list(1_000_000);
        assert_eq!(Reader::new(&w.finish()).next(0), Err(CodecError::Truncated));
        // A UCS-2 string of an odd number of bytes.
        let mut w = Writer::new();
        w.str(StrKind::Ucs2, &[1, 2, 3], false);
        assert_eq!(Reader::new(&w.finish()).next(0), Err(CodecError::BadStr));
        // A length that overflows.
        let mut bad = vec![BYTES];
        bad.extend_from_slice(&[0xff; 9]);
        bad.push(0x01);
        assert_eq!(Reader::new(&bad).next(0), Err(CodecError::Truncated));
        // A varint longer than 64 bits.
        let mut bad = vec![LIST];
        bad.extend_from_slice(&[0xff; 10]);
        bad.push(0x01);
        assert_eq!(Reader::new(&bad).next(0), Err(CodecError::Truncated));
    }
}
