//! Shared pieces of the end-to-end tests and of `cargo xtask demo`: a lab of
//! network namespaces joined by a bridge, and a daemon running in one of them.
//!
//! Everything a lab creates is removed when it is dropped, and every name
//! carries the lab's tag, so labs of tests running in parallel never meet.

pub mod daemon;
pub mod escalation;
pub mod datachannel;
pub mod netlab;
pub mod signal;
pub mod traffic;

pub use daemon::Daemon;
pub use netlab::{Host, Lab};
