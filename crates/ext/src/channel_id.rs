//! The `ChannelID` type (SPEC §8). Placeholder until the channel half lands.

use pyo3_ffi as ffi;
use subinterpreters_core::{ChannelRef, Value};

use crate::error::{Error, Result};
use crate::module::ModState;
use crate::pyref::PyRef;

/// The id stored in a `ChannelID`.
///
/// # Safety
/// `obj` must be a `ChannelID` instance.
pub unsafe fn stored_id(_obj: *mut ffi::PyObject) -> i64 {
    0
}

/// Converts a `ChannelID` into a counted value.
///
/// # Safety
/// `obj` must be a `ChannelID` instance.
pub unsafe fn channel_value(_obj: *mut ffi::PyObject) -> Result<Value> {
    Err(Error::System("channels are not implemented yet".into()))
}

/// Builds a `ChannelID` object for a handle in the current interpreter.
///
/// # Safety
/// GIL held.
pub unsafe fn channel_object(_handle: ChannelRef, _state: Option<&ModState>) -> Result<PyRef> {
    Err(Error::System("channels are not implemented yet".into()))
}

/// Creates the type (none yet).
///
/// # Safety
/// GIL held.
pub unsafe fn create_type(_module: *mut ffi::PyObject) -> Result<Option<PyRef>> {
    Ok(None)
}
