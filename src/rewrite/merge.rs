//! MERGE: the target and the source in one scope, the join condition, and each WHEN clause —
//! its condition, an UPDATE's SET list and an INSERT's columns and values — analysed as UPDATE
//! and INSERT are, so values bound for encrypted columns are encrypted like theirs.

use pg_query::NodeEnum;
use pg_query::protobuf::{CmdType, MergeStmt, MergeWhenClause};

use super::analyzer::Analyzer;
use super::bind::R;
use super::scope::Rel;
use super::select::Output;
use super::stmt::insert_targets;

impl Analyzer<'_, '_> {
    /// `[WITH …] MERGE INTO t USING src ON cond WHEN … [RETURNING …]`.
    pub(crate) fn merge(&mut self, m: &MergeStmt) -> R<Output> {
        self.with_ctes(m.with_clause.as_ref(), |an| an.merge_body(m))
    }

    fn merge_body(&mut self, m: &MergeStmt) -> R<Output> {
        let rel = self.target(m.relation.as_ref())?;
        self.scopes.push();
        self.scopes.add(rel.clone());
        let res = (|| {
            if let Some(src) = m.source_relation.as_deref() {
                self.add_from_item(src)?;
            }
            self.cond(m.join_condition.as_deref())?;
            for w in &m.merge_when_clauses {
                match w.node.as_ref() {
                    Some(NodeEnum::MergeWhenClause(w)) => self.merge_when(w, &rel)?,
                    Some(other) => {
                        self.opaque(other, "this MERGE clause")?;
                    }
                    None => {}
                }
            }
            self.returning_in_scope(m.returning_clause.as_ref())
        })();
        self.scopes.pop();
        res
    }

    fn merge_when(&mut self, w: &MergeWhenClause, rel: &Rel) -> R<()> {
        self.cond(w.condition.as_deref())?;
        match CmdType::try_from(w.command_type).unwrap_or(CmdType::Undefined) {
            CmdType::CmdUpdate => self.set_list(&w.target_list, rel),
            CmdType::CmdInsert => self.merge_insert(w, rel),
            CmdType::CmdDelete | CmdType::CmdNothing => Ok(()),
            _ => Err(self.refuse_text("this MERGE action")),
        }
    }

    /// `INSERT [(cols)] VALUES (…)` / `INSERT DEFAULT VALUES` of a WHEN NOT MATCHED clause.
    fn merge_insert(&mut self, w: &MergeWhenClause, rel: &Rel) -> R<()> {
        let targets = insert_targets(rel, &w.target_list, "MERGE … INSERT")?;
        for (i, v) in w.values.iter().enumerate() {
            let ev = self.expr(v)?;
            match targets.get(i).cloned().flatten() {
                Some(rule) => self.assign(&rule, ev)?,
                None => self.plain_use(ev, || "copying into a plaintext column".to_owned())?,
            }
        }
        Ok(())
    }
}
