//! The SQL a migration runs, built from its [`Plan`]: the shadow column, the capture and
//! guard triggers (both directions), the index builds, the switch's statements, and `--dry-run`'s description.

use super::plan::{Direction, IndexPlan, Plan};
use super::{literal, quote};
use crate::config::Mode;

impl Plan {
    /// `ALTER TABLE … ADD COLUMN` of the shadow.
    pub fn add_shadow_sql(&self) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
            self.table, self.shadow, self.target_type
        )
    }

    /// The capture trigger's name.
    pub fn capture_trigger(&self) -> String {
        let mut base = self.rule.column.clone();
        base.truncate(40);
        quote(&format!("pgcloak_capture_{base}"))
    }

    /// The guard trigger's name.
    pub fn guard_trigger(&self) -> String {
        let mut base = self.rule.column.clone();
        base.truncate(40);
        quote(&format!("pgcloak_guard_{base}"))
    }

    /// `CREATE TRIGGER` of the capture trigger for migration `id`.
    pub fn capture_sql(&self, id: i32) -> String {
        let keys: Vec<String> = self
            .pk
            .iter()
            .map(|(n, _)| {
                let bare = n[1..n.len() - 1].replace("\"\"", "\"");
                format!("\"{}\"", bare.replace('\\', "\\\\").replace('"', "\\\""))
            })
            .collect();
        format!(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OF {} ON {} FOR EACH ROW \
             EXECUTE FUNCTION pgcloak.migrate_capture({}, {})",
            self.capture_trigger(),
            self.column,
            self.table,
            literal(&id.to_string()),
            literal(&format!("{{{}}}", keys.join(",")))
        )
    }

    /// `CREATE TRIGGER` of the guard: any value that is not an envelope of the rule's mode is
    /// refused (the column after an encrypt switch).
    pub fn guard_sql(&self) -> String {
        let (mode, min) = match self.rule.mode {
            Mode::Randomized => ("\\x0101", 34),
            Mode::Deterministic => ("\\x0102", 22),
        };
        let c = &self.column;
        format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {c} ON {} FOR EACH ROW \
             WHEN (NEW.{c} IS NOT NULL AND NOT (octet_length(NEW.{c}) >= {min} \
             AND substring(NEW.{c} FROM 1 FOR 2) = '{mode}'::bytea)) \
             EXECUTE FUNCTION pgcloak.migrate_guard({})",
            self.guard_trigger(),
            self.table,
            literal(&self.rule.column)
        )
    }

    /// `CREATE TRIGGER` of the guard of a column decrypted back to `text`/`varchar`: a value
    /// that is the text form of an envelope of the rule (`\x0102…`) is refused. A statement a
    /// proxy planned before the switch (a prepared one keeps its plan) still sends envelopes as
    /// `bytea`, which PostgreSQL's assignment cast to a string type would store as that text;
    /// other plaintext types have no such cast, so the write fails without this guard.
    pub fn plain_guard_sql(&self) -> Option<String> {
        use crate::codec::LogicalType as L;
        if !matches!(self.rule.ty, L::Text | L::Varchar) {
            return None;
        }
        let (mode, rest) = match self.rule.mode {
            Mode::Randomized => ("0101", 64),
            Mode::Deterministic => ("0102", 40),
        };
        let c = &self.column;
        Some(format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {c} ON {} FOR EACH ROW \
             WHEN (NEW.{c} IS NOT NULL AND NEW.{c}::text ~ '^\\\\x{mode}[0-9a-f]{{{rest},}}$') \
             EXECUTE FUNCTION pgcloak.migrate_plain_guard({})",
            self.guard_trigger(),
            self.table,
            literal(&self.rule.column)
        ))
    }

    /// `CREATE INDEX CONCURRENTLY` of the shadow's copy of `ix`.
    pub fn index_sql(&self, ix: &IndexPlan) -> String {
        format!(
            "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})",
            if ix.unique { "UNIQUE " } else { "" },
            quote(&ix.shadow_name()),
            self.table,
            self.shadow
        )
    }

    /// The statements of the switch (run in one transaction, under the table lock).
    pub fn switch_sql(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                self.capture_trigger(),
                self.table
            ),
            format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                self.guard_trigger(),
                self.table
            ),
            format!("ALTER TABLE {} DROP COLUMN {}", self.table, self.column),
            format!(
                "ALTER TABLE {} RENAME COLUMN {} TO {}",
                self.table, self.shadow, self.column
            ),
        ];
        let schema = quote(&self.rule.schema);
        for ix in &self.indexes {
            let shadow = quote(&ix.shadow_name());
            match &ix.constraint {
                Some(c) => out.push(format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE USING INDEX {shadow}",
                    self.table,
                    quote(c)
                )),
                None => out.push(format!(
                    "ALTER INDEX {schema}.{shadow} RENAME TO {}",
                    quote(&ix.name)
                )),
            }
        }
        if self.not_null {
            out.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID",
                self.table,
                self.not_null_check(),
                self.column
            ));
        }
        match self.direction {
            Direction::Encrypt => out.push(self.guard_sql()),
            Direction::Decrypt => out.extend(self.plain_guard_sql()),
        }
        out
    }

    /// The temporary NOT NULL check's name.
    pub fn not_null_check(&self) -> String {
        let mut base = self.rule.column.clone();
        base.truncate(40);
        quote(&format!("pgcloak_not_null_{base}"))
    }

    /// The plan in words and DDL, for `--dry-run`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}: {} → {} ({} rule, key {}), about {} row(s), walked by primary key ({})\n",
            self.direction.name(),
            self.rule.qualified(),
            self.source_type,
            self.target_type,
            self.rule.mode.name(),
            self.rule.key,
            self.estimated_rows,
            self.pk
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for ix in &self.indexes {
            let what = ix
                .constraint
                .as_ref()
                .map_or(String::new(), |c| format!(" (constraint {c})"));
            s.push_str(&format!(
                "  index {} rebuilt on the new column{what}\n",
                ix.name
            ));
        }
        for ix in &self.dropped {
            s.push_str(&format!("  index {ix} dropped with the plaintext column (useless on randomized ciphertext)\n"));
        }
        if self.not_null {
            s.push_str("  NOT NULL re-established after the switch\n");
        }
        s.push_str("  DDL:\n");
        let mut ddl = vec![self.add_shadow_sql(), self.capture_sql(0)];
        ddl.extend(self.indexes.iter().map(|ix| self.index_sql(ix)));
        ddl.push(format!(
            "BEGIN; SET LOCAL lock_timeout = '200ms'; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            self.table
        ));
        ddl.extend(self.switch_sql());
        ddl.push("COMMIT".into());
        for d in ddl {
            s.push_str(&format!("    {d};\n"));
        }
        s
    }
}
