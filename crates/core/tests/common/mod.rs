//! What the core's tests share: a tiny deterministic PRNG (SplitMix64), so that a failing model
//! sequence is replayed from its seed alone, the queue helpers of the threaded tests, and a
//! foreign buffer that counts its releases.
#![allow(dead_code)] // each test binary uses its own subset

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use subinterpreters_core::queue::{self, QueueDefaults};
use subinterpreters_core::{ForeignBuffer, InterpId, Payload, QueueRef, SharedBuffer};

/// Slack for a busy machine: a wake-up must come well before this.
pub const SLACK: Duration = Duration::from_secs(5);

/// A new queue with the default unbound rules.
pub fn create(maxsize: i64) -> QueueRef {
    queue::create(maxsize, QueueDefaults::default()).unwrap()
}

/// Waits until `cond` holds (it observes state another thread changes), or panics.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + SLACK;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// How many getters wait on `q` now (0 once it is gone).
pub fn getters_waiting(q: &QueueRef) -> usize {
    queue::info(q.id()).map_or(0, |i| i.getters_waiting)
}

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with the given chance in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A fair coin.
    pub fn flag(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// Memory "owned by" an interpreter, as the extension's borrowed buffers are; counts its drops
/// (the extension's release).
pub struct CountedBuffer {
    pub owner: InterpId,
    pub bytes: Vec<u8>,
    pub released: Arc<AtomicUsize>,
}

impl ForeignBuffer for CountedBuffer {
    fn owner(&self) -> InterpId {
        self.owner
    }
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn copy_out(&self) -> Payload {
        Payload::copy_from(&self.bytes)
    }
}

impl Drop for CountedBuffer {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// A shared buffer of `bytes` owned by `owner`, adding 1 to `released` when dropped.
pub fn counted_buffer(
    owner: InterpId,
    bytes: Vec<u8>,
    released: &Arc<AtomicUsize>,
) -> SharedBuffer {
    SharedBuffer::new(Arc::new(CountedBuffer {
        owner,
        bytes,
        released: Arc::clone(released),
    }))
}
