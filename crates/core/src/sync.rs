//! The synchronisation primitives the core uses, taken from one place.
//!
//! Everything that locks or waits imports from here rather than from `std::sync`, so a
//! model checker such as loom can be swapped in behind a cfg without touching other modules.

pub use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
