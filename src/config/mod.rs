//! Configuration: the `pgcloak.toml` file (strict serde structs, validated) and the rules
//! files compiled into one [`Rules`] index per database they name ([`DatabaseRules`]).

pub mod file;
pub mod ident;
pub mod keys;
pub mod rules;
pub mod rules_file;

pub use file::{Config, ConfigError};
pub use rules::{ColumnRule, Mode, Rules, TableRules};
pub use rules_file::{
    DatabaseRules, RulesError, RulesFile, load_rules, parse_rules, parse_rules_file,
};
