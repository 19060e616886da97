//! Queue behaviour on one thread: FIFO order, maxsize, handles and destruction, unknown ids,
//! the unbound rules, wakers, and values holding queues.
//!
//! Tests here run in parallel and `interp_destroyed` visits every queue, so each test that calls
//! it uses interpreter ids of its own.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use subinterpreters_core::queue::{self, Fallback, QueueDefaults, UnboundOp, Wait};
use subinterpreters_core::registry;
use subinterpreters_core::{
    ForeignBuffer, InterpId, ItemSummary, OutOfBand, Payload, QueueError, QueueRef, QueuedItem,
    Received, SharedBuffer, Value,
};

mod common;
use common::{counted_buffer, CountedBuffer};

fn unbounded() -> QueueRef {
    queue::create(0, QueueDefaults::default()).unwrap()
}

fn int_of(r: Received) -> i64 {
    match r {
        Received::Value(Value::Int(i)) => i,
        other => panic!("expected an int, got {other:?}"),
    }
}

fn put(q: &QueueRef, i: i64) {
    q.put(Value::Int(i), 0, None, Wait::NoWait).unwrap();
}

#[test]
fn fifo_order() {
    let q = unbounded();
    for i in 0..100 {
        put(&q, i);
    }
    assert_eq!(q.qsize(), Ok(100));
    for i in 0..100 {
        assert_eq!(int_of(q.get(Wait::NoWait).unwrap()), i);
    }
    assert_eq!(q.is_empty(), Ok(true));
}

#[test]
fn ids_start_at_one_and_are_never_reused() {
    let a = unbounded();
    let a_id = a.id();
    assert!(a_id >= 1);
    drop(a);
    let b = unbounded();
    assert!(b.id() > a_id);
    assert_eq!(
        QueueRef::open(a_id).unwrap_err(),
        QueueError::NotFound(a_id)
    );
}

#[test]
fn maxsize_bounds_the_queue_and_full_put_returns_the_value() {
    let q = queue::create(2, QueueDefaults::default()).unwrap();
    assert_eq!(q.maxsize(), 2);
    assert_eq!(q.is_full(), Ok(false));
    put(&q, 1);
    put(&q, 2);
    assert_eq!(q.is_full(), Ok(true));
    let err = q
        .put(Value::from_str("kept"), 0, None, Wait::NoWait)
        .unwrap_err();
    assert_eq!(err.error, QueueError::Full(q.id()));
    assert!(matches!(err.value, Value::Str { ref data, .. } if &**data == b"kept"));
    assert_eq!(q.qsize(), Ok(2));
    // A deadline already passed: TimedOut, value back, nothing queued.
    let err = q
        .put(
            Value::Int(3),
            0,
            None,
            Wait::timeout(Some(Default::default())),
        )
        .unwrap_err();
    assert_eq!(err.error, QueueError::TimedOut(q.id()));
    assert!(matches!(err.into_value(), Value::Int(3)));
    assert_eq!(int_of(q.get(Wait::NoWait).unwrap()), 1);
    assert_eq!(q.is_full(), Ok(false));
    put(&q, 3);
    assert_eq!(q.qsize(), Ok(2));
}

#[test]
fn zero_or_negative_maxsize_is_unbounded() {
    for maxsize in [0, -1, i64::MIN] {
        let q = queue::create(maxsize, QueueDefaults::default()).unwrap();
        assert_eq!(q.maxsize(), maxsize);
        for i in 0..1000 {
            put(&q, i);
        }
        assert_eq!(q.is_full(), Ok(false));
    }
}

#[test]
fn empty_get_reports_empty_or_timed_out() {
    let q = unbounded();
    assert_eq!(q.get(Wait::NoWait).unwrap_err(), QueueError::Empty(q.id()));
    assert_eq!(
        q.get(Wait::timeout(Some(Default::default()))).unwrap_err(),
        QueueError::TimedOut(q.id())
    );
}

#[test]
fn defaults_are_kept_and_listed() {
    let d = QueueDefaults {
        unbound: UnboundOp::Error,
        fallback: Fallback::SharedOnly,
    };
    let q = queue::create(5, d).unwrap();
    assert_eq!(q.defaults(), d);
    assert!(queue::list_all().contains(&(q.id(), d)));
    assert_eq!(queue::info(q.id()).unwrap().defaults, d);
    assert_eq!(QueueDefaults::default().unbound, UnboundOp::Replace);
    assert_eq!(QueueDefaults::default().fallback, Fallback::Full);
}

#[test]
fn flags_round_trip() {
    for op in [UnboundOp::Remove, UnboundOp::Error, UnboundOp::Replace] {
        assert_eq!(UnboundOp::from_flag(op.flag()), Some(op));
    }
    assert_eq!(UnboundOp::from_flag(0), None);
    assert_eq!(UnboundOp::from_flag(4), None);
    assert_eq!(UnboundOp::Remove.flag(), 1);
    assert_eq!(UnboundOp::Error.flag(), 2);
    assert_eq!(UnboundOp::Replace.flag(), 3);
    for fb in [Fallback::SharedOnly, Fallback::Full] {
        assert_eq!(Fallback::from_flag(fb.flag()), Some(fb));
    }
    assert_eq!(Fallback::from_flag(2), None);
}

#[test]
fn handles_count_and_the_last_one_destroys() {
    let q = unbounded();
    let id = q.id();
    put(&q, 1);
    let q2 = q.clone();
    let q3 = QueueRef::open(id).unwrap();
    assert!(q3.same_queue(&q));
    assert_eq!(queue::info(id).unwrap().handles, 3);
    drop(q);
    drop(q2);
    assert_eq!(queue::info(id).unwrap().handles, 1);
    assert_eq!(q3.qsize(), Ok(1));
    drop(q3);
    assert_eq!(queue::info(id).unwrap_err(), QueueError::NotFound(id));
    assert_eq!(QueueRef::open(id).unwrap_err(), QueueError::NotFound(id));
    assert!(!queue::list_all().iter().any(|&(i, _)| i == id));
}

#[test]
fn bind_and_release_count_like_handles() {
    let q = unbounded();
    let id = q.id();
    queue::bind(id).unwrap();
    assert_eq!(queue::info(id).unwrap().handles, 2);
    drop(q);
    assert!(queue::info(id).is_ok());
    assert_eq!(queue::release(id), Ok(true));
    assert_eq!(queue::release(id), Err(QueueError::NotFound(id)));
    assert_eq!(queue::bind(id), Err(QueueError::NotFound(id)));
}

#[test]
fn destroy_makes_handles_inert() {
    let q = unbounded();
    let id = q.id();
    put(&q, 1);
    let other = q.clone();
    queue::destroy(id).unwrap();
    assert_eq!(queue::destroy(id), Err(QueueError::NotFound(id)));
    assert!(!q.is_alive());
    assert_eq!(q.qsize(), Err(QueueError::Destroyed(id)));
    assert_eq!(q.get(Wait::NoWait).unwrap_err(), QueueError::Destroyed(id));
    let err = q.put(Value::Int(2), 0, None, Wait::Forever).unwrap_err();
    assert_eq!(err.error, QueueError::Destroyed(id));
    // Cloning and dropping inert handles counts nothing and breaks nothing.
    let third = other.clone();
    drop(other);
    drop(third);
    assert_eq!(QueueRef::open(id).unwrap_err(), QueueError::NotFound(id));
}

#[test]
fn unknown_ids_are_not_found() {
    for id in [0, -1, i64::MAX] {
        assert_eq!(QueueRef::open(id).unwrap_err(), QueueError::NotFound(id));
        assert_eq!(queue::destroy(id), Err(QueueError::NotFound(id)));
        assert_eq!(queue::bind(id), Err(QueueError::NotFound(id)));
        assert_eq!(queue::release(id), Err(QueueError::NotFound(id)));
        assert_eq!(queue::info(id), Err(QueueError::NotFound(id)));
    }
}

// ---------------------------------------------------------------------------------------------
// Unbound rules. Interpreter ids 100..200 belong to this section.

#[test]
fn unbound_remove_drops_items_and_frees_room() {
    const GONE: InterpId = 101;
    let q = queue::create(3, QueueDefaults::default()).unwrap();
    q.put(Value::Int(1), GONE, Some(UnboundOp::Remove), Wait::NoWait)
        .unwrap();
    q.put(Value::Int(2), 0, Some(UnboundOp::Remove), Wait::NoWait)
        .unwrap();
    q.put(Value::Int(3), GONE, Some(UnboundOp::Remove), Wait::NoWait)
        .unwrap();
    assert_eq!(q.is_full(), Ok(true));
    assert_eq!(queue::interp_destroyed(GONE), 2);
    assert_eq!(q.qsize(), Ok(1));
    assert_eq!(q.is_full(), Ok(false));
    assert_eq!(int_of(q.get(Wait::NoWait).unwrap()), 2);
    // Idempotent.
    assert_eq!(queue::interp_destroyed(GONE), 0);
}

#[test]
fn unbound_error_and_replace_stay_queued_and_are_consumed_by_get() {
    const GONE: InterpId = 102;
    let q = unbounded();
    q.put(Value::Int(1), GONE, Some(UnboundOp::Error), Wait::NoWait)
        .unwrap();
    q.put(Value::Int(2), GONE, Some(UnboundOp::Replace), Wait::NoWait)
        .unwrap();
    q.put(Value::Int(3), 0, Some(UnboundOp::Error), Wait::NoWait)
        .unwrap();
    // The queue's default (Replace here).
    q.put(Value::Int(4), GONE, None, Wait::NoWait).unwrap();
    assert_eq!(queue::interp_destroyed(GONE), 3);
    assert_eq!(q.qsize(), Ok(4));
    assert_eq!(queue::info(q.id()).unwrap().unbound, 3);
    assert_eq!(
        q.items().unwrap(),
        vec![
            QueuedItem {
                owner: GONE,
                unbound: UnboundOp::Error,
                value: None
            },
            QueuedItem {
                owner: GONE,
                unbound: UnboundOp::Replace,
                value: None
            },
            QueuedItem {
                owner: 0,
                unbound: UnboundOp::Error,
                value: Some(ItemSummary::Int(3))
            },
            QueuedItem {
                owner: GONE,
                unbound: UnboundOp::Replace,
                value: None
            },
        ]
    );
    let r = q.get(Wait::NoWait).unwrap();
    assert_eq!(r.unbound_op(), Some(UnboundOp::Error));
    assert!(matches!(r, Received::InterpreterDestroyed));
    let r = q.get(Wait::NoWait).unwrap();
    assert_eq!(r.unbound_op(), Some(UnboundOp::Replace));
    assert!(matches!(r, Received::Unbound));
    let r = q.get(Wait::NoWait).unwrap();
    assert_eq!(r.unbound_op(), None);
    assert_eq!(int_of(r), 3);
    assert!(matches!(q.get(Wait::NoWait).unwrap(), Received::Unbound));
    assert_eq!(q.get(Wait::NoWait).unwrap_err(), QueueError::Empty(q.id()));
}

#[test]
fn unbound_values_are_dropped_at_once() {
    const GONE: InterpId = 103;
    let q = unbounded();
    let inner = unbounded();
    let inner_id = inner.id();
    q.put(
        Value::Queue(inner),
        GONE,
        Some(UnboundOp::Replace),
        Wait::NoWait,
    )
    .unwrap();
    assert!(queue::info(inner_id).is_ok());
    queue::interp_destroyed(GONE);
    // The item stays (as a marker) but its value, the last handle, is gone.
    assert_eq!(q.qsize(), Ok(1));
    assert_eq!(queue::info(inner_id), Err(QueueError::NotFound(inner_id)));
}

fn shared(owner: InterpId, released: &Arc<AtomicUsize>) -> SharedBuffer {
    counted_buffer(owner, vec![1, 2, 3], released)
}

#[test]
fn items_holding_a_buffer_of_a_destroyed_interpreter_are_unbound() {
    const EXPORTER: InterpId = 104;
    const PUTTER: InterpId = 105;
    let released = Arc::new(AtomicUsize::new(0));
    let q = unbounded();
    let buf = shared(EXPORTER, &released);
    assert_eq!(buf.len(), 3);
    assert_eq!(buf.owner(), EXPORTER);
    let back = buf
        .buffer()
        .as_any()
        .downcast_ref::<CountedBuffer>()
        .unwrap();
    assert_eq!(back.bytes, [1, 2, 3]);
    let nested = Value::Tuple(vec![Value::Int(0), Value::Shared(buf.clone())]);
    assert_eq!(nested.payload_len(), 3);
    q.put(nested, PUTTER, Some(UnboundOp::Error), Wait::NoWait)
        .unwrap();
    q.put(
        Value::Shared(buf),
        PUTTER,
        Some(UnboundOp::Remove),
        Wait::NoWait,
    )
    .unwrap();
    q.put(Value::Int(7), PUTTER, Some(UnboundOp::Remove), Wait::NoWait)
        .unwrap();
    let pickled = Value::Pickled {
        data: Payload::copy_from(b"\x80\x05."),
        buffers: vec![
            OutOfBand::Copied(Payload::copy_from(b"x")),
            OutOfBand::Shared(shared(EXPORTER, &released)),
        ],
    };
    assert!(pickled.holds_buffer_of(EXPORTER));
    q.put(pickled, PUTTER, Some(UnboundOp::Replace), Wait::NoWait)
        .unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 0);
    assert_eq!(queue::interp_destroyed(EXPORTER), 3);
    assert_eq!(released.load(Ordering::SeqCst), 2);
    assert!(matches!(
        q.get(Wait::NoWait).unwrap(),
        Received::InterpreterDestroyed
    ));
    assert_eq!(int_of(q.get(Wait::NoWait).unwrap()), 7);
    assert!(matches!(q.get(Wait::NoWait).unwrap(), Received::Unbound));
}

// ---------------------------------------------------------------------------------------------
// Wakers.

#[test]
fn wakers_fire_on_put_on_freed_room_and_on_destruction() {
    const GONE: InterpId = 106;
    let q = queue::create(1, QueueDefaults::default()).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    // The waker may use the queue: it is called with no lock held.
    let probe = q.clone();
    let token = q
        .add_waker(Arc::new(move || {
            let _ = probe.qsize();
            h.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    put(&q, 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(q.put(Value::Int(2), 0, None, Wait::NoWait).is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    q.get(Wait::NoWait).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    q.put(Value::Int(3), GONE, Some(UnboundOp::Remove), Wait::NoWait)
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    queue::interp_destroyed(GONE);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(queue::info(q.id()).unwrap().wakers, 1);
    assert!(q.remove_waker(token));
    assert!(!q.remove_waker(token));
    put(&q, 4);
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    let h = Arc::clone(&hits);
    q.add_waker(Arc::new(move || {
        h.fetch_add(100, Ordering::SeqCst);
    }))
    .unwrap();
    queue::destroy(q.id()).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 104);
    assert_eq!(
        q.add_waker(Arc::new(|| {})).unwrap_err(),
        QueueError::Destroyed(q.id())
    );
}

/// An unbounded queue with a waker that counts its calls.
fn counted() -> (QueueRef, Arc<AtomicUsize>) {
    let q = unbounded();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    q.add_waker(Arc::new(move || {
        h.fetch_add(1, Ordering::SeqCst);
    }))
    .unwrap();
    (q, hits)
}

#[test]
fn taking_from_an_unbounded_queue_wakes_nobody() {
    let (q, hits) = counted();
    put(&q, 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    q.get(Wait::NoWait).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_quiet_put_queues_at_once_and_wakes_only_when_told() {
    let (q, hits) = counted();
    let wake = q.put_quiet(Value::Int(7), 0, None, Wait::NoWait).unwrap();
    assert_eq!(q.qsize(), Ok(1));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    wake.wake();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(int_of(q.get(Wait::NoWait).unwrap()), 7);
    // A getter asleep before the quiet put sleeps on until the wake-up (or its own look).
    let getter = {
        let q = q.clone();
        std::thread::spawn(move || int_of(q.get(Wait::Forever).unwrap()))
    };
    while queue::info(q.id()).unwrap().getters_waiting == 0 {
        std::thread::yield_now();
    }
    q.put_quiet(Value::Int(8), 0, None, Wait::NoWait)
        .unwrap()
        .wake();
    assert_eq!(getter.join().unwrap(), 8);
    // A failed quiet put hands the value back, as put does.
    queue::destroy(q.id()).unwrap();
    let err = q
        .put_quiet(Value::Int(9), 0, None, Wait::NoWait)
        .err()
        .unwrap();
    assert_eq!(err.error, QueueError::Destroyed(q.id()));
}

// ---------------------------------------------------------------------------------------------
// Values holding queues.

#[test]
fn rich_values_round_trip_through_a_queue() {
    let q = unbounded();
    let inner = unbounded();
    let inner_id = inner.id();
    let v = Value::Tuple(vec![
        Value::Bool(false),
        Value::Float(-0.0),
        Value::BigInt(Payload::from_vec(vec![0xff; 16])),
        Value::Pickled {
            data: Payload::copy_from(b"\x80\x05."),
            buffers: vec![OutOfBand::Copied(Payload::copy_from(b"oob"))],
        },
        Value::Queue(inner),
    ]);
    q.put(v, 0, None, Wait::NoWait).unwrap();
    let Received::Value(Value::Tuple(items)) = q.get(Wait::NoWait).unwrap() else {
        panic!("expected a tuple");
    };
    assert_eq!(items[0].summary(), ItemSummary::Bool(false));
    assert_eq!(items[1].summary(), ItemSummary::Float((-0.0f64).to_bits()));
    assert_eq!(items[2].summary(), ItemSummary::BigInt { len: 16 });
    assert_eq!(
        items[3].summary(),
        ItemSummary::Pickled { len: 3, buffers: 1 }
    );
    assert_eq!(items[4].summary(), ItemSummary::Queue { id: inner_id });
    drop(items);
    assert!(queue::info(inner_id).is_err());
}

#[test]
fn a_queue_holding_its_own_last_handle_is_freed_by_destroy() {
    let q = unbounded();
    let id = q.id();
    q.put(Value::Queue(q.clone()), 0, None, Wait::NoWait)
        .unwrap();
    drop(q);
    // The cycle keeps it alive, as in CPython.
    assert_eq!(queue::info(id).unwrap().handles, 1);
    queue::destroy(id).unwrap();
    assert!(queue::info(id).is_err());
}

#[test]
fn a_long_chain_of_queues_drops_without_recursion() {
    // Each queue holds the last handle of the next, inside a tuple every other link. Recursive
    // drops would need one stack frame group per link.
    let n = if cfg!(miri) { 100 } else { 100_000 };
    let head = unbounded();
    let head_id = head.id();
    let mut last = head.clone();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let next = unbounded();
        ids.push(next.id());
        let value = if i % 2 == 0 {
            Value::Queue(next.clone())
        } else {
            Value::Tuple(vec![Value::Int(i as i64), Value::Queue(next.clone())])
        };
        last.put(value, 0, None, Wait::NoWait).unwrap();
        last = next;
    }
    drop(last);
    drop(head);
    assert!(queue::info(head_id).is_err());
    assert!(ids.iter().all(|&id| queue::info(id).is_err()));
}

#[test]
fn queues_and_channels_nested_in_each_other_drop_without_deadlock() {
    // queue -> channel -> queue -> channel ..., each holding the last handle of the next.
    let n = if cfg!(miri) { 50 } else { 20_000 };
    let head = unbounded();
    let head_id = head.id();
    let mut tail = Value::Int(0);
    let mut channel_ids = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            let q = unbounded();
            q.put(tail, 0, None, Wait::NoWait).unwrap();
            tail = Value::Queue(q);
        } else {
            let c = registry::create();
            channel_ids.push(c.id());
            registry::send(c.id(), 0, Value::Tuple(vec![tail])).unwrap();
            tail = Value::Channel(c);
        }
    }
    head.put(tail, 0, None, Wait::NoWait).unwrap();
    drop(head);
    assert!(queue::info(head_id).is_err());
    assert!(channel_ids.iter().all(|&id| !registry::is_registered(id)));
}

#[test]
fn destroy_drops_items_outside_the_lock() {
    // An item whose drop uses the same queue: it would deadlock if dropped under its lock.
    struct Probe(QueueRef);
    impl ForeignBuffer for Probe {
        fn owner(&self) -> InterpId {
            0
        }
        fn len(&self) -> usize {
            0
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn copy_out(&self) -> Payload {
            Payload::from_vec(Vec::new())
        }
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = self.0.qsize();
            let _ = queue::list_all();
        }
    }
    let q = unbounded();
    let probe = SharedBuffer::new(Arc::new(Probe(q.clone())));
    assert!(probe.is_empty());
    q.put(Value::Shared(probe), 0, None, Wait::NoWait).unwrap();
    queue::destroy(q.id()).unwrap();
}
