//! How long a blocking queue operation may wait.

use std::time::{Duration, Instant};

/// How long `put` may wait for room or `get` for an item, on the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait: fail at once with `Full` / `Empty`.
    NoWait,
    /// Wait until this instant at most, then fail with `TimedOut`.
    Until(Instant),
    /// Wait as long as it takes (or until the queue is destroyed).
    Forever,
}

impl Wait {
    /// A wait for `timeout` from now; `None` means forever, as does a timeout too large to
    /// represent.
    pub fn timeout(timeout: Option<Duration>) -> Wait {
        match timeout {
            None => Wait::Forever,
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Wait::Forever, Wait::Until),
        }
    }

    /// This wait, cut short to end at most `slice` from now.
    ///
    /// For a caller that must wake up now and then (to check for Ctrl-C, say): wait with
    /// `wait.capped(slice)`, and on `TimedOut` ask [`Wait::is_expired`] of the uncapped wait to
    /// tell a slice ending from the real deadline.
    pub fn capped(self, slice: Duration) -> Wait {
        let Some(end) = Instant::now().checked_add(slice) else {
            return self;
        };
        match self {
            Wait::NoWait => Wait::NoWait,
            Wait::Until(t) => Wait::Until(t.min(end)),
            Wait::Forever => Wait::Until(end),
        }
    }

    /// Whether the deadline has passed (never for `Forever`; always for `NoWait`).
    pub fn is_expired(self) -> bool {
        match self {
            Wait::NoWait => true,
            Wait::Until(t) => Instant::now() >= t,
            Wait::Forever => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_never_extends_a_wait() {
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(
            Wait::Until(soon).capped(Duration::from_secs(60)),
            Wait::Until(soon)
        );
        assert_eq!(Wait::NoWait.capped(Duration::from_secs(1)), Wait::NoWait);
        assert!(matches!(
            Wait::Forever.capped(Duration::from_millis(100)),
            Wait::Until(_)
        ));
        assert!(!Wait::Forever.is_expired());
        assert!(Wait::NoWait.is_expired());
        assert_eq!(Wait::timeout(None), Wait::Forever);
        assert_eq!(Wait::timeout(Some(Duration::MAX)), Wait::Forever);
    }
}
