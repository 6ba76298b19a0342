//! Configuration: the `pgcloak.toml` file (strict serde structs, validated) and the rules
//! files compiled into a [`Rules`] index.

pub mod file;
pub mod rules;

pub use file::{Config, ConfigError};
pub use rules::{ColumnRule, Mode, Rules, TableRules};
