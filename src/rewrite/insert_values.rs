//! `INSERT … SELECT` over a VALUES list in FROM, the form SQLAlchemy 2 uses for
//! "insertmanyvalues":
//!
//! ```sql
//! INSERT INTO t (a, b) SELECT p0::VARCHAR, p1::INTEGER
//! FROM (VALUES ($1::VARCHAR, $2::INTEGER, 0), ($3::VARCHAR, $4::INTEGER, 1))
//!   AS imp_sen(p0, p1, sen_counter) ORDER BY sen_counter RETURNING t.id
//! ```
//!
//! When the SELECT list is only references (optionally cast with `::`) to the VALUES columns,
//! item k of each VALUES row is bound to the target column of the output that references column
//! k: its parameters and literals are encrypted for that column, and the casts on them and on
//! the output reference are removed (the values are `bytea` now). Any other shape goes through
//! the general analysis, which refuses storing a computed value into an encrypted column.

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, SelectStmt, SetOperation};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::R;
use super::plan::Refusal;
use crate::rules::ColumnRule;

/// What each VALUES column is stored into: `None` plaintext (or unused), else that column.
type Dest = Option<Arc<ColumnRule>>;

/// One output of the SELECT list: the VALUES column it references, and its `::` location.
struct OutRef {
    col: usize,
    cast: Option<i32>,
}

/// The VALUES sub-select in FROM and its column names, when `s` has the form.
fn values_from(s: &SelectStmt) -> Option<(&SelectStmt, String, Vec<String>)> {
    let plain = |s: &SelectStmt| {
        matches!(
            SetOperation::try_from(s.op).unwrap_or(SetOperation::Undefined),
            SetOperation::SetopNone | SetOperation::Undefined
        ) && s.with_clause.is_none()
            && s.where_clause.is_none()
            && s.group_clause.is_empty()
            && s.having_clause.is_none()
            && s.distinct_clause.is_empty()
            && s.window_clause.is_empty()
            && s.into_clause.is_none()
            && s.locking_clause.is_empty()
            && s.limit_count.is_none()
            && s.limit_offset.is_none()
    };
    if !plain(s) || !s.values_lists.is_empty() || s.from_clause.len() != 1 {
        return None;
    }
    let Some(NodeEnum::RangeSubselect(rs)) = s.from_clause[0].node.as_ref() else {
        return None;
    };
    let (Some(q), Some(alias), false) = (rs.subquery.as_deref(), rs.alias.as_ref(), rs.lateral)
    else {
        return None;
    };
    let Some(NodeEnum::SelectStmt(v)) = q.node.as_ref() else {
        return None;
    };
    if !plain(v) || v.values_lists.is_empty() || !v.sort_clause.is_empty() {
        return None;
    }
    let names: Option<Vec<String>> = alias
        .colnames
        .iter()
        .map(|n| sval(n).map(str::to_owned))
        .collect();
    let names = names.filter(|n| !n.is_empty())?;
    Some((v, alias.aliasname.clone(), names))
}

/// The VALUES column a `ColumnRef` (`p0` or `alias.p0`) names.
fn column_index(n: &Node, alias: &str, names: &[String]) -> Option<usize> {
    let Some(NodeEnum::ColumnRef(c)) = n.node.as_ref() else {
        return None;
    };
    let fields: Option<Vec<&str>> = c.fields.iter().map(sval).collect();
    let name = match fields?.as_slice() {
        [col] => *col,
        [rel, col] if *rel == alias => *col,
        _ => return None,
    };
    names.iter().position(|n| n == name)
}

/// An output expression: a column reference, or one under a single cast.
fn out_ref(n: &Node, alias: &str, names: &[String]) -> Option<OutRef> {
    match n.node.as_ref() {
        Some(NodeEnum::TypeCast(tc)) => {
            let col = column_index(tc.arg.as_deref()?, alias, names)?;
            Some(OutRef {
                col,
                cast: Some(tc.location),
            })
        }
        _ => column_index(n, alias, names).map(|col| OutRef { col, cast: None }),
    }
}

impl Analyzer<'_, '_> {
    /// Analyses `s` as an INSERT source over VALUES in FROM, binding values to `targets`.
    /// `None` when `s` does not have the form (the caller analyses it the general way).
    pub(crate) fn insert_from_values(
        &mut self,
        s: &SelectStmt,
        targets: &[Option<Arc<ColumnRule>>],
    ) -> Option<R<()>> {
        let (values, alias, names) = values_from(s)?;
        let outs: Option<Vec<OutRef>> = s
            .target_list
            .iter()
            .map(|t| match t.node.as_ref() {
                Some(NodeEnum::ResTarget(rt)) => out_ref(rt.val.as_deref()?, &alias, &names),
                _ => None,
            })
            .collect();
        let outs = outs.filter(|o| o.len() <= targets.len())?;
        let sorts: Option<Vec<usize>> = s
            .sort_clause
            .iter()
            .map(|n| match n.node.as_ref() {
                Some(NodeEnum::SortBy(sb)) => column_index(sb.node.as_deref()?, &alias, &names),
                _ => None,
            })
            .collect();
        let sorts = sorts?;
        Some(self.bind_values(values, &names, &outs, &sorts, targets))
    }

    fn bind_values(
        &mut self,
        values: &SelectStmt,
        names: &[String],
        outs: &[OutRef],
        sorts: &[usize],
        targets: &[Option<Arc<ColumnRule>>],
    ) -> R<()> {
        let dests = self.dests(names.len(), outs, targets)?;
        for &k in sorts {
            if let Some(rule) = &dests[k] {
                return Err(Refusal::column(rule, "ORDER BY"));
            }
        }
        for row in &values.values_lists {
            let Some(NodeEnum::List(items)) = row.node.as_ref() else {
                continue;
            };
            if items.items.iter().any(super::select::expands) {
                return Err(self.refuse_text("a composite expansion (x).* in VALUES"));
            }
            for (k, item) in items.items.iter().enumerate() {
                let ev = self.expr(item)?;
                match dests.get(k).cloned().flatten() {
                    Some(rule) => self.assign(&rule, ev)?,
                    None => self.plain_use(ev, || "VALUES".to_owned())?,
                }
            }
        }
        Ok(())
    }

    /// Where each VALUES column goes; strips the casts on outputs into encrypted columns.
    fn dests(
        &mut self,
        width: usize,
        outs: &[OutRef],
        targets: &[Option<Arc<ColumnRule>>],
    ) -> R<Vec<Dest>> {
        let mut dests: Vec<Option<Dest>> = vec![None; width];
        for (o, target) in outs.iter().zip(targets) {
            let slot = &mut dests[o.col];
            match (slot.as_ref(), target) {
                (None, t) => *slot = Some(t.clone()),
                (Some(None), None) => {}
                (Some(Some(a)), Some(b)) if a.key == b.key && a.ty == b.ty => {}
                (Some(a), b) => {
                    let rule = a.as_ref().or(b.as_ref()).cloned();
                    let rule = rule.ok_or_else(|| self.refuse_text("VALUES"))?;
                    return Err(Refusal::column(
                        &rule,
                        "one VALUES column stored into columns of different encryption",
                    ));
                }
            }
            if let (Some(rule), Some(loc)) = (target, o.cast) {
                self.strip_ref_cast(loc, rule)?;
            }
        }
        Ok(dests.into_iter().map(Option::flatten).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Analysis, AnalysisContext, EmptyCatalog, Plan, analyze};
    use crate::codec::LogicalType;
    use crate::rules::{ColumnRule, Mode, Rules};

    fn run(sql: &str) -> Analysis {
        let col = |c: &str, ty| ColumnRule {
            schema: "public".into(),
            table: "t".into(),
            column: c.into(),
            ty,
            mode: Mode::Deterministic,
            key: format!("public.t.{c}"),
        };
        let rules = Rules::from_columns(vec![
            col("a", LogicalType::Varchar),
            col("b", LogicalType::Int4),
        ])
        .unwrap();
        let path = vec!["public".to_owned()];
        let ctx = AnalysisContext {
            rules: &rules,
            search_path: &path,
            catalog: &EmptyCatalog,
            qualify: false,
        };
        analyze(sql, &ctx)
    }

    fn plan(sql: &str) -> std::sync::Arc<Plan> {
        match run(sql) {
            Analysis::Rewrite(p) => p,
            other => panic!("expected a rewrite for {sql}, got {other:?}"),
        }
    }

    fn refused(sql: &str) -> String {
        match run(sql) {
            Analysis::Refuse(r) => format!("{} {}", r.column, r.construct),
            other => panic!("expected a refusal for {sql}, got {other:?}"),
        }
    }

    #[test]
    fn sqlalchemy_insertmanyvalues_binds_each_values_column_to_its_target() {
        let sql = "INSERT INTO t (a, b, c) SELECT p0::VARCHAR, p1::INTEGER, p2 FROM \
                   (VALUES ($1::VARCHAR, $2::INTEGER, $3, 0), ($4::VARCHAR, $5::INTEGER, 'x', 1)) \
                   AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING t.id, t.id AS id__1";
        let p = plan(sql);
        let cols: Vec<Option<&str>> = p
            .params
            .iter()
            .map(|r| r.as_ref().map(|r| r.column.as_str()))
            .collect();
        assert_eq!(cols, vec![Some("a"), Some("b"), None, Some("a"), Some("b")]);
        assert_eq!(
            p.rewrite_text(sql, &[]),
            "INSERT INTO t (a, b, c) SELECT p0, p1, p2 FROM \
             (VALUES ($1, $2, $3, 0), ($4, $5, 'x', 1)) \
             AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING t.id, t.id AS id__1"
        );
        // Literals and qualified references work too; the plaintext column keeps its cast.
        let sql = "INSERT INTO t (c, a) SELECT v.y::text, v.x FROM (VALUES ('s', 'k')) AS v(x, y)";
        let p = plan(sql);
        assert_eq!(p.literals.len(), 1);
        assert_eq!(&sql[p.literals[0].start..p.literals[0].end], "'s'");
        assert_eq!(p.literals[0].value.as_deref(), Some("s"));
        assert!(p.ref_casts.is_empty());
    }

    #[test]
    fn anything_else_touching_an_encrypted_column_is_refused() {
        let base = "FROM (VALUES ($1, $2, 0)) AS s(p0, p1, n)";
        let r = refused(&format!(
            "INSERT INTO t (a, b) SELECT p0, p1 {base} ORDER BY p0"
        ));
        assert_eq!(r, "public.t.a ORDER BY");
        // A computed output into an encrypted column (general analysis).
        let r = refused(&format!("INSERT INTO t (a, b) SELECT lower(p0), p1 {base}"));
        assert!(r.starts_with("public.t.a"), "{r}");
        // One VALUES column into an encrypted and a plaintext column.
        let r = refused(&format!("INSERT INTO t (a, c) SELECT p0, p0 {base}"));
        assert!(r.contains("different encryption"), "{r}");
        // CAST(… AS …) on the reference is not stripped: refused.
        let r = refused(&format!("INSERT INTO t (a) SELECT CAST(p0 AS text) {base}"));
        assert!(r.starts_with("public.t.a"), "{r}");
        // A WHERE clause leaves the form: the general analysis binds the VALUES column where
        // it is used (`ColKind::Val`).
        let p = plan(&format!("INSERT INTO t (a) SELECT p0 {base} WHERE n > 0"));
        assert_eq!(p.params[0].as_ref().map(|r| r.column.as_str()), Some("a"));
    }
}
