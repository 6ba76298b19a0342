//! Integration tests: real PostgreSQL, real TLS, real drivers. Each test module shares one
//! throwaway PostgreSQL ([`pgcloak::devdb::DevDb`]) with a fresh database per test
//! ([`harness::shared_db`]); tests that change the server itself (roles, settings, restarts,
//! its log or files) start their own. pgcloak runs in front of it ([`harness::TestEnv`]);
//! `serve` tests run the real binary as a child process.

mod adversarial;
mod adversarial_deep;
mod adversarial_fixed;
mod adversarial_more;
mod adversarial_orm;
mod adversarial_paths;
mod adversarial_stmts;
mod adversarial_values;
mod cli;
mod clients;
mod demo;
mod drivers;
mod enc_any;
mod enc_closed;
mod enc_copy;
mod enc_env;
mod enc_forms;
mod enc_lifts;
mod enc_ops;
mod enc_path;
mod enc_refuse;
mod enc_types;
mod encryption;
mod harness;
mod keys_kms_hsm;
mod keys_providers;
mod keys_scale;
mod keys_servers;
mod keys_vault;
mod leak;
mod lib_db;
mod limits;
mod migrate;
mod migrate_group;
mod migrate_more;
mod migrate_refuse;
mod migrate_stale;
mod ops_audit;
mod ops_audit_cli;
mod ops_audit_vault;
mod ops_deploy;
mod ops_metrics;
mod ops_reload;
mod ops_replicas;
mod ops_util;
mod psql;
mod queries;
mod relay_smoke;
mod robustness;
mod rules_db;
mod security;
mod serve;
mod wire;
