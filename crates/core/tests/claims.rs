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
