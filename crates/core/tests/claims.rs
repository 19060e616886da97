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
