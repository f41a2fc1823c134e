//! The one GLPI session shared by every clone of the client (GLPI sessions
//! are PHP sessions: opening one per call, as the old integration did, fills
//! GLPI's session directory and doubles the request count). Opened lazily
//! by the first call; concurrent first calls wait for that single
//! `initSession`. A session GLPI reports invalid is renewed once, by the
//! first caller that notices; the others reuse the renewed one.

use std::future::Future;

use tokio::sync::Mutex;

use crate::secret::Secret;

use super::error::GlpiError;

/// The current session token and a counter of how many sessions were opened,
/// so that a caller holding a stale token renews only if nobody did already.
pub(crate) struct SessionSlot {
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    token: Option<Secret>,
    generation: u64,
}

/// A session token as handed to one call.
#[derive(Clone)]
pub(crate) struct SessionLease {
    pub(crate) token: Secret,
    pub(crate) generation: u64,
}

impl SessionSlot {
    pub(crate) fn new() -> Self {
        SessionSlot {
            state: Mutex::new(SessionState::default()),
        }
    }

    /// The open session, opening one with `open` if there is none. The lock
    /// is held while opening so that concurrent callers share one
    /// `initSession`.
    pub(crate) async fn current_or_open<F, Fut>(&self, open: F) -> Result<SessionLease, GlpiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Secret, GlpiError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token {
            return Ok(SessionLease {
                token: token.clone(),
                generation: state.generation,
            });
        }
        Self::open_locked(&mut state, open).await
    }

    /// Replaces the session that GLPI refused (`stale_generation`) with a new
    /// one, unless another caller already did.
    pub(crate) async fn renew<F, Fut>(
        &self,
        stale_generation: u64,
        open: F,
    ) -> Result<SessionLease, GlpiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Secret, GlpiError>>,
    {
        let mut state = self.state.lock().await;
        if state.generation != stale_generation {
            if let Some(token) = &state.token {
                return Ok(SessionLease {
                    token: token.clone(),
                    generation: state.generation,
                });
            }
        }
        state.token = None;
        Self::open_locked(&mut state, open).await
    }

    /// Removes the session token (to kill it); later calls open a new one.
    pub(crate) async fn take(&self) -> Option<Secret> {
        self.state.lock().await.token.take()
    }

    async fn open_locked<F, Fut>(
        state: &mut SessionState,
        open: F,
    ) -> Result<SessionLease, GlpiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Secret, GlpiError>>,
    {
        let token = open().await?;
        state.generation += 1;
        state.token = Some(token.clone());
        Ok(SessionLease {
            token,
            generation: state.generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_first_calls_open_one_session_and_renew_once() {
        let slot = Arc::new(SessionSlot::new());
        let opened = Arc::new(AtomicU32::new(0));
        let open = |opened: Arc<AtomicU32>| async move {
            let n = opened.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            Ok::<_, GlpiError>(Secret::new(format!("session-{n}")))
        };
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (slot, opened) = (slot.clone(), opened.clone());
            tasks.push(tokio::spawn(async move {
                slot.current_or_open(|| open(opened)).await.unwrap()
            }));
        }
        let mut leases = Vec::new();
        for t in tasks {
            leases.push(t.await.unwrap());
        }
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        assert!(leases.iter().all(|l| l.token.expose() == "session-1"));

        let stale = leases[0].generation;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (slot, opened) = (slot.clone(), opened.clone());
            tasks.push(tokio::spawn(async move {
                slot.renew(stale, || open(opened)).await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().token.expose(), "session-2");
        }
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(slot.take().await.unwrap().expose(), "session-2");
        assert!(slot.take().await.is_none());
    }
}
