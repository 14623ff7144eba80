//! What Confab's synthetic participants share: `confab-call-probe` (a participant for
//! end-to-end and interop tests) and `confab-broadcast` (a livestream host for demos and
//! tests) both publish the fake camera's pattern as H.264 and a tone as Opus through an SFU
//! session.

pub mod publish;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not join the call: {0}")]
    Join(String),
    #[error("could not publish {0}")]
    Publish(String),
    #[error("{0}")]
    Setup(String),
    #[error("the call ended before the probe was done: {0}")]
    Ended(String),
}
