//! Key commands (in progress).
