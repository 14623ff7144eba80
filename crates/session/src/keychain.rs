//! The keychain, one request at a time and in the order asked.
//!
//! The Secret Service client blocks, so its calls run on a thread of their own. Order matters:
//! a "remember" asked for before a sign-out must not land after that sign-out's "forget", or a
//! signed-out user would be signed in again at the next start.

use std::sync::mpsc;

use confab_credentials::{Keychain, KeychainError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&Keychain) + Send>;

/// A handle to the keychain thread. Cheap to clone; the thread ends with the last handle.
#[derive(Clone)]
pub struct KeychainQueue {
    jobs: mpsc::Sender<Job>,
}

impl KeychainQueue {
    pub fn start(keychain: Keychain) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("confab-keychain".into())
            .spawn(move || {
                for job in queue {
                    job(&keychain);
                }
            });
        if let Err(e) = spawned {
            // Without the thread every request fails as "unavailable", below.
            tracing::warn!(target: "confab::session", error = %e, "no keychain thread");
        }
        Self { jobs }
    }

    /// Queues `f`; the answer arrives when every request queued before it has run.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Keychain) -> Result<T, KeychainError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, KeychainError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.jobs.send(Box::new(move |k: &Keychain| {
            let _ = tx.send(f(k));
        }));
        async move {
            if queued.is_err() {
                return Err(KeychainError::Unavailable(
                    "the keychain thread ended".into(),
                ));
            }
            rx.await.unwrap_or_else(|_| {
                Err(KeychainError::Failed(
                    "the keychain call did not finish".into(),
                ))
            })
        }
    }
}
