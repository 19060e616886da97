//! What crosses between interpreters: Python objects to core `Value`s and back (3.11's set in
//! `convert`, PEP 734's in `xi`, ordinary data without pickle in `codec`, zero-copy buffers in `shared`), and the conversion of ID
//! arguments.

pub(crate) mod codec;
pub(crate) mod convert;
pub(crate) mod shared;
pub(crate) mod xi;
