//! What crosses between interpreters: Python objects to core `Value`s and back, and the
//! conversion of ID arguments.

pub(crate) mod convert;
