//! Every statement kind that is not a query or DML: an allow-list.
//!
//! The kinds listed in [`Analyzer::other_statement`] either move no value into or out of a
//! table (transaction control, `SET`, `LISTEN`, …) or name a table without moving a value
//! into it (`DROP`, `TRUNCATE`, `GRANT`, `COMMENT`, `VACUUM`, …). DDL that can give a rules
//! column a type, a default, a rewrite or a predicate is modelled here (`CREATE TABLE`,
//! `ALTER TABLE`, `CREATE INDEX`, renames); every other kind is refused when it names a rules
//! table or an encrypted column anywhere in its tree ([`Analyzer::opaque`]). So a statement
//! kind pgcloak has never heard of cannot reach a rules table unanalysed.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, CreateStmt,
    IndexStmt, ObjectType, RangeVar, RenameStmt, TypeName,
};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::R;
use super::plan::Refusal;
use crate::rules::{ColumnRule, TableRules};

/// What the client is told to do instead of DDL that would break an encrypted column.
const DDL_HINT: &str = "encrypted columns are bytea; change them only with pgcloak's own \
                        commands or directly against PostgreSQL";

/// The construct of a refusal of `what` on a pending column (still plaintext in the database,
/// spec §3) or on its migration shadow: only `pgcloak migrate encrypt` changes either.
fn pending_construct(rule: &ColumnRule, what: &str) -> String {
    format!(
        "{what} of column {rule}, which is pending (a rules column still stored as plaintext: \
         bring it under its rule with `pgcloak migrate encrypt --column {rule}`, not with DDL \
         through pgcloak)"
    )
}

impl Analyzer<'_, '_> {
    /// A statement kind that `statement` does not model as a query.
    pub(crate) fn other_statement(&mut self, node: &NodeEnum) -> R<()> {
        match node {
            // Move no value into or out of any table, and change no name's meaning.
            NodeEnum::TransactionStmt(_)
            | NodeEnum::VariableSetStmt(_)
            | NodeEnum::VariableShowStmt(_)
            | NodeEnum::DiscardStmt(_)
            | NodeEnum::ListenStmt(_)
            | NodeEnum::UnlistenStmt(_)
            | NodeEnum::NotifyStmt(_)
            | NodeEnum::DeallocateStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::ClosePortalStmt(_)
            | NodeEnum::FetchStmt(_)
            | NodeEnum::ConstraintsSetStmt(_)
            | NodeEnum::ExecuteStmt(_)
            // Name a table (or its columns), but move no value into it.
            | NodeEnum::DropStmt(_)
            | NodeEnum::TruncateStmt(_)
            | NodeEnum::GrantStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::LockStmt(_)
            | NodeEnum::VacuumStmt(_)
            | NodeEnum::ClusterStmt(_)
            | NodeEnum::ReindexStmt(_) => Ok(()),
            NodeEnum::CreateStmt(c) => self.create_table(c),
            NodeEnum::AlterTableStmt(a) => self.alter_table(a),
            NodeEnum::RenameStmt(r) => self.rename(r),
            NodeEnum::IndexStmt(i) => self.create_index(i),
            other => self.opaque(other, &kind_name(other)).map(|_| ()),
        }
    }

    /// The rules of the table a DDL statement names (`create`: the table is being created,
    /// so an unqualified name lands in the first schema of the path).
    fn ddl_rules(&self, rv: &RangeVar, create: bool) -> Option<&TableRules> {
        let schema = if rv.schemaname.is_empty() && create {
            self.ctx.search_path.first().cloned()
        } else {
            self.resolve_schema(&rv.schemaname, &rv.relname)
        }?;
        self.ctx.rules.table(&schema, &rv.relname)
    }

    /// True when `name` is the name of some rules table (in any schema).
    fn is_rules_table_name(&self, name: &str) -> bool {
        self.ctx.rules.table_names().iter().any(|n| n == name)
    }

    /// Refuses `what` when `column` of the rules table is pending or the shadow of one (the
    /// served rules leave pending columns out, so the checks below would take them as plain).
    fn refuse_pending(&self, rules: &TableRules, column: &str, what: &str) -> R<()> {
        match self
            .ctx
            .catalog
            .pending_rule(&rules.schema, &rules.table, column)
        {
            Some(rule) => Err(Refusal::table(
                format!("{}.{}", rules.schema, rules.table),
                pending_construct(&rule, what),
            )),
            None => Ok(()),
        }
    }

    fn create_table(&mut self, c: &CreateStmt) -> R<()> {
        let Some(rv) = c.relation.as_ref() else {
            return Ok(());
        };
        let temp = rv.relpersistence == "t" || rv.schemaname.starts_with("pg_temp");
        if temp && self.is_rules_table_name(&rv.relname) {
            return Err(self.refuse_text(
                "a temporary table named like a rules table (it would shadow it; choose \
                 another name)",
            ));
        }
        let Some(rules) = self.ddl_rules(rv, true).cloned() else {
            return self.create_plain_table(c);
        };
        let table = format!("{}.{}", rules.schema, rules.table);
        if !c.inh_relations.is_empty() || c.partbound.is_some() || c.of_typename.is_some() {
            return Err(Refusal::table(
                table,
                "CREATE TABLE … INHERITS / PARTITION OF / OF type (column types unknown)",
            ));
        }
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(cd)) => self.column_def(&rules, cd)?,
                Some(NodeEnum::Constraint(k)) => self.constraint(k)?,
                _ => {
                    return Err(Refusal::table(
                        table,
                        "CREATE TABLE … (LIKE …) (column types unknown)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// CREATE TABLE of a table with no rules: it may not be a partition or child of one.
    fn create_plain_table(&mut self, c: &CreateStmt) -> R<()> {
        for parent in &c.inh_relations {
            if let Some(NodeEnum::RangeVar(p)) = parent.node.as_ref()
                && let Some(rules) = self.ddl_rules(p, false)
            {
                return Err(Refusal::table(
                    format!("{}.{}", rules.schema, rules.table),
                    "a partition or child table of it (list it in the rules instead)",
                ));
            }
        }
        Ok(())
    }

    /// A column definition (CREATE TABLE, ALTER TABLE ADD COLUMN) on a rules table.
    fn column_def(&mut self, rules: &TableRules, cd: &ColumnDef) -> R<()> {
        self.refuse_pending(rules, &cd.colname, "a column definition")?;
        let Some(rule) = rules.column(&cd.colname).cloned() else {
            return Ok(());
        };
        if !cd.type_name.as_ref().is_some_and(is_bytea) {
            return Err(Refusal::column(
                &rule,
                format!("a column type other than bytea ({DDL_HINT})"),
            ));
        }
        if cd.raw_default.is_some() || !cd.generated.is_empty() || !cd.identity.is_empty() {
            return Err(Refusal::column(&rule, "a DEFAULT or generated value"));
        }
        for con in &cd.constraints {
            let Some(NodeEnum::Constraint(k)) = con.node.as_ref() else {
                continue;
            };
            match k.contype() {
                ConstrType::ConstrNull
                | ConstrType::ConstrNotnull
                | ConstrType::ConstrPrimary
                | ConstrType::ConstrUnique
                | ConstrType::ConstrForeign
                | ConstrType::ConstrAttrDeferrable
                | ConstrType::ConstrAttrNotDeferrable
                | ConstrType::ConstrAttrDeferred
                | ConstrType::ConstrAttrImmediate => {}
                _ => {
                    return Err(Refusal::column(
                        &rule,
                        "a DEFAULT, CHECK, generated or exclusion constraint",
                    ));
                }
            }
        }
        Ok(())
    }

    /// A table constraint on a rules table: keys (UNIQUE, PRIMARY KEY, FOREIGN KEY) compare
    /// ciphertexts as bytes, which is sound; an expression or predicate naming an encrypted
    /// column (CHECK, EXCLUDE, a partial constraint) would compare ciphertext with plaintext.
    fn constraint(&mut self, k: &Constraint) -> R<()> {
        let construct = "a CHECK, EXCLUDE or partial constraint on an encrypted column";
        match k.contype() {
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrForeign => {}
            _ => {
                self.opaque_node(k.raw_expr.as_deref(), construct)?;
                for e in &k.exclusions {
                    self.opaque_node(Some(e), construct)?;
                }
            }
        }
        self.opaque_node(k.where_clause.as_deref(), construct)?;
        Ok(())
    }

    fn alter_table(&mut self, a: &AlterTableStmt) -> R<()> {
        let rules = a
            .relation
            .as_ref()
            .and_then(|rv| self.ddl_rules(rv, false))
            .cloned();
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                continue;
            };
            match &rules {
                Some(rules) => self.alter_rules_table(rules, cmd)?,
                None => {
                    self.opaque_node(cmd.def.as_deref(), "this ALTER TABLE on another table")?;
                }
            }
        }
        Ok(())
    }

    /// One `ALTER TABLE` subcommand on a rules table: an allow-list.
    fn alter_rules_table(&mut self, rules: &TableRules, cmd: &AlterTableCmd) -> R<()> {
        use AlterTableType as T;
        let rule = rules.column(&cmd.name).cloned();
        let table = format!("{}.{}", rules.schema, rules.table);
        if let Some(what) = column_subcommand(cmd.subtype()) {
            self.refuse_pending(rules, &cmd.name, what)?;
        }
        match cmd.subtype() {
            T::AtAddColumn => match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::ColumnDef(cd)) => self.column_def(rules, cd),
                _ => Ok(()),
            },
            T::AtColumnDefault | T::AtCookedColumnDefault => match (&rule, &cmd.def) {
                (Some(rule), Some(_)) => Err(Refusal::column(rule, "SET DEFAULT")),
                _ => Ok(()),
            },
            T::AtAlterColumnType => match (&rule, cmd.def.as_deref().and_then(|d| d.node.as_ref()))
            {
                (Some(rule), Some(NodeEnum::ColumnDef(cd)))
                    if cd.raw_default.is_some() || !cd.type_name.as_ref().is_some_and(is_bytea) =>
                {
                    Err(Refusal::column(
                        rule,
                        format!("ALTER COLUMN … TYPE ({DDL_HINT})"),
                    ))
                }
                _ => Ok(()),
            },
            T::AtSetExpression | T::AtAddIdentity | T::AtSetIdentity => match &rule {
                Some(rule) => Err(Refusal::column(rule, "a generated or identity value")),
                None => Ok(()),
            },
            T::AtAddConstraint => match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(k)) => self.constraint(k),
                _ => Ok(()),
            },
            T::AtDropNotNull
            | T::AtSetNotNull
            | T::AtDropExpression
            | T::AtSetStatistics
            | T::AtSetOptions
            | T::AtResetOptions
            | T::AtSetStorage
            | T::AtSetCompression
            | T::AtDropColumn
            | T::AtDropConstraint
            | T::AtValidateConstraint
            | T::AtAlterConstraint
            | T::AtAddIndexConstraint
            | T::AtChangeOwner
            | T::AtClusterOn
            | T::AtDropCluster
            | T::AtSetLogged
            | T::AtSetUnLogged
            | T::AtSetAccessMethod
            | T::AtSetTableSpace
            | T::AtSetRelOptions
            | T::AtResetRelOptions
            | T::AtReplaceRelOptions
            | T::AtEnableRowSecurity
            | T::AtDisableRowSecurity
            | T::AtForceRowSecurity
            | T::AtNoForceRowSecurity
            | T::AtReplicaIdentity
            | T::AtDropIdentity
            | T::AtDetachPartition
            | T::AtDetachPartitionFinalize
            | T::AtDropInherit => Ok(()),
            _ => Err(Refusal::table(
                table,
                "this ALTER TABLE subcommand (inheritance, partitions, triggers, rules or \
                 types change which rows and values the table takes)",
            )),
        }
    }

    /// RENAME: a rules table, an encrypted column, or a rules table's schema may not be
    /// renamed (writes under the new name would go unencrypted), nor anything renamed to a
    /// rules table's name.
    fn rename(&mut self, r: &RenameStmt) -> R<()> {
        let rules = r
            .relation
            .as_ref()
            .and_then(|rv| self.ddl_rules(rv, false))
            .cloned();
        let construct = "RENAME (rename it in the rules file too, then directly against \
                         PostgreSQL while pgcloak is stopped)";
        match (r.rename_type(), rules) {
            (ObjectType::ObjectColumn, Some(rules)) => {
                self.refuse_pending(&rules, &r.subname, "RENAME COLUMN")?;
                self.refuse_pending(&rules, &r.newname, "RENAME COLUMN onto the name")?;
                match rules.column(&r.subname).or(rules.column(&r.newname)) {
                    Some(rule) => Err(Refusal::column(rule, construct)),
                    None => Ok(()),
                }
            }
            (ObjectType::ObjectSchema, _) => {
                let hit = self
                    .ctx
                    .rules
                    .tables()
                    .find(|t| t.schema == r.subname || t.schema == r.newname);
                match hit {
                    Some(t) => Err(Refusal::table(
                        format!("{}.{}", t.schema, t.table),
                        construct,
                    )),
                    None => Ok(()),
                }
            }
            (ObjectType::ObjectTabconstraint | ObjectType::ObjectTrigger, _) => Ok(()),
            (_, Some(rules)) => Err(Refusal::table(
                format!("{}.{}", rules.schema, rules.table),
                construct,
            )),
            (_, None) if self.is_rules_table_name(&r.newname) => {
                Err(self.refuse_text(format!("renaming a relation to {}", r.newname)))
            }
            _ => Ok(()),
        }
    }

    /// CREATE INDEX: plain column indexes are fine (deterministic values index and compare as
    /// bytes); expressions and predicates on an encrypted column are refused.
    fn create_index(&mut self, i: &IndexStmt) -> R<()> {
        let Some(rules) = i
            .relation
            .as_ref()
            .and_then(|rv| self.ddl_rules(rv, false))
            .cloned()
        else {
            return Ok(());
        };
        for p in i.index_params.iter().chain(&i.index_including_params) {
            if let Some(NodeEnum::IndexElem(e)) = p.node.as_ref() {
                self.opaque_node(e.expr.as_deref(), "an expression index over it")?;
                if !e.opclass.is_empty()
                    && let Some(rule) = rules.column(&e.name)
                {
                    return Err(Refusal::column(rule, "an index operator class"));
                }
            }
        }
        self.opaque_node(i.where_clause.as_deref(), "a partial-index predicate on it")?;
        Ok(())
    }
}

/// For an `ALTER TABLE` subcommand that names a column (`cmd.name`): what it does, for a
/// refusal; `None` for subcommands whose name is a constraint's, an index's, or empty.
fn column_subcommand(t: AlterTableType) -> Option<&'static str> {
    use AlterTableType as T;
    Some(match t {
        T::AtAlterColumnType => "ALTER COLUMN … TYPE",
        T::AtDropColumn => "DROP COLUMN",
        T::AtColumnDefault | T::AtCookedColumnDefault => "ALTER COLUMN … SET/DROP DEFAULT",
        T::AtDropNotNull | T::AtSetNotNull => "ALTER COLUMN … SET/DROP NOT NULL",
        T::AtSetExpression | T::AtDropExpression => "ALTER COLUMN … EXPRESSION",
        T::AtAddIdentity | T::AtSetIdentity | T::AtDropIdentity => "ALTER COLUMN … IDENTITY",
        T::AtSetStatistics
        | T::AtSetOptions
        | T::AtResetOptions
        | T::AtSetStorage
        | T::AtSetCompression
        | T::AtAlterColumnGenericOptions => "ALTER COLUMN … SET",
        _ => return None,
    })
}

/// True for `bytea` / `pg_catalog.bytea` without array bounds or modifiers.
fn is_bytea(t: &TypeName) -> bool {
    let names: Vec<&str> = t.names.iter().filter_map(sval).collect();
    let plain = matches!(names.as_slice(), ["bytea"] | ["pg_catalog", "bytea"]);
    plain && t.array_bounds.is_empty() && t.typmods.is_empty() && !t.setof
}

/// A statement kind's name for a refusal message (`CREATE TRIGGER`, or the parse-tree name).
fn kind_name(n: &NodeEnum) -> String {
    let known = match n {
        NodeEnum::CreateTrigStmt(_) => "CREATE TRIGGER",
        NodeEnum::CreatePolicyStmt(_) | NodeEnum::AlterPolicyStmt(_) => "a row-level policy",
        NodeEnum::AlterObjectSchemaStmt(_) => "ALTER … SET SCHEMA",
        NodeEnum::CreateStatsStmt(_) => "CREATE STATISTICS",
        NodeEnum::CreateSchemaStmt(_) => "CREATE SCHEMA with elements",
        NodeEnum::AlterDefaultPrivilegesStmt(_) => "ALTER DEFAULT PRIVILEGES",
        NodeEnum::CreatePublicationStmt(_) | NodeEnum::AlterPublicationStmt(_) => "a publication",
        NodeEnum::CreateForeignTableStmt(_) => "CREATE FOREIGN TABLE",
        NodeEnum::ImportForeignSchemaStmt(_) => "IMPORT FOREIGN SCHEMA",
        NodeEnum::RefreshMatViewStmt(_) => "REFRESH MATERIALIZED VIEW",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    serde_json::to_value(n)
        .ok()
        .and_then(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
        .unwrap_or_else(|| "this statement".to_owned())
}
