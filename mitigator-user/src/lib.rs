//! The mitigator daemon: data plane, registry, control API.
