//! Integration tests: real PostgreSQL, real TLS, real drivers.
