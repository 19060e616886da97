//! The native codec: ordinary data (lists, dicts, sets, frozensets and tuples of `None`, bools,
//! ints of any size, floats, complex numbers, strings, bytes and bytearrays, nested) written
//! into the core's stream format (`subinterpreters_core::codec`) in one pass over the sender's
//! objects and read back into the receiver's objects in one pass, without pickle. Anything
//! else, and subclasses of these types, is left to pickle: `encode` answers `None`.
//!
//! Identity within one value is kept as pickle keeps it: a container met twice is written once
//! and referred to after, so it arrives as one object referred to twice, and a container that
//! contains itself arrives so. Strings are memoized too when they are dict keys or held
//! elsewhere as well (a shared constant: pickle keeps those as one object), so the receiver
//! builds each such string once (and hashes a key once), however often it recurs. The one
//! shape left to pickle is a tuple reached again through its own items (pickle has a special
//! case for it).
//!
//! Also here: `_dumps`/`_loads`, the PEP 734 layer's serializer (this codec, else pickle
//! protocol 5, whose `dumps`/`loads` each interpreter looks up once).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3_ffi as ffi;
use subinterpreters_core::codec::{CodecError, Reader, Token, Writer, MAGIC};
use subinterpreters_core::{Payload, StrKind, Value};

use crate::error::{Error, Result};
use crate::py::pyref::PyRef;
use crate::py::trampoline::fast_entry;
use crate::state::ModState;
use crate::values::xi;

/// Containers nested deeper than this are left to pickle (which raises `RecursionError` when
/// too deep); it bounds our recursion on both sides.
const MAX_DEPTH: usize = 200;

/// The memo mark of a tuple or frozenset whose items are being written.
const IN_PROGRESS: usize = usize::MAX;

/// Hashes object addresses: distinct, aligned to 16 bytes, so a multiply spreads them well
/// enough for a map that lives for one value.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = ((n as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Memo indices of the objects written so far, by address.
type Memo = HashMap<usize, usize, BuildHasherDefault<AddressHasher>>;

struct Encoder {
    w: Writer,
    memo: Memo,
    next: usize,
}

/// The code units of an exact `str`.
///
/// # Safety
/// GIL held; `obj` an exact, live `str`, which outlives the returned slice.
pub(crate) unsafe fn str_units<'a>(obj: *mut ffi::PyObject) -> (StrKind, &'a [u8]) {
    // SAFETY: (contract) a ready compact string: kind, length and data describe its storage.
    unsafe {
        let kind = match ffi::PyUnicode_KIND(obj) {
            1 => StrKind::Latin1,
            2 => StrKind::Ucs2,
            _ => StrKind::Ucs4,
        };
        let len = ffi::PyUnicode_GET_LENGTH(obj) as usize * kind.width();
        let data = std::slice::from_raw_parts(ffi::PyUnicode_DATA(obj).cast::<u8>(), len);
        (kind, data)
    }
}

impl Encoder {
    /// Writes its memo reference if `obj` was written before (`Some(false)`: a tuple or
    /// frozenset still being written, left to pickle); else gives it the next index now (a
    /// mutable container or key string: before its items).
    ///
    /// An object with one reference (its container's) cannot be met again in this value:
    /// it takes its index without a memo entry, which spares most containers of ordinary data
    /// the lookup.
    fn seen_or_take(&mut self, obj: *mut ffi::PyObject) -> Option<bool> {
        // SAFETY: GIL held (every caller's contract); reading a live object's count.
        if unsafe { ffi::Py_REFCNT(obj) } == 1 {
            self.next += 1;
            return None;
        }
        match self.memo.get(&(obj as usize)) {
            Some(&IN_PROGRESS) => Some(false),
            Some(&i) => {
                self.w.reference(i);
                Some(true)
            }
            None => {
                self.memo.insert(obj as usize, self.next);
                self.next += 1;
                None
            }
        }
    }

    /// Writes `obj`; `Ok(false)` if it (or anything in it) is not for this codec.
    ///
    /// # Safety
    /// GIL held; `obj` live. No Python code runs while encoding (exact built-in types only,
    /// read through the C API), so the objects seen stay alive and unchanged, and their
    /// addresses name them for the whole pass.
    unsafe fn put(&mut self, obj: *mut ffi::PyObject, depth: usize) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Ok(false);
        }
        // SAFETY: (whole body) GIL held; each branch reads `obj` as the exact type it checked,
        // and items are borrowed from containers that stay alive and unchanged (above).
        unsafe {
            let tp = ffi::Py_TYPE(obj);
            if obj == ffi::Py_None() {
                self.w.none();
            } else if tp == &raw mut ffi::PyUnicode_Type {
                // Only a string with other references can recur in this value.
                let memo = ffi::Py_REFCNT(obj) > 1;
                if memo && self.seen_or_take(obj).is_some() {
                    return Ok(true);
                }
                let (kind, data) = str_units(obj);
                self.w.str(kind, data, memo);
            } else if tp == &raw mut ffi::PyLong_Type {
                let mut overflow = 0;
                let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
                if overflow != 0 {
                    let Value::BigInt(data) = xi::big_int(obj)? else {
                        return Err(Error::System("big int conversion".into()));
                    };
                    self.w.big_int(&data);
                } else if v == -1 && !ffi::PyErr_Occurred().is_null() {
                    return Err(Error::Raised);
                } else {
                    self.w.int(v);
                }
            } else if tp == &raw mut ffi::PyFloat_Type {
                self.w.float(ffi::PyFloat_AS_DOUBLE(obj));
            } else if tp == &raw mut ffi::PyBool_Type {
                self.w.bool(obj == ffi::Py_True());
            } else if tp == &raw mut ffi::PyDict_Type {
                if let Some(done) = self.seen_or_take(obj) {
                    return Ok(done);
                }
                self.w.dict(ffi::PyDict_Size(obj) as usize);
                let mut pos: ffi::Py_ssize_t = 0;
                let mut key = std::ptr::null_mut();
                let mut value = std::ptr::null_mut();
                while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) != 0 {
                    if ffi::Py_TYPE(key) == &raw mut ffi::PyUnicode_Type {
                        if self.seen_or_take(key).is_none() {
                            let (kind, data) = str_units(key);
                            self.w.str(kind, data, true);
                        }
                    } else if !self.put(key, depth + 1)? {
                        return Ok(false);
                    }
                    if !self.put(value, depth + 1)? {
                        return Ok(false);
                    }
                }
            } else if tp == &raw mut ffi::PyList_Type {
                if let Some(done) = self.seen_or_take(obj) {
                    return Ok(done);
                }
                let n = ffi::PyList_GET_SIZE(obj);
                self.w.list(n as usize);
                for i in 0..n {
                    if !self.put(ffi::PyList_GET_ITEM(obj, i), depth + 1)? {
                        return Ok(false);
                    }
                }
            } else if tp == &raw mut ffi::PyTuple_Type || tp == &raw mut ffi::PyFrozenSet_Type {
                return self.put_immutable(obj, tp == &raw mut ffi::PyTuple_Type, depth);
            } else if tp == &raw mut ffi::PyBytes_Type {
                self.w.bytes(bytes_of(obj));
            } else if tp == &raw mut ffi::PySet_Type {
                if let Some(done) = self.seen_or_take(obj) {
                    return Ok(done);
                }
                self.w.set(ffi::PySet_Size(obj) as usize);
                return self.put_iterated(obj, depth);
            } else if tp == &raw mut ffi::PyByteArray_Type {
                if let Some(done) = self.seen_or_take(obj) {
                    return Ok(done);
                }
                let n = ffi::PyByteArray_Size(obj) as usize;
                let p = ffi::PyByteArray_AsString(obj).cast::<u8>();
                let data = if n == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(p, n)
                };
                self.w.byte_array(data);
            } else if tp == &raw mut ffi::PyComplex_Type {
                let re = ffi::PyComplex_RealAsDouble(obj);
                let im = ffi::PyComplex_ImagAsDouble(obj);
                self.w.complex(re, im);
            } else {
                return Ok(false);
            }
            Ok(true)
        }
    }

    /// A tuple or frozenset: its items, then its memo index (so a reference to it always
    /// names a complete object).
    ///
    /// # Safety
    /// As [`Encoder::put`]; `obj` an exact tuple (`tuple`) or frozenset.
    unsafe fn put_immutable(
        &mut self,
        obj: *mut ffi::PyObject,
        tuple: bool,
        depth: usize,
    ) -> Result<bool> {
        // SAFETY: GIL held (contract); reading a live object's count.
        let single = unsafe { ffi::Py_REFCNT(obj) } == 1; // see `seen_or_take`
        match self.memo.get(&(obj as usize)) {
            _ if single => {}
            Some(&IN_PROGRESS) => return Ok(false),
            Some(&i) => {
                self.w.reference(i);
                return Ok(true);
            }
            None => {}
        }
        if !single {
            self.memo.insert(obj as usize, IN_PROGRESS);
        }
        // SAFETY: GIL held; `obj` is the exact type the caller checked.
        let ok = unsafe {
            if tuple {
                let n = ffi::PyTuple_GET_SIZE(obj);
                self.w.tuple(n as usize);
                let mut ok = true;
                for i in 0..n {
                    if !self.put(ffi::PyTuple_GET_ITEM(obj, i), depth + 1)? {
                        ok = false;
                        break;
                    }
                }
                ok
            } else {
                self.w.frozen_set(ffi::PySet_Size(obj) as usize);
                self.put_iterated(obj, depth)?
            }
        };
        if !single {
            self.memo.insert(obj as usize, self.next);
        }
        self.next += 1;
        Ok(ok)
    }

    /// The items of a set or frozenset, in iteration order.
    ///
    /// # Safety
    /// As [`Encoder::put`]; `obj` an exact set or frozenset (iterating one runs no Python
    /// code).
    unsafe fn put_iterated(&mut self, obj: *mut ffi::PyObject, depth: usize) -> Result<bool> {
        // SAFETY: GIL held; new references owned by PyRef; the items stay alive in the set.
        unsafe {
            let it = PyRef::from_owned(ffi::PyObject_GetIter(obj))?;
            loop {
                let item = ffi::PyIter_Next(it.as_ptr());
                if item.is_null() {
                    if !ffi::PyErr_Occurred().is_null() {
                        return Err(Error::Raised);
                    }
                    return Ok(true);
                }
                let item = PyRef::from_owned(item)?;
                if !self.put(item.as_ptr(), depth + 1)? {
                    return Ok(false);
                }
            }
        }
    }
}

/// The contents of an exact `bytes`.
///
/// # Safety
/// GIL held; `obj` an exact `bytes` that outlives the slice.
unsafe fn bytes_of<'a>(obj: *mut ffi::PyObject) -> &'a [u8] {
    // SAFETY: (contract) a bytes object's buffer holds its size in bytes.
    unsafe {
        let n = ffi::PyBytes_Size(obj) as usize;
        std::slice::from_raw_parts(ffi::PyBytes_AsString(obj).cast::<u8>(), n)
    }
}

/// Encodes `obj` if it is ordinary data through and through (with [`MAGIC`] first if
/// `magic`); `None` if anything in it is not.
///
/// # Safety
/// GIL held; `obj` live.
pub(crate) unsafe fn encode(obj: *mut ffi::PyObject, magic: bool) -> Result<Option<Vec<u8>>> {
    let mut enc = Encoder {
        w: if magic {
            Writer::with_magic()
        } else {
            Writer::new()
        },
        memo: Memo::with_capacity_and_hasher(64, Default::default()),
        next: 0,
    };
    // SAFETY: GIL held (contract).
    if unsafe { enc.put(obj, 0)? } {
        Ok(Some(enc.w.finish()))
    } else {
        Ok(None)
    }
}

fn corrupt(e: CodecError) -> Error {
    Error::Value(format!("corrupt native data: {e}"))
}

struct Decoder<'a> {
    r: Reader<'a>,
    /// The objects that took each memo index, one reference each (released with the decoder):
    /// a damaged stream may make the value drop one (a repeated dict key keeps the first key
    /// object), and a later reference must still find it alive.
    memo: Vec<*mut ffi::PyObject>,
    /// Why the stream was refused, when a NULL came back without a Python exception.
    bad: Option<CodecError>,
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        for &obj in &self.memo {
            // SAFETY: a decoder lives only inside `decode`, under the GIL of the interpreter
            // that made these objects; each entry holds one reference.
            unsafe { ffi::Py_DECREF(obj) };
        }
    }
}

impl Decoder<'_> {
    /// Builds the next object: a new reference, or NULL with a Python exception set or `bad`
    /// filled in. (Raw pointers rather than `Result<PyRef>`: this runs once per token, and the
    /// lean return keeps it cheaper than pickle's own loop.)
    ///
    /// # Safety
    /// GIL held.
    unsafe fn get(&mut self, depth: usize) -> *mut ffi::PyObject {
        let null = std::ptr::null_mut();
        if depth > MAX_DEPTH {
            self.bad = Some(CodecError::TooDeep);
            return null;
        }
        let token = match self.r.next(self.memo.len()) {
            Ok(t) => t,
            Err(e) => {
                self.bad = Some(e);
                return null;
            }
        };
        // SAFETY: (whole body) GIL held; every new reference is either returned, stolen by a
        // fresh list or tuple (SET_ITEM), or released on each path; memo entries hold their
        // own reference.
        unsafe {
            match token {
                Token::None => ffi::Py_NewRef(ffi::Py_None()),
                Token::Bool(b) => ffi::Py_NewRef(if b { ffi::Py_True() } else { ffi::Py_False() }),
                Token::Int(v) => ffi::PyLong_FromLongLong(v),
                Token::BigInt(data) => match xi::int_from_le_bytes(Payload::copy_from(data)) {
                    Ok(obj) => obj.into_ptr(),
                    Err(e) => {
                        e.restore(None);
                        null
                    }
                },
                Token::Float(v) => ffi::PyFloat_FromDouble(v),
                Token::Complex(re, im) => ffi::PyComplex_FromDoubles(re, im),
                Token::Str { kind, data, memo } => {
                    let s = ffi::PyUnicode_FromKindAndData(
                        kind as i32,
                        data.as_ptr().cast(),
                        (data.len() / kind.width()) as ffi::Py_ssize_t,
                    );
                    if memo && !s.is_null() {
                        self.memo.push(ffi::Py_NewRef(s));
                    }
                    s
                }
                Token::Bytes(data) => ffi::PyBytes_FromStringAndSize(
                    data.as_ptr().cast(),
                    data.len() as ffi::Py_ssize_t,
                ),
                Token::ByteArray(data) => {
                    let b = ffi::PyByteArray_FromStringAndSize(
                        data.as_ptr().cast(),
                        data.len() as ffi::Py_ssize_t,
                    );
                    if !b.is_null() {
                        self.memo.push(ffi::Py_NewRef(b));
                    }
                    b
                }
                Token::List(n) => {
                    let list = ffi::PyList_New(n as ffi::Py_ssize_t);
                    if list.is_null() {
                        return null;
                    }
                    self.memo.push(ffi::Py_NewRef(list));
                    for i in 0..n {
                        let item = self.get(depth + 1);
                        if item.is_null() {
                            ffi::Py_DECREF(list); // NULL slots are allowed in a list's dealloc
                            return null;
                        }
                        ffi::PyList_SET_ITEM(list, i as ffi::Py_ssize_t, item);
                    }
                    list
                }
                Token::Dict(n) => {
                    // Not presized: `_PyDict_NewPresized` makes a table for keys of any type,
                    // a third larger than the str-keyed one a dict filled with str keys gets,
                    // and slower to look up and to traverse for the collector.
                    let dict = ffi::PyDict_New();
                    if dict.is_null() {
                        return null;
                    }
                    self.memo.push(ffi::Py_NewRef(dict));
                    for _ in 0..n {
                        let key = self.get(depth + 1);
                        if key.is_null() {
                            ffi::Py_DECREF(dict);
                            return null;
                        }
                        let value = self.get(depth + 1);
                        let rc = if value.is_null() {
                            -1
                        } else {
                            ffi::PyDict_SetItem(dict, key, value)
                        };
                        ffi::Py_DECREF(key);
                        ffi::Py_XDECREF(value);
                        if rc < 0 {
                            ffi::Py_DECREF(dict);
                            return null;
                        }
                    }
                    dict
                }
                Token::Set(n) => {
                    let set = ffi::PySet_New(null);
                    if set.is_null() {
                        return null;
                    }
                    self.memo.push(ffi::Py_NewRef(set));
                    self.filled(set, n, depth)
                }
                Token::FrozenSet(n) => {
                    // Filled while this frame holds its only reference, as CPython allows.
                    let set = ffi::PyFrozenSet_New(null);
                    if set.is_null() {
                        return null;
                    }
                    let set = self.filled(set, n, depth);
                    if !set.is_null() {
                        self.memo.push(ffi::Py_NewRef(set));
                    }
                    set
                }
                Token::Tuple(n) => {
                    // Its items cannot refer to it: its memo index comes after them.
                    let tuple = ffi::PyTuple_New(n as ffi::Py_ssize_t);
                    if tuple.is_null() {
                        return null;
                    }
                    for i in 0..n {
                        let item = self.get(depth + 1);
                        if item.is_null() {
                            ffi::Py_DECREF(tuple); // NULL slots are allowed in a tuple's dealloc
                            return null;
                        }
                        ffi::PyTuple_SET_ITEM(tuple, i as ffi::Py_ssize_t, item);
                    }
                    self.memo.push(ffi::Py_NewRef(tuple));
                    tuple
                }
                Token::Ref(i) => ffi::Py_NewRef(self.memo[i]),
            }
        }
    }

    /// Adds `n` decoded items to a new set or frozenset; the set, or NULL (released).
    ///
    /// # Safety
    /// GIL held; `set` a new reference to a set, or to a frozenset nobody else has seen yet.
    unsafe fn filled(
        &mut self,
        set: *mut ffi::PyObject,
        n: usize,
        depth: usize,
    ) -> *mut ffi::PyObject {
        for _ in 0..n {
            // SAFETY: GIL held; PySet_Add takes its own reference to the item.
            unsafe {
                let item = self.get(depth + 1);
                let rc = if item.is_null() {
                    -1
                } else {
                    ffi::PySet_Add(set, item)
                };
                ffi::Py_XDECREF(item);
                if rc < 0 {
                    ffi::Py_DECREF(set);
                    return std::ptr::null_mut();
                }
            }
        }
        set
    }
}

/// The cyclic garbage collector held off while a stream is decoded, switched back on (if it was
/// on) when dropped. Every container the decoder makes ends up reachable from the value it
/// returns, so a collection meanwhile would find no garbage; yet 3.11 collects as containers
/// are made, one pass per few hundred (28 passes for a list of 10,000 dicts of lists). 3.12+
/// only schedule a pass for the evaluation loop, so there the pause changes little. Decoding
/// runs no Python code and keeps the GIL, so no other thread of the interpreter sees it.
struct GcPause {
    was_enabled: bool,
}

impl GcPause {
    /// # Safety
    /// GIL held; the value is dropped under the same GIL, in the same interpreter.
    unsafe fn new() -> Self {
        // SAFETY: GIL held (contract); returns the previous state, raises nothing.
        let was_enabled = unsafe { ffi::PyGC_Disable() } != 0;
        GcPause { was_enabled }
    }
}

impl Drop for GcPause {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: dropped inside `decode`, whose caller holds the GIL of the interpreter
            // whose collector `new` switched off.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

/// Builds the object a stream (without [`MAGIC`]) describes, in the current interpreter.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn decode(data: &[u8]) -> Result<PyRef> {
    // SAFETY: GIL held (contract).
    let _paused = unsafe { GcPause::new() };
    let mut dec = Decoder {
        r: Reader::new(data),
        memo: Vec::new(),
        bad: None,
    };
    // SAFETY: GIL held (contract); a NULL comes with an exception set or `bad` filled in.
    let obj = unsafe { dec.get(0) };
    if obj.is_null() {
        return Err(match dec.bad {
            Some(e) => corrupt(e),
            None => Error::Raised,
        });
    }
    // SAFETY: a new reference, owned from here.
    let obj = unsafe { PyRef::from_owned(obj)? };
    if !dec.r.at_end() {
        return Err(corrupt(CodecError::Truncated));
    }
    Ok(obj)
}

/// This interpreter's `pickle.dumps` (`loads`: `pickle.loads`), looked up once.
///
/// # Safety
/// GIL held; `state` of the current interpreter.
pub(crate) unsafe fn pickle_func(state: &ModState, loads: bool) -> Result<*mut ffi::PyObject> {
    let cell = if loads {
        &state.xi.pickle_loads
    } else {
        &state.xi.pickle_dumps
    };
    if cell.get().is_null() {
        // SAFETY: GIL held; new references owned by PyRef, the function's kept in the state
        // (released with the module).
        unsafe {
            let module = PyRef::from_owned(ffi::PyImport_ImportModule(c"pickle".as_ptr()))?;
            let name = if loads { c"loads" } else { c"dumps" };
            let f = PyRef::from_owned(ffi::PyObject_GetAttrString(module.as_ptr(), name.as_ptr()))?;
            if cell.get().is_null() {
                cell.set(f.into_ptr());
            }
        }
    }
    Ok(cell.get())
}

fast_entry!(
    /// `_dumps(obj) -> bytes`: `obj` in the native format (a stream starting with MAGIC) when
    /// it is ordinary data, else `pickle.dumps(obj, 5)`.
    dumps_fn, |state, fa| {
        let [obj] = <[_; 1]>::try_from(crate::py::args::positional(&fa, "_dumps", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        if let Some(data) = encode(obj, true)? {
            return Ok(ffi::PyBytes_FromStringAndSize(
                data.as_ptr().cast(),
                data.len() as ffi::Py_ssize_t,
            ));
        }
        let dumps = pickle_func(state, false)?;
        let proto = PyRef::from_owned(ffi::PyLong_FromLong(5))?;
        let args = [obj, proto.as_ptr()];
        Ok(PyRef::from_owned(ffi::PyObject_Vectorcall(dumps, args.as_ptr(), 2, std::ptr::null_mut()))?.into_ptr())
    }
);

fast_entry!(
    /// `_loads(data) -> obj`: the object `_dumps` gave `data` for (a pickle otherwise).
    loads_fn, |state, fa| {
        let [data] = <[_; 1]>::try_from(crate::py::args::positional(&fa, "_loads", 1, 1)?)
            .map_err(|_| Error::System("argument count".into()))?;
        if ffi::PyBytes_Check(data) != 0 {
            let bytes = bytes_of(data);
            if bytes.first() == Some(&MAGIC) {
                return Ok(decode(&bytes[1..])?.into_ptr());
            }
        }
        let loads = pickle_func(state, true)?;
        Ok(PyRef::from_owned(ffi::PyObject_CallOneArg(loads, data))?.into_ptr())
    }
);
