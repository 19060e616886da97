//! Borrowed bytes in channels (docs/values.md#how-values-cross): an item borrowing its sender's
//! memory is received as the same bytes, dropped (released) exactly once whatever removes it,
//! and turned into an owned copy when its owner exits, so it outlives the sender.
//!
//! Tests in this binary run in parallel and `owner_exiting` visits every channel, so each test
//! uses interpreter ids of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use subinterpreters_core::registry;
use subinterpreters_core::{InterpId, ItemSummary, Value};

mod common;
use common::counted_buffer;

fn borrowed(owner: InterpId, fill: u8, released: &Arc<AtomicUsize>) -> Value {
    Value::BorrowedBytes(counted_buffer(owner, vec![fill; 100], released))
}

fn owned_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(p) => Some(p),
        _ => None,
    }
}

#[test]
fn borrowed_items_summarise_as_bytes_and_release_once_received() {
    const OWNER: InterpId = 1001;
    let released = Arc::new(AtomicUsize::new(0));
    let c = registry::create();
    registry::send(c.id(), OWNER, borrowed(OWNER, 7, &released)).unwrap();
    assert_eq!(
        registry::queue_summary(c.id()).unwrap(),
        vec![ItemSummary::Bytes { len: 100 }]
    );
    let got = registry::recv(c.id(), OWNER).unwrap().unwrap();
    assert!(matches!(got, Value::BorrowedBytes(_)));
    assert_eq!(got.payload_len(), 100);
    assert!(got.holds_buffer_of(OWNER));
    assert_eq!(released.load(Ordering::SeqCst), 0);
    drop(got);
    assert_eq!(released.load(Ordering::SeqCst), 1);
}

#[test]
fn destroy_close_and_last_handle_release_queued_borrows() {
    const OWNER: InterpId = 1002;
    let released = Arc::new(AtomicUsize::new(0));
    let a = registry::create();
    let b = registry::create();
    let c = registry::create();
    for chan in [&a, &b, &c] {
        for _ in 0..3 {
            registry::send(chan.id(), OWNER, borrowed(OWNER, 1, &released)).unwrap();
        }
    }
    registry::destroy(a.id()).unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 3);
    registry::close(b.id(), false, false, true).unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 6);
    drop(c);
    assert_eq!(released.load(Ordering::SeqCst), 9);
}

#[test]
fn owner_exiting_copies_its_queued_borrows_in_place() {
    const OWNER: InterpId = 1003;
    const OTHER: InterpId = 1004;
    let released = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let c = registry::create();
    registry::send(c.id(), OWNER, Value::Int(1)).unwrap();
    registry::send(c.id(), OWNER, borrowed(OWNER, 2, &released)).unwrap();
    registry::send(c.id(), OTHER, borrowed(OTHER, 3, &others)).unwrap();
    registry::send(
        c.id(),
        OWNER,
        Value::Tuple(vec![borrowed(OWNER, 4, &released)]),
    )
    .unwrap();
    // A channel closed by release keeps its items: they are copied too.
    let closed = registry::create();
    registry::send(closed.id(), OWNER, borrowed(OWNER, 5, &released)).unwrap();
    registry::release(closed.id(), OWNER, false, false).unwrap();

    assert_eq!(registry::owner_exiting(OWNER), 3);
    // The owner's buffers were released by the call; the other interpreter's were not.
    assert_eq!(released.load(Ordering::SeqCst), 3);
    assert_eq!(others.load(Ordering::SeqCst), 0);
    assert_eq!(registry::count(c.id()).unwrap(), 4);
    assert!(matches!(
        registry::recv(c.id(), OTHER).unwrap(),
        Some(Value::Int(1))
    ));
    let second = registry::recv(c.id(), OTHER).unwrap().unwrap();
    assert_eq!(owned_bytes(&second), Some(&[2u8; 100][..]));
    let third = registry::recv(c.id(), OTHER).unwrap().unwrap();
    assert!(matches!(third, Value::BorrowedBytes(_)));
    let Some(Value::Tuple(items)) = registry::recv(c.id(), OTHER).unwrap() else {
        panic!("expected the tuple");
    };
    assert_eq!(owned_bytes(&items[0]), Some(&[4u8; 100][..]));
    drop(third);
    assert_eq!(others.load(Ordering::SeqCst), 1);

    // Later sends of the exited owner's borrows are copied at once.
    registry::send(c.id(), OWNER, borrowed(OWNER, 6, &released)).unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 4);
    let late = registry::recv(c.id(), OTHER).unwrap().unwrap();
    assert_eq!(owned_bytes(&late), Some(&[6u8; 100][..]));
    assert_eq!(registry::owner_exiting(OWNER), 0);
}

#[test]
fn borrowed_str_summarises_as_str_and_owns_a_str_copy_when_its_owner_goes() {
    use subinterpreters_core::StrKind;

    const OWNER: InterpId = 1099;
    let released = Arc::new(AtomicUsize::new(0));
    let buf = counted_buffer(OWNER, vec![b'a'; 100], &released);
    let mut v = Value::Tuple(vec![Value::BorrowedStr {
        kind: StrKind::Ucs2,
        buf,
    }]);
    assert!(v.borrows_from(OWNER) && v.holds_buffer_of(OWNER));
    let Value::Tuple(items) = &v else {
        unreachable!()
    };
    assert_eq!(
        items[0].summary(),
        ItemSummary::Str {
            kind: StrKind::Ucs2,
            len: 50
        }
    );
    let mut dropped = Vec::new();
    assert_eq!(v.own_borrowed(&|o| o == OWNER, &mut dropped), 1);
    assert!(!v.borrows_from(OWNER));
    let Value::Tuple(items) = &v else {
        unreachable!()
    };
    assert!(matches!(&items[0], Value::Str { kind: StrKind::Ucs2, data } if data.len() == 100));
    assert_eq!(released.load(Ordering::SeqCst), 0);
    drop(dropped);
    assert_eq!(released.load(Ordering::SeqCst), 1);
}
