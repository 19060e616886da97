//! Queues across threads: blocked getters and putters are woken by the operation they wait for
//! or by destruction, deadlines are honoured, and no item is lost or duplicated under load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use subinterpreters_core::queue::{self, Wait};
use subinterpreters_core::{QueueError, QueueRef, Received, Value};

mod common;
use common::{create, eventually, getters_waiting, SLACK};

fn putters_waiting(q: &QueueRef) -> usize {
    queue::info(q.id()).map_or(0, |i| i.putters_waiting)
}

#[test]
fn blocked_get_is_woken_by_put() {
    let q = create(0);
    let q2 = q.clone();
    let getter = thread::spawn(move || {
        let start = Instant::now();
        let got = q2.get(Wait::Forever).unwrap();
        (got, start.elapsed())
    });
    eventually("the getter to block", || getters_waiting(&q) == 1);
    let put_at = Instant::now();
    q.put(Value::Int(42), 0, None, Wait::NoWait).unwrap();
    let (got, _) = getter.join().unwrap();
    assert!(put_at.elapsed() < SLACK);
    assert!(matches!(got, Received::Value(Value::Int(42))));
}

#[test]
fn blocked_put_is_woken_by_get() {
    let q = create(1);
    q.put(Value::Int(1), 0, None, Wait::NoWait).unwrap();
    let q2 = q.clone();
    let putter = thread::spawn(move || q2.put(Value::Int(2), 0, None, Wait::Forever).is_ok());
    eventually("the putter to block", || putters_waiting(&q) == 1);
    assert!(matches!(
        q.get(Wait::NoWait).unwrap(),
        Received::Value(Value::Int(1))
    ));
    assert!(putter.join().unwrap());
    assert!(matches!(
        q.get(Wait::NoWait).unwrap(),
        Received::Value(Value::Int(2))
    ));
}

#[test]
fn blocked_put_is_woken_by_unbound_remove() {
    const GONE: i64 = 9001;
    let q = create(1);
    q.put(
        Value::Int(1),
        GONE,
        Some(queue::UnboundOp::Remove),
        Wait::NoWait,
    )
    .unwrap();
    let q2 = q.clone();
    let putter = thread::spawn(move || q2.put(Value::Int(2), 0, None, Wait::Forever).is_ok());
    eventually("the putter to block", || putters_waiting(&q) == 1);
    queue::interp_destroyed(GONE);
    assert!(putter.join().unwrap());
    assert_eq!(q.qsize(), Ok(1));
}

#[test]
fn waiters_are_woken_by_destruction() {
    let empty = create(0);
    let full = create(1);
    full.put(Value::Int(0), 0, None, Wait::NoWait).unwrap();
    let mut threads = Vec::new();
    for _ in 0..3 {
        let q = empty.clone();
        threads.push(thread::spawn(move || q.get(Wait::Forever).unwrap_err()));
        let q = full.clone();
        threads.push(thread::spawn(move || {
            let err = q.put(Value::Int(1), 0, None, Wait::Forever).unwrap_err();
            assert!(matches!(err.value, Value::Int(1)));
            err.error
        }));
    }
    eventually("all six to block", || {
        getters_waiting(&empty) == 3 && putters_waiting(&full) == 3
    });
    let (e, f) = (empty.id(), full.id());
    queue::destroy(e).unwrap();
    queue::destroy(f).unwrap();
    let errors: Vec<QueueError> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, err) in errors.into_iter().enumerate() {
        let id = if i % 2 == 0 { e } else { f };
        assert_eq!(err, QueueError::Destroyed(id));
    }
}

#[test]
fn deadlines_are_honoured() {
    let q = create(1);
    let wait = Duration::from_millis(60);

    let start = Instant::now();
    assert_eq!(
        q.get(Wait::timeout(Some(wait))).unwrap_err(),
        QueueError::TimedOut(q.id())
    );
    let took = start.elapsed();
    assert!(took >= wait, "returned early: {took:?}");
    assert!(took < wait + SLACK, "returned late: {took:?}");

    q.put(Value::Int(0), 0, None, Wait::NoWait).unwrap();
    let start = Instant::now();
    let err = q
        .put(Value::Int(1), 0, None, Wait::timeout(Some(wait)))
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.error, QueueError::TimedOut(q.id()));
    assert!(took >= wait, "returned early: {took:?}");
    assert!(took < wait + SLACK, "returned late: {took:?}");
}

#[test]
fn time_slices_lose_nothing() {
    // The extension's main-thread loop: wait in short slices, retrying with the value it got
    // back, until the real deadline.
    let q = create(1);
    q.put(Value::Int(0), 0, None, Wait::NoWait).unwrap();
    let q2 = q.clone();
    let consumer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Received::Value(Value::Int(i)) = q2.get(Wait::Forever).unwrap() {
                got.push(i);
            }
        }
        got
    });
    let whole = Wait::timeout(Some(SLACK));
    let mut value = Value::Int(1);
    let mut slices = 0;
    loop {
        match q.put(value, 0, None, whole.capped(Duration::from_millis(5))) {
            Ok(()) => break,
            Err(e) if e.error == QueueError::TimedOut(q.id()) && !whole.is_expired() => {
                slices += 1;
                value = e.into_value();
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(slices >= 1);
    assert_eq!(consumer.join().unwrap(), vec![0, 1]);
}

#[test]
fn no_item_lost_or_duplicated_across_threads() {
    // 4 producers and 4 consumers over a small bounded queue, so both sides block often.
    let producers = 4;
    let consumers = 4;
    let per_producer: i64 = if cfg!(miri) { 100 } else { 100_000 };
    let total = per_producer as usize * producers;
    let q = create(64);
    let start = Arc::new(Barrier::new(producers + consumers));
    let taken = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for p in 0..producers {
        let q = q.clone();
        let start = Arc::clone(&start);
        handles.push(thread::spawn(move || {
            start.wait();
            for i in 0..per_producer {
                let v = p as i64 * per_producer + i;
                q.put(Value::Int(v), p as i64, None, Wait::Forever).unwrap();
            }
            Vec::new()
        }));
    }
    for _ in 0..consumers {
        let q = q.clone();
        let start = Arc::clone(&start);
        let taken = Arc::clone(&taken);
        handles.push(thread::spawn(move || {
            start.wait();
            let mut got = Vec::new();
            let mut last = vec![-1i64; producers];
            while taken.load(Ordering::SeqCst) < total {
                // Short slices: when the last item is taken elsewhere, notice and stop.
                match q.get(Wait::timeout(Some(Duration::from_millis(20)))) {
                    Ok(Received::Value(Value::Int(v))) => {
                        taken.fetch_add(1, Ordering::SeqCst);
                        // Per producer, one consumer sees its items in FIFO order.
                        let p = (v / per_producer) as usize;
                        assert!(v > last[p], "out of order: {v} after {}", last[p]);
                        last[p] = v;
                        got.push(v);
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(QueueError::TimedOut(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            got
        }));
    }
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(all.len(), total);
    all.sort_unstable();
    assert!(all.iter().enumerate().all(|(i, &v)| v == i as i64));
    assert_eq!(q.qsize(), Ok(0));
}

#[test]
fn concurrent_handle_churn_keeps_counts_exact() {
    let q = create(0);
    let id = q.id();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
                    let h = QueueRef::open(id).unwrap();
                    let h2 = h.clone();
                    drop(h);
                    drop(h2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(queue::info(id).unwrap().handles, 1);
    drop(q);
    assert!(queue::info(id).is_err());
}
