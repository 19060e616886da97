//! Waiting on several queues (`queue::wait_any`) and cancelling waits (`Cancel`): readiness
//! checked against a reference model after random operations, wake-ups from other threads,
//! destruction and cancellation while waiting, and no waker left behind.
//!
//! Rerun one model sequence with `MODEL_SEED=<seed> cargo test -p subinterpreters-core --test
//! select`.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use subinterpreters_core::queue::{self, wait_any, Cancel, Selected, Wait};
use subinterpreters_core::{QueueError, QueueRef, Received, Value};

mod common;
use common::{create, eventually, getters_waiting, Rng, SLACK};

fn wakers(q: &QueueRef) -> usize {
    queue::info(q.id()).map_or(0, |i| i.wakers)
}

/// The model of one queue: how many items, and whether it was destroyed.
#[derive(Clone, Copy, Debug)]
struct MQueue {
    maxsize: usize,
    len: usize,
    destroyed: bool,
}

/// What `wait_any` must answer without waiting, by the model: the non-empty or destroyed
/// queues in the order given, else `TimedOut` (or `Cancelled` when cancelled).
fn expected(model: &[MQueue], cancelled: bool) -> Selected {
    let ready: Vec<usize> = (0..model.len())
        .filter(|&i| model[i].destroyed || model[i].len > 0)
        .collect();
    if !ready.is_empty() {
        Selected::Ready(ready)
    } else if cancelled {
        Selected::Cancelled
    } else {
        Selected::TimedOut
    }
}

fn run_model(seed: u64) {
    let mut rng = Rng(seed);
    let n = 1 + rng.below(5);
    let mut queues: Vec<QueueRef> = Vec::new();
    let mut model: Vec<MQueue> = Vec::new();
    for _ in 0..n {
        let maxsize = rng.below(3); // 0: unbounded
        queues.push(create(maxsize as i64));
        model.push(MQueue {
            maxsize,
            len: 0,
            destroyed: false,
        });
    }
    let cancelled = Cancel::new();
    cancelled.cancel();
    let mut log = String::new();
    for step in 0..200 {
        let i = rng.below(n);
        let m = &mut model[i];
        match rng.below(10) {
            0..=4 => {
                log.push_str(&format!("put {i}; "));
                let r = queues[i].put(Value::Int(step), 0, None, Wait::NoWait);
                let fits = m.maxsize == 0 || m.len < m.maxsize;
                match (&r, m.destroyed, fits) {
                    (Err(e), true, _) => assert_eq!(e.error, QueueError::Destroyed(queues[i].id())),
                    (Ok(()), false, true) => m.len += 1,
                    (Err(e), false, false) => assert_eq!(e.error, QueueError::Full(queues[i].id())),
                    _ => panic!("seed {seed}: {log}: put gave {:?}", r.map_err(|e| e.error)),
                }
            }
            5..=8 => {
                log.push_str(&format!("get {i}; "));
                let r = queues[i].get(Wait::NoWait);
                match (&r, m.destroyed, m.len) {
                    (Err(QueueError::Destroyed(_)), true, _) => {}
                    (Err(QueueError::Empty(_)), false, 0) => {}
                    (Ok(_), false, len) if len > 0 => m.len -= 1,
                    _ => panic!("seed {seed}: {log}: get gave {r:?}"),
                }
            }
            _ => {
                log.push_str(&format!("destroy {i}; "));
                let r = queue::destroy(queues[i].id());
                assert_eq!(r.is_ok(), !m.destroyed, "seed {seed}: {log}");
                m.destroyed = true;
                m.len = 0;
            }
        }
        let handles: Vec<&QueueRef> = queues.iter().collect();
        let got = wait_any(&handles, Wait::NoWait, None);
        assert_eq!(got, expected(&model, false), "seed {seed}: {log}");
        // A short deadline gives the same answer (the bell path, with its last look).
        let soon = Wait::Until(Instant::now() + Duration::from_micros(200));
        assert_eq!(
            wait_any(&handles, soon, None),
            expected(&model, false),
            "seed {seed}: {log}"
        );
        let got = wait_any(&handles, Wait::Forever, Some(&cancelled));
        assert_eq!(got, expected(&model, true), "seed {seed}: {log}");
        for q in &queues {
            assert_eq!(wakers(q), 0, "seed {seed}: {log}: a waker was left behind");
        }
    }
}

#[test]
fn readiness_matches_model() {
    if let Some(seed) = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return run_model(seed);
    }
    let cases = if cfg!(miri) { 3 } else { 300 };
    for seed in 0..cases {
        run_model(seed);
    }
}

#[test]
fn order_is_the_order_given_and_duplicates_count_twice() {
    let (a, b) = (create(0), create(0));
    b.put(Value::Int(1), 0, None, Wait::NoWait).unwrap();
    a.put(Value::Int(2), 0, None, Wait::NoWait).unwrap();
    assert_eq!(
        wait_any(&[&b, &a, &b], Wait::NoWait, None),
        Selected::Ready(vec![0, 1, 2])
    );
    assert_eq!(wait_any(&[], Wait::NoWait, None), Selected::TimedOut);
}

#[test]
fn blocked_wait_is_woken_by_a_put_on_any_queue() {
    for target in 0..3 {
        let queues: Vec<QueueRef> = (0..3).map(|_| create(0)).collect();
        let putter_side = queues[target].clone();
        let watched: Vec<QueueRef> = queues.clone();
        let waiter = thread::spawn(move || {
            let handles: Vec<&QueueRef> = watched.iter().collect();
            wait_any(&handles, Wait::Forever, None)
        });
        eventually("the waiter to register", || {
            queues.iter().all(|q| wakers(q) == 1)
        });
        putter_side
            .put(Value::Int(7), 0, None, Wait::NoWait)
            .unwrap();
        assert_eq!(waiter.join().unwrap(), Selected::Ready(vec![target]));
        // Nothing taken, nothing left registered.
        assert_eq!(queues[target].qsize().unwrap(), 1);
        assert!(queues.iter().all(|q| wakers(q) == 0));
    }
}

#[test]
fn destruction_while_waiting_makes_the_queue_ready() {
    let (a, b) = (create(0), create(1));
    let (a2, b2) = (a.clone(), b.clone());
    let waiter = thread::spawn(move || wait_any(&[&a2, &b2], Wait::Forever, None));
    eventually("the waiter to register", || {
        wakers(&a) == 1 && wakers(&b) == 1
    });
    queue::destroy(b.id()).unwrap();
    assert_eq!(waiter.join().unwrap(), Selected::Ready(vec![1]));
    assert_eq!(wakers(&a), 0);
}

#[test]
fn deadline_passes_with_every_queue_empty() {
    let (a, b) = (create(0), create(0));
    let wait = Wait::timeout(Some(Duration::from_millis(20)));
    assert_eq!(wait_any(&[&a, &b], wait, None), Selected::TimedOut);
    assert!(wait.is_expired());
    assert_eq!(wakers(&a) + wakers(&b), 0);
}

#[test]
fn cancel_wakes_a_multi_queue_wait() {
    let (a, b) = (create(0), create(0));
    let cancel = Arc::new(Cancel::new());
    let (a2, b2, c2) = (a.clone(), b.clone(), Arc::clone(&cancel));
    let waiter = thread::spawn(move || wait_any(&[&a2, &b2], Wait::Forever, Some(&c2)));
    eventually("the waiter to register", || wakers(&a) == 1);
    assert!(cancel.cancel());
    assert!(
        !cancel.cancel(),
        "a second cancel reports it was done already"
    );
    assert_eq!(waiter.join().unwrap(), Selected::Cancelled);
    assert_eq!(wakers(&a) + wakers(&b), 0);
}

#[test]
fn cancel_wakes_a_blocked_get_and_takes_nothing() {
    let q = create(0);
    let cancel = Arc::new(Cancel::new());
    let (q2, c2) = (q.clone(), Arc::clone(&cancel));
    let getter = thread::spawn(move || q2.get_cancellable(Wait::Forever, &c2));
    eventually("the getter to block", || getters_waiting(&q) == 1);
    cancel.cancel();
    assert!(matches!(
        getter.join().unwrap(),
        Err(QueueError::Cancelled(_))
    ));
    // Once cancelled, a get gives up even with an item there, which stays queued.
    q.put(Value::Int(1), 0, None, Wait::NoWait).unwrap();
    assert!(matches!(
        q.get_cancellable(Wait::Forever, &cancel),
        Err(QueueError::Cancelled(_))
    ));
    assert_eq!(q.qsize().unwrap(), 1);
    // An uncancelled flag changes nothing.
    let fresh = Cancel::new();
    assert!(matches!(
        q.get_cancellable(Wait::NoWait, &fresh),
        Ok(Received::Value(Value::Int(1)))
    ));
    assert!(matches!(
        q.get_cancellable(Wait::NoWait, &fresh),
        Err(QueueError::Empty(_))
    ));
}

#[test]
fn cancel_wakes_a_blocked_put_and_hands_the_value_back() {
    let q = create(1);
    q.put(Value::Int(1), 0, None, Wait::NoWait).unwrap();
    let cancel = Arc::new(Cancel::new());
    let (q2, c2) = (q.clone(), Arc::clone(&cancel));
    let putter = thread::spawn(move || {
        q2.put_cancellable(Value::Int(2), 0, None, Wait::Forever, &c2)
            .map_err(|e| (e.error, e.value))
    });
    eventually("the putter to block", || {
        queue::info(q.id()).map_or(0, |i| i.putters_waiting) == 1
    });
    cancel.cancel();
    match putter.join().unwrap() {
        Err((QueueError::Cancelled(_), Value::Int(2))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(q.qsize().unwrap(), 1);
}

#[test]
fn many_producers_one_multi_queue_consumer_lose_nothing() {
    let n_queues = 4;
    let per_producer = if cfg!(miri) { 20 } else { 2_000 };
    let queues: Vec<QueueRef> = (0..n_queues).map(|i| create(i as i64 % 2 * 3)).collect();
    let producers: Vec<_> = (0..n_queues)
        .map(|i| {
            let q = queues[i].clone();
            thread::spawn(move || {
                for k in 0..per_producer {
                    q.put(Value::Int(k), 0, None, Wait::Forever).unwrap();
                }
            })
        })
        .collect();
    let handles: Vec<&QueueRef> = queues.iter().collect();
    let mut next = vec![0i64; n_queues];
    let total = n_queues as i64 * per_producer;
    let mut got = 0;
    while got < total {
        let Selected::Ready(ready) = wait_any(&handles, Wait::timeout(Some(SLACK)), None) else {
            panic!("no item within {SLACK:?} after {got}");
        };
        for i in ready {
            match queues[i].get(Wait::NoWait) {
                Ok(Received::Value(Value::Int(k))) => {
                    assert_eq!(k, next[i], "queue {i} out of order");
                    next[i] += 1;
                    got += 1;
                }
                other => panic!("a ready queue gave {other:?}"),
            }
        }
    }
    producers.into_iter().for_each(|p| p.join().unwrap());
    assert!(queues.iter().all(|q| wakers(q) == 0));
}
