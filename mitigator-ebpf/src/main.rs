//! Placeholder: the XDP program (issue 2).
#![no_std]
#![no_main]
