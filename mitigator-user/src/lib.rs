//! The mitigator daemon: data plane, registry, control API.
pub mod dataplane;
