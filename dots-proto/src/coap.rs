//! Placeholder: filled in by the dots-proto work (issue 3).
