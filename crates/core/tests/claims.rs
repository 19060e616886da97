//! Claims: exactly one taker wins, whatever the interleaving.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use subinterpreters_core::claims;

#[test]
fn take_once() {
    let id = claims::open();
    assert!(claims::take(id));
    assert!(!claims::take(id));
    assert!(!claims::take(u64::MAX)); // never opened
}

#[test]
fn racing_takers_one_winner() {
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    for _ in 0..rounds {
        let id = claims::open();
        let wins = Arc::new(AtomicUsize::new(0));
        let takers: Vec<_> = (0..3)
            .map(|_| {
                let wins = Arc::clone(&wins);
                thread::spawn(move || {
                    if claims::take(id) {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in takers {
            t.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn a_holder_holds_its_last_claim_until_it_lets_go() {
    let holder = claims::open(); // any number unique among holders
    assert!(claims::take(holder));
    let (a, b) = (claims::open(), claims::open());
    assert!(claims::is_open(a));
    assert!(claims::take_as(a, holder));
    assert!(!claims::is_open(a));
    assert!(claims::take_as(b, holder));
    assert_eq!(claims::release(holder), b);
    assert_eq!(claims::release(holder), 0);
    let c = claims::open();
    assert!(claims::take(c)); // the submitter took it back: no worker holds it
    assert!(!claims::take_as(c, holder));
    assert_eq!(claims::release(holder), 0);
}

const RUNNER: claims::Runner = claims::Runner {
    interp: 3,
    thread: 42,
};

#[test]
fn a_call_runs_from_start_to_finish_once() {
    let id = claims::open();
    let holder = 77;
    assert!(claims::start(id, holder, RUNNER));
    assert!(!claims::is_open(id)); // taken, and held by its holder, from the same trip
    assert!(!claims::start(id, holder, RUNNER)); // once
    assert!(!claims::take(id));
    assert_eq!(claims::runner(id), Some(RUNNER));
    assert_eq!(claims::finish(id), Some(false));
    assert_eq!(claims::finish(id), None);
    assert_eq!(claims::runner(id), None);
    assert_eq!(claims::release(holder), id);
    assert!(!claims::start(0, 0, RUNNER));
    assert!(!claims::start(u64::MAX, 0, RUNNER)); // never opened
    let cancelled = claims::open();
    assert!(claims::take(cancelled));
    assert!(!claims::start(cancelled, 0, RUNNER)); // taken to cancel: never runs
}

#[test]
fn interrupt_only_while_running_and_once() {
    let id = claims::open();
    assert_eq!(claims::mark_interrupted(id), None); // queued: nothing runs it
    assert!(claims::start(id, 0, RUNNER));
    assert_eq!(claims::mark_interrupted(id), Some(RUNNER));
    assert_eq!(claims::mark_interrupted(id), None); // asked already
    assert_eq!(claims::finish(id), Some(true));
    assert_eq!(claims::mark_interrupted(id), None); // over: a later call is never hit
}
