//! Many threads on a few channels: every item is received exactly once, and each receiver sees
//! each sender's items in the order they were sent (FIFO per channel).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use subinterpreters_core::registry;
use subinterpreters_core::{ChannelError, Value};

const THREADS: usize = 8;
const SENDERS: usize = THREADS / 2;
const CHANNELS: usize = 3;
const ITEMS: usize = if cfg!(miri) { 200 } else { 100_000 };
const PER_SENDER: usize = ITEMS / SENDERS;

/// An item: sender in the high half, sequence number in the low half.
fn item(sender: usize, seq: usize) -> i64 {
    ((sender as i64) << 32) | seq as i64
}

#[test]
fn every_item_received_once_in_order_per_sender() {
    let chans: Vec<_> = (0..CHANNELS).map(|_| registry::create()).collect();
    let ids: Arc<Vec<i64>> = Arc::new(chans.iter().map(|c| c.id()).collect());
    let received = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (ids, start) = (ids.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for seq in 0..PER_SENDER {
                    // Spread each sender over every channel; FIFO holds per channel.
                    let id = ids[seq % CHANNELS];
                    // Interpreter ids need not be distinct per thread; use a few.
                    registry::send(id, (s % 2) as i64, Value::Int(item(s, seq))).unwrap();
                }
            })
        })
        .collect();

    let receivers: Vec<_> = (0..THREADS - SENDERS)
        .map(|r| {
            let (ids, start, received) = (ids.clone(), start.clone(), received.clone());
            thread::spawn(move || {
                start.wait();
                let mut got: Vec<(usize, i64)> = Vec::new();
                let mut turn = r;
                while received.load(Ordering::Relaxed) < PER_SENDER * SENDERS {
                    let chan = turn % CHANNELS;
                    turn += 1;
                    match registry::recv(ids[chan], 10 + r as i64) {
                        Ok(Some(Value::Int(v))) => {
                            received.fetch_add(1, Ordering::Relaxed);
                            got.push((chan, v));
                        }
                        Ok(Some(other)) => panic!("unexpected item {other:?}"),
                        // Nothing queued there right now: let a sender run.
                        Ok(None) => thread::yield_now(),
                        Err(e) => panic!("recv failed: {e}"),
                    }
                }
                got
            })
        })
        .collect();

    for s in senders {
        s.join().unwrap();
    }
    let mut seen = vec![vec![false; PER_SENDER]; SENDERS];
    for r in receivers {
        let got = r.join().unwrap();
        // Per receiver, per (channel, sender): strictly increasing sequence numbers.
        let mut last: HashMap<(usize, usize), usize> = HashMap::new();
        for (chan, v) in got {
            let (sender, seq) = ((v >> 32) as usize, (v & 0xFFFF_FFFF) as usize);
            assert_eq!(seq % CHANNELS, chan, "item arrived on the wrong channel");
            if let Some(&prev) = last.get(&(chan, sender)) {
                assert!(
                    seq > prev,
                    "sender {sender}: {seq} after {prev} on channel {chan}"
                );
            }
            last.insert((chan, sender), seq);
            assert!(!seen[sender][seq], "item ({sender}, {seq}) received twice");
            seen[sender][seq] = true;
        }
    }
    for (sender, seqs) in seen.iter().enumerate() {
        if let Some(seq) = seqs.iter().position(|&s| !s) {
            panic!("item ({sender}, {seq}) never received");
        }
    }
    for c in &chans {
        assert_eq!(registry::count(c.id()), Ok(0));
        assert_eq!(registry::recv(c.id(), 0).map(|v| v.is_none()), Ok(true));
    }
    drop(chans);
    for &id in ids.iter() {
        assert_eq!(registry::count(id), Err(ChannelError::NotFound(id)));
    }
}

#[test]
fn concurrent_handle_traffic_keeps_counts_exact() {
    // Threads clone, send, receive and drop handles of one channel through another; at the
    // end only the original handle is left.
    let subject = registry::create();
    let carrier = registry::create();
    let rounds = if cfg!(miri) { 20 } else { 5_000 };
    thread::scope(|s| {
        for t in 0..4 {
            let (subject, carrier) = (&subject, &carrier);
            s.spawn(move || {
                for _ in 0..rounds {
                    registry::send(carrier.id(), t, Value::Channel(subject.clone())).unwrap();
                    match registry::recv(carrier.id(), t) {
                        Ok(Some(Value::Channel(h))) => assert_eq!(h.id(), subject.id()),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(registry::info(subject.id()).unwrap().object_count, 1);
    assert_eq!(registry::count(carrier.id()), Ok(0));
}
