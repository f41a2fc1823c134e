//! Injected faults: what a flaky network or an overloaded GLPI does to the
//! bridge. Counted faults are consumed one per matching request, in the order
//! drop → server error → 429, so a test can queue several kinds at once.

use std::time::Duration;

/// A fault to inject with [`super::Emulator::inject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every request waits this long before being handled, until cleared.
    /// Requests still overlap (the wait does not serialise them).
    Latency(Duration),
    /// The next `count` requests answer `status` (e.g. 500/502/503) with an
    /// HTML body, as a failing PHP or reverse proxy would; nothing is done.
    ServerErrors { count: u32, status: u16 },
    /// The next `count` requests answer 429 with `Retry-After`; nothing is done.
    TooManyRequests { count: u32, retry_after_secs: u32 },
    /// All current session tokens become invalid (401
    /// `ERROR_SESSION_TOKEN_INVALID`). Applied immediately.
    InvalidateSessions,
    /// The next `count` requests: the connection is closed without a
    /// response; nothing is done.
    DropConnections { count: u32 },
    /// The next `count` POST creates (of that itemtype, case-insensitive, or of
    /// any when `None`): the request IS processed (the item is created), then
    /// the connection is closed without a response — a lost response. A POST
    /// that creates nothing (GLPI refused it) answers normally and does not
    /// use up the count.
    CommitThenDrop {
        count: u32,
        itemtype: Option<String>,
    },
}

/// What the server must do with a request before (or instead of) handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interception {
    Drop,
    Status(u16),
    TooMany { retry_after_secs: u32 },
}

#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    latency: Option<Duration>,
    drops: u32,
    server_errors: Vec<(u32, u16)>,
    too_many: Vec<(u32, u32)>,
    commit_then_drop: Vec<(u32, Option<String>)>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        match fault {
            Fault::Latency(d) => self.latency = Some(d),
            Fault::ServerErrors { count, status } => self.server_errors.push((count, status)),
            Fault::TooManyRequests {
                count,
                retry_after_secs,
            } => self.too_many.push((count, retry_after_secs)),
            Fault::InvalidateSessions => {}
            Fault::DropConnections { count } => self.drops += count,
            Fault::CommitThenDrop { count, itemtype } => {
                self.commit_then_drop.push((count, itemtype))
            }
        }
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// Consumes one counted fault, if any is pending.
    pub(crate) fn intercept(&mut self) -> Option<Interception> {
        if self.drops > 0 {
            self.drops -= 1;
            return Some(Interception::Drop);
        }
        if let Some(status) = take_one(&mut self.server_errors) {
            return Some(Interception::Status(status));
        }
        if let Some(retry_after_secs) = take_one(&mut self.too_many) {
            return Some(Interception::TooMany { retry_after_secs });
        }
        None
    }

    /// Consumes one `CommitThenDrop` matching a create of `itemtype`.
    pub(crate) fn take_commit_then_drop(&mut self, itemtype: &str) -> bool {
        let pos = self.commit_then_drop.iter().position(|(count, t)| {
            *count > 0 && t.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(itemtype))
        });
        match pos {
            Some(i) => {
                self.commit_then_drop[i].0 -= 1;
                if self.commit_then_drop[i].0 == 0 {
                    self.commit_then_drop.remove(i);
                }
                true
            }
            None => false,
        }
    }
}

fn take_one<T: Copy>(queue: &mut Vec<(u32, T)>) -> Option<T> {
    let first = queue.first_mut()?;
    let value = first.1;
    first.0 = first.0.saturating_sub(1);
    if first.0 == 0 {
        queue.remove(0);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_consumed_in_order() {
        let mut q = FaultQueue::default();
        q.push(Fault::ServerErrors {
            count: 1,
            status: 502,
        });
        q.push(Fault::DropConnections { count: 1 });
        q.push(Fault::TooManyRequests {
            count: 1,
            retry_after_secs: 3,
        });
        assert_eq!(q.intercept(), Some(Interception::Drop));
        assert_eq!(q.intercept(), Some(Interception::Status(502)));
        assert_eq!(
            q.intercept(),
            Some(Interception::TooMany {
                retry_after_secs: 3
            })
        );
        assert_eq!(q.intercept(), None);
    }

    #[test]
    fn commit_then_drop_matches_itemtype_case_insensitively() {
        let mut q = FaultQueue::default();
        q.push(Fault::CommitThenDrop {
            count: 1,
            itemtype: Some("Ticket".into()),
        });
        assert!(!q.take_commit_then_drop("User"));
        assert!(q.take_commit_then_drop("ticket"));
        assert!(!q.take_commit_then_drop("Ticket"));
    }
}
