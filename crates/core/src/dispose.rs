//! Dropping values that may hold handles: iteratively, and never under a lock of ours.
//!
//! Dropping a [`Value`] can free a queue or a channel (its last handle goes), whose items are
//! values again, which can free the next container, and so on. Done by plain recursion, a long
//! chain of containers each holding the last handle of the next would overflow the stack. So
//! every container freed by the core hands its items to [`dispose`]: the outermost call on a
//! thread drops them, and calls made meanwhile on the same thread (from inside those drops) only
//! park their items in a thread-local list, which the outermost call drains in a loop.
//!
//! ```text
//! PENDING (thread-local): Option<Vec<Value>>   None: no disposal running on this thread
//!                                              Some: the outermost `dispose` drains it
//! ```

use std::cell::RefCell;

use crate::value::Value;

thread_local! {
    static PENDING: RefCell<Option<Vec<Value>>> = const { RefCell::new(None) };
}

/// Drops `values`, or parks them for the disposal already running on this thread.
///
/// The caller must hold no lock of the core: the drops may take any of them.
pub(crate) fn dispose(values: impl IntoIterator<Item = Value>) {
    let mut values = values.into_iter();
    let parked = PENDING.try_with(|pending| {
        let mut pending = pending.borrow_mut();
        match pending.as_mut() {
            Some(list) => {
                // Moving values into the list drops nothing, so the borrow stays unique.
                list.extend(&mut values);
                true
            }
            None => {
                *pending = Some(Vec::new());
                false
            }
        }
    });
    match parked {
        Ok(true) => return,
        Ok(false) => {}
        // Thread teardown: the list is gone; fall back to plain drops (recursion possible, but
        // nothing else is available at that point).
        Err(_) => {
            values.for_each(drop);
            return;
        }
    }
    // This is the outermost disposal on this thread. The guard ends it even if a drop panics.
    let _outermost = Outermost;
    values.for_each(drop);
    loop {
        let batch = PENDING.with(|p| p.borrow_mut().as_mut().map(std::mem::take));
        match batch {
            // Dropped outside the borrow: these drops may park more values.
            Some(batch) if !batch.is_empty() => drop(batch),
            _ => break,
        }
    }
}

/// Ends the outermost disposal: clears the thread-local list, dropping whatever a panic left
/// in it after the borrow is released.
struct Outermost;

impl Drop for Outermost {
    fn drop(&mut self) {
        let left = PENDING.try_with(|p| p.borrow_mut().take()).ok().flatten();
        drop(left);
    }
}
