//! Integration tests: real PostgreSQL, real TLS, real drivers.
mod relay_smoke;
