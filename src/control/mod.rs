//! control (placeholder; filled in by its issue).
