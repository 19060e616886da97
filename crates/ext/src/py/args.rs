//! Argument parsing through CPython's own `PyArg_ParseTupleAndKeywords`, so that every argument
//! error has exactly the wording of CPython's modules (`create() takes no positional arguments`).

use std::ffi::{c_char, c_void, CStr};

use pyo3_ffi as ffi;

use crate::error::{Error, Result};

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
            Some(v) => crate::py::text::text_of(v.as_ptr(), false).unwrap_or_default(),
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

/// The Python signature of a fastcall method that stands in for a Python method, so that a
/// wrong call fails with the words the Python method's frame would have used
/// (`Queue.put() missing 1 required positional argument: 'obj'`).
pub struct Signature {
    /// How Python names the method in its messages (`Queue.put`).
    pub qualname: &'static str,
    /// The parameters after `self`: positional-or-keyword ones first, then keyword-only ones.
    pub names: &'static [&'static CStr],
    /// How many of `names` may be given by position.
    pub positional: usize,
    /// How many of those must be given (the rest have defaults).
    pub required: usize,
}

impl FastArgs {
    /// Binds the arguments to `sig`'s `N` parameters (NULL where one was not given), with
    /// CPython's own checks and messages, in its order: unknown or repeated keywords, then too
    /// many positional arguments, then missing ones. Positional calls skip all of it.
    ///
    /// # Safety
    /// GIL held; `N` is `sig.names.len()`.
    pub unsafe fn bind<const N: usize>(
        &self,
        sig: &Signature,
    ) -> crate::error::Result<[*mut ffi::PyObject; N]> {
        use crate::error::Error;
        let mut out = [std::ptr::null_mut(); N];
        if let Some(given) = self.positional(sig.required, sig.positional) {
            out[..given.len()].copy_from_slice(given);
            return Ok(out);
        }
        let n = self.nargs as usize;
        // SAFETY: CPython passes `nargs` positional pointers followed by one per keyword name.
        let all = unsafe {
            let nkw = if self.kwnames.is_null() {
                0
            } else {
                ffi::PyTuple_GET_SIZE(self.kwnames) as usize
            };
            std::slice::from_raw_parts(self.args, n + nkw)
        };
        let q = sig.qualname;
        out[..n.min(sig.positional)].copy_from_slice(&all[..n.min(sig.positional)]);
        for (j, &value) in all[n..].iter().enumerate() {
            // SAFETY: keyword names are a tuple of str, as long as the call.
            let key = unsafe { ffi::PyTuple_GET_ITEM(self.kwnames, j as ffi::Py_ssize_t) };
            let found = sig.names.iter().position(|name| {
                // SAFETY: comparing a str with a C string never raises.
                unsafe { ffi::PyUnicode_CompareWithASCIIString(key, name.as_ptr()) == 0 }
            });
            // SAFETY: GIL held; `key` is a str.
            let text = || unsafe { crate::py::text::text_of(key, false) }.unwrap_or_default();
            match found {
                None => {
                    return Err(Error::Type(format!(
                        "{q}() got an unexpected keyword argument '{}'",
                        text()
                    )))
                }
                Some(k) if !out[k].is_null() => {
                    return Err(Error::Type(format!(
                        "{q}() got multiple values for argument '{}'",
                        text()
                    )))
                }
                Some(k) => out[k] = value,
            }
        }
        if n > sig.positional {
            // Counting `self`, as Python does.
            let (given, most) = (n + 1, sig.positional + 1);
            let defaults = sig.positional - sig.required;
            let takes = if defaults > 0 {
                format!("from {} to {most}", most - defaults)
            } else {
                most.to_string()
            };
            let plural = if defaults > 0 || most != 1 { "s" } else { "" };
            let kwonly = out[sig.positional..]
                .iter()
                .filter(|p| !p.is_null())
                .count();
            let kwonly_text = if kwonly > 0 {
                format!(
                    " positional argument{} (and {kwonly} keyword-only argument{})",
                    if given != 1 { "s" } else { "" },
                    if kwonly != 1 { "s" } else { "" }
                )
            } else {
                String::new()
            };
            let verb = if given == 1 && kwonly == 0 {
                "was"
            } else {
                "were"
            };
            return Err(Error::Type(format!(
                "{q}() takes {takes} positional argument{plural} but {given}{kwonly_text} {verb} given"
            )));
        }
        let missing: Vec<String> = sig.names[..sig.required]
            .iter()
            .zip(&out)
            .filter(|(_, p)| p.is_null())
            .map(|(name, _)| format!("'{}'", name.to_string_lossy()))
            .collect();
        if !missing.is_empty() {
            let list = match missing.as_slice() {
                [one] => one.clone(),
                [a, b] => format!("{a} and {b}"),
                [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
                [] => String::new(),
            };
            return Err(Error::Type(format!(
                "{q}() missing {} required positional argument{}: {list}",
                missing.len(),
                if missing.len() != 1 { "s" } else { "" }
            )));
        }
        Ok(out)
    }
}

/// The positional arguments of a private function, `min..=max` of them, no keywords.
pub fn positional<'a>(
    fa: &'a FastArgs,
    name: &str,
    min: usize,
    max: usize,
) -> Result<&'a [*mut ffi::PyObject]> {
    fa.positional(min, max).ok_or_else(|| {
        Error::Type(format!(
            "{name}() takes {min} to {max} positional arguments (and no keywords)"
        ))
    })
}

/// An exact-int argument as i64.
///
/// # Safety
/// GIL held.
pub unsafe fn int_arg(obj: *mut ffi::PyObject, what: &str) -> Result<i64> {
    // SAFETY: GIL held; reading an int.
    unsafe {
        if ffi::PyLong_Check(obj) == 0 {
            return Err(Error::Type(format!(
                "{what} must be an int, got {}",
                crate::py::text::type_name(obj)
            )));
        }
        let v = ffi::PyLong_AsLongLong(obj);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            return Err(Error::Raised);
        }
        Ok(v)
    }
}
