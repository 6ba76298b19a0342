//! Configuration: the `pgcloak.toml` file (strict serde structs, validated) and the rules
//! files compiled into one [`Rules`] index per database they name ([`DatabaseRules`]).

pub mod file;
pub mod keys;
pub mod rules_file;
pub mod secrets;

/// The compiled index and identifiers live in the core ([`crate::rules`]); the old paths stay.
pub use crate::rules;
pub use crate::rules::ident;

pub use file::{Config, ConfigError};
pub use rules::{ColumnRule, Mode, Rules, TableRules};
pub use rules_file::{
    DatabaseRules, RulesError, RulesFile, load_rules, parse_rules, parse_rules_file,
};
