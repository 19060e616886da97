//! Zero-copy buffers whose memory belongs to an object in some interpreter.
//!
//! The core only counts references and asks for the length and the owner; the extension
//! implements [`ForeignBuffer`] for its exported buffers (a `Py_buffer` held open in the
//! exporting interpreter) and releases them there when the last reference is dropped. When the
//! owner exits, the core asks for a copy ([`ForeignBuffer::copy_out`]) of what must outlive it
//! (borrowed channel items, see [`crate::registry::owner_exiting`]).

use crate::sync::Arc;
use std::any::Any;
use std::fmt;

use crate::ids::InterpId;
use crate::payload::Payload;

/// Memory exported by an object of one interpreter and shared, without copying, with others.
///
/// # Contract for implementors
/// - The memory stays valid and in place for as long as the implementing object lives; the
///   object releases it (in the owner interpreter) when dropped.
/// - `drop` may run on any thread, with or without a GIL held, but never while a lock of the
///   core is held. It may happen while the owner interpreter is being torn down (see
///   [`crate::queue::interp_destroyed`] and [`crate::registry::owner_exiting`]); after the
///   owner is gone, no value holding the buffer is left in any queue or channel.
/// - [`ForeignBuffer::copy_out`] may be called on any thread, under a lock of the core: it
///   only reads the memory, taking no lock of the core and running no Python code.
/// - The core never reads the memory itself; the receiving side recovers the concrete type with
///   [`ForeignBuffer::as_any`] to build its view or object.
pub trait ForeignBuffer: Send + Sync + 'static {
    /// The interpreter whose object owns the memory.
    fn owner(&self) -> InterpId;

    /// The number of bytes exported.
    fn len(&self) -> usize;

    /// Whether no byte is exported.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The implementing object itself, so the extension can downcast to its own type.
    fn as_any(&self) -> &dyn Any;

    /// A copy of the memory in Rust, for a value that must outlive the owner.
    fn copy_out(&self) -> Payload;
}

/// A counted reference to a [`ForeignBuffer`]; cloning shares the same memory.
#[derive(Clone)]
pub struct SharedBuffer(Arc<dyn ForeignBuffer>);

impl SharedBuffer {
    /// Wraps an exported buffer.
    pub fn new(buffer: Arc<dyn ForeignBuffer>) -> SharedBuffer {
        SharedBuffer(buffer)
    }

    /// The exported buffer.
    pub fn buffer(&self) -> &Arc<dyn ForeignBuffer> {
        &self.0
    }

    /// The interpreter whose object owns the memory.
    pub fn owner(&self) -> InterpId {
        self.0.owner()
    }

    /// The number of bytes exported.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no byte is exported.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy of the memory in Rust (see [`ForeignBuffer::copy_out`]).
    pub fn copy_out(&self) -> Payload {
        self.0.copy_out()
    }
}

impl fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedBuffer({} bytes of interpreter {})",
            self.len(),
            self.owner()
        )
    }
}
