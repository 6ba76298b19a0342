//! The logical types a rules file may name (spec §3) and their PostgreSQL type facts.

use std::fmt;

/// The type the application sees for an encrypted column. Storage is always `bytea`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicalType {
    Text,
    Varchar,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Bool,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Uuid,
    Json,
    Jsonb,
    Bytea,
}

impl LogicalType {
    /// Every logical type, in the spec's order.
    pub const ALL: [LogicalType; 17] = [
        Self::Text,
        Self::Varchar,
        Self::Int2,
        Self::Int4,
        Self::Int8,
        Self::Float4,
        Self::Float8,
        Self::Numeric,
        Self::Bool,
        Self::Date,
        Self::Time,
        Self::Timestamp,
        Self::Timestamptz,
        Self::Uuid,
        Self::Json,
        Self::Jsonb,
        Self::Bytea,
    ];

    /// Parses a rules-file type name, accepting PostgreSQL's usual aliases (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "text" => Self::Text,
            "varchar" | "character varying" => Self::Varchar,
            "int2" | "smallint" => Self::Int2,
            "int4" | "int" | "integer" => Self::Int4,
            "int8" | "bigint" => Self::Int8,
            "float4" | "real" => Self::Float4,
            "float8" | "double precision" | "float" => Self::Float8,
            "numeric" | "decimal" => Self::Numeric,
            "bool" | "boolean" => Self::Bool,
            "date" => Self::Date,
            "time" | "time without time zone" => Self::Time,
            "timestamp" | "timestamp without time zone" => Self::Timestamp,
            "timestamptz" | "timestamp with time zone" => Self::Timestamptz,
            "uuid" => Self::Uuid,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "bytea" => Self::Bytea,
            _ => return None,
        })
    }

    /// The canonical name, as PostgreSQL's `pg_type.typname`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Varchar => "varchar",
            Self::Int2 => "int2",
            Self::Int4 => "int4",
            Self::Int8 => "int8",
            Self::Float4 => "float4",
            Self::Float8 => "float8",
            Self::Numeric => "numeric",
            Self::Bool => "bool",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::Timestamptz => "timestamptz",
            Self::Uuid => "uuid",
            Self::Json => "json",
            Self::Jsonb => "jsonb",
            Self::Bytea => "bytea",
        }
    }

    /// The type's OID in `pg_type` (used in RowDescription and ParameterDescription).
    pub fn oid(self) -> u32 {
        match self {
            Self::Text => 25,
            Self::Varchar => 1043,
            Self::Int2 => 21,
            Self::Int4 => 23,
            Self::Int8 => 20,
            Self::Float4 => 700,
            Self::Float8 => 701,
            Self::Numeric => 1700,
            Self::Bool => 16,
            Self::Date => 1082,
            Self::Time => 1083,
            Self::Timestamp => 1114,
            Self::Timestamptz => 1184,
            Self::Uuid => 2950,
            Self::Json => 114,
            Self::Jsonb => 3802,
            Self::Bytea => 17,
        }
    }

    /// The logical type whose OID is `oid` (the inverse of [`LogicalType::oid`]); also accepts
    /// `bpchar` (1042) as varchar, `name` (19) as text. None for any other OID.
    pub fn from_oid(oid: u32) -> Option<Self> {
        match oid {
            1042 => Some(Self::Varchar),
            19 => Some(Self::Text),
            _ => Self::ALL.into_iter().find(|t| t.oid() == oid),
        }
    }

    /// `pg_type.typlen`: the fixed size in bytes, or -1 for variable-length types.
    pub fn typlen(self) -> i16 {
        match self {
            Self::Int2 => 2,
            Self::Int4 | Self::Float4 | Self::Date => 4,
            Self::Int8 | Self::Float8 | Self::Time | Self::Timestamp | Self::Timestamptz => 8,
            Self::Bool => 1,
            Self::Uuid => 16,
            _ => -1,
        }
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `bytea` type OID: the storage type of every encrypted column.
pub const BYTEA_OID: u32 = 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_oid_inverts_oid_and_knows_aliases() {
        for ty in LogicalType::ALL {
            assert_eq!(LogicalType::from_oid(ty.oid()), Some(ty));
        }
        assert_eq!(LogicalType::from_oid(1042), Some(LogicalType::Varchar));
        assert_eq!(LogicalType::from_oid(19), Some(LogicalType::Text));
        assert_eq!(LogicalType::from_oid(0), None);
        assert_eq!(LogicalType::from_oid(1186), None); // interval
    }
}
