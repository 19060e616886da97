//! Argument parsing through CPython's own `PyArg_ParseTupleAndKeywords`, so that every argument
//! error has exactly the wording of CPython's modules (`create() takes no positional arguments`).

use std::ffi::{c_char, c_void, CStr};

use pyo3_ffi as ffi;

/// Parses `args`/`kwds` with a `PyArg_ParseTupleAndKeywords` format; `out` holds one pointer per
/// converted value, in format order. Returns false with an exception set on failure.
///
/// # Safety
/// GIL held; `args` is a tuple and `kwds` NULL or a dict; each `out` pointer points to storage
/// of the type its format unit writes (`O` → `*mut PyObject`, `p`/`i` → `c_int`, `U` → object;
/// `O&` takes two: the converter and its argument).
pub unsafe fn parse(
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
    format: &CStr,
    keywords: &[&'static CStr],
    out: &mut [*mut c_void],
) -> bool {
    let mut kw: Vec<*mut c_char> = keywords.iter().map(|k| k.as_ptr().cast_mut()).collect();
    kw.push(std::ptr::null_mut());
    let kwp = crate::py::version::keyword_list(&mut kw);
    let f = format.as_ptr();
    // SAFETY: the format has as many units as `out` has pointers (caller's contract), and the
    // keyword list is NULL-terminated and outlives the call.
    let ok = unsafe {
        match out {
            [] => ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp),
            [a] => ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a),
            [a, b] => ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a, *b),
            [a, b, c] => ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a, *b, *c),
            [a, b, c, d] => ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a, *b, *c, *d),
            [a, b, c, d, e] => {
                ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a, *b, *c, *d, *e)
            }
            [a, b, c, d, e, g] => {
                ffi::PyArg_ParseTupleAndKeywords(args, kwds, f, kwp, *a, *b, *c, *d, *e, *g)
            }
            _ => panic!("args::parse supports at most 6 outputs"),
        }
    };
    if ok == 0 && crate::py::version::REWORD_UNKNOWN_KEYWORD {
        // SAFETY: GIL held and the parser's exception is set.
        unsafe { reword_unknown_keyword(format) };
    }
    ok != 0
}

/// Rewrites 3.13's wording for an unknown keyword argument (`f() got an unexpected keyword
/// argument 'x'`) into 3.11's (`'x' is an invalid keyword argument for f()`): the module keeps
/// 3.11's messages on every version.
///
/// # Safety
/// GIL held, with the parser's exception set.
unsafe fn reword_unknown_keyword(format: &CStr) {
    let bytes = format.to_bytes();
    let fname = match bytes.iter().position(|&b| b == b':') {
        Some(i) => String::from_utf8_lossy(&bytes[i + 1..]).into_owned(),
        None => return,
    };
    // SAFETY: GIL held and an exception set (contract); we either put it back or replace it.
    unsafe {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_TypeError) == 0 {
            return;
        }
        let Some(fetched) = crate::py::version::fetch_exception() else {
            return;
        };
        let text = match &fetched.value {
            Some(v) => crate::values::convert::text_of(v.as_ptr(), false).unwrap_or_default(),
            None => String::new(),
        };
        ffi::PyErr_Clear();
        let prefix = format!("{fname}() got an unexpected keyword argument '");
        match text
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix('\''))
        {
            Some(name) => {
                drop(fetched);
                let msg = format!("'{name}' is an invalid keyword argument for {fname}()");
                crate::error::Error::Type(msg).restore(None);
            }
            None => crate::py::version::restore_exception(fetched),
        }
    }
}

/// The arguments of a `METH_FASTCALL | METH_KEYWORDS` function.
pub struct FastArgs {
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
}

impl FastArgs {
    /// Wraps what CPython passed.
    ///
    /// # Safety
    /// The pointers must be those CPython passed to a fastcall function, valid for the call.
    pub unsafe fn new(
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> FastArgs {
        FastArgs {
            args,
            nargs,
            kwnames,
        }
    }

    /// The positional arguments, when there are no keywords and their count is in
    /// `min..=max`: the fast path, with no parsing at all.
    pub fn positional(&self, min: usize, max: usize) -> Option<&[*mut ffi::PyObject]> {
        // SAFETY: reading the keyword-name tuple's size (NULL means no keywords).
        let no_kw = self.kwnames.is_null() || unsafe { ffi::PyTuple_GET_SIZE(self.kwnames) } == 0;
        let n = self.nargs as usize;
        if !no_kw || n < min || n > max {
            return None;
        }
        if n == 0 {
            return Some(&[]);
        }
        // SAFETY: CPython passes `nargs` valid argument pointers.
        Some(unsafe { std::slice::from_raw_parts(self.args, n) })
    }

    /// Everything else goes through [`parse`] (CPython's parser, exact messages) on a tuple and
    /// dict rebuilt from the vectorcall arguments.
    ///
    /// # Safety
    /// As for [`parse`].
    pub unsafe fn parse(
        &self,
        format: &CStr,
        keywords: &[&'static CStr],
        out: &mut [*mut c_void],
    ) -> bool {
        // SAFETY: GIL held; building new containers from borrowed argument pointers, which the
        // caller keeps alive for the whole call.
        unsafe {
            let n = self.nargs;
            let tuple = ffi::PyTuple_New(n);
            if tuple.is_null() {
                return false;
            }
            for i in 0..n {
                let item = *self.args.offset(i);
                ffi::PyTuple_SET_ITEM(tuple, i, ffi::Py_NewRef(item));
            }
            let mut dict: *mut ffi::PyObject = std::ptr::null_mut();
            if !self.kwnames.is_null() && ffi::PyTuple_GET_SIZE(self.kwnames) > 0 {
                dict = ffi::PyDict_New();
                if dict.is_null() {
                    ffi::Py_DECREF(tuple);
                    return false;
                }
                for j in 0..ffi::PyTuple_GET_SIZE(self.kwnames) {
                    let key = ffi::PyTuple_GET_ITEM(self.kwnames, j);
                    let value = *self.args.offset(n + j);
                    if ffi::PyDict_SetItem(dict, key, value) < 0 {
                        ffi::Py_DECREF(dict);
                        ffi::Py_DECREF(tuple);
                        return false;
                    }
                }
            }
            let ok = parse(tuple, dict, format, keywords, out);
            ffi::Py_XDECREF(dict);
            ffi::Py_DECREF(tuple);
            ok
        }
    }
}

/// Parses a format made only of object units (`O`, `U`) into `N` pointers, NULL where an
/// optional argument was not given.
///
/// # Safety
/// As for [`parse`]; the format must have exactly `N` object units.
pub unsafe fn objects<const N: usize>(
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
    format: &CStr,
    keywords: &[&'static CStr],
) -> crate::error::Result<[*mut ffi::PyObject; N]> {
    let mut out = [std::ptr::null_mut(); N];
    let mut ptrs: [*mut c_void; N] = [std::ptr::null_mut(); N];
    for (p, o) in ptrs.iter_mut().zip(out.iter_mut()) {
        *p = (o as *mut *mut ffi::PyObject).cast();
    }
    // SAFETY: forwarded contract; each pointer addresses one slot of `out`.
    if unsafe { parse(args, kwds, format, keywords, &mut ptrs) } {
        Ok(out)
    } else {
        Err(crate::error::Error::Raised)
    }
}

impl FastArgs {
    /// [`objects`] for fastcall: positional calls with `min..=N` arguments accepted by
    /// `fast_ok` skip the parser entirely; anything else goes through it (exact messages).
    ///
    /// # Safety
    /// As for [`objects`].
    pub unsafe fn objects<const N: usize>(
        &self,
        min: usize,
        format: &CStr,
        keywords: &[&'static CStr],
        fast_ok: impl Fn(&[*mut ffi::PyObject]) -> bool,
    ) -> crate::error::Result<[*mut ffi::PyObject; N]> {
        let mut out = [std::ptr::null_mut(); N];
        if let Some(given) = self.positional(min, N).filter(|a| fast_ok(a)) {
            out[..given.len()].copy_from_slice(given);
            return Ok(out);
        }
        let mut ptrs: [*mut c_void; N] = [std::ptr::null_mut(); N];
        for (p, o) in ptrs.iter_mut().zip(out.iter_mut()) {
            *p = (o as *mut *mut ffi::PyObject).cast();
        }
        // SAFETY: forwarded contract; each pointer addresses one slot of `out`.
        if unsafe { self.parse(format, keywords, &mut ptrs) } {
            Ok(out)
        } else {
            Err(crate::error::Error::Raised)
        }
    }
}
