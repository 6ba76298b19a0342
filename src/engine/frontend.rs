//! Client → server: Query and Parse texts are analysed (plan cache); literals bound for
//! encrypted columns are replaced by encrypted `bytea` literals, parameter types of encrypted
//! parameters become `bytea`, and Bind values for them are encrypted and sent as binary.
//! Refusals (and values the codec rejects) are delivered through the server
//! ([`crate::apply::refuse`]). Every message that owes a response is recorded in the session's
//! FIFO ([`super::pipeline`]). This file has the dispatch, the simple Query and its analysis;
//! the extended protocol's messages are [`super::extended`]'s.

use std::collections::VecDeque;
use std::sync::Arc;

use super::handlers::Outputs;
use super::pipeline::{Expect, Pipeline};
use super::search_path::may_change_path;
use super::state::SessionCrypto;
use crate::apply::refuse::Refused;
use crate::apply::refuse::raise_query;
use crate::error::EngineError;
use crate::error::SessionError;
use crate::protocol::PgError;
use crate::protocol::extended::{decode_query, query};
use crate::protocol::{Frame, FrontendTag};
use crate::rewrite::{self, Analysis, AnalysisContext, CatalogView, Plan, Refusal};

fn contains_ci(hay: &str, needle: &str) -> bool {
    rewrite::contains_ci(hay.as_bytes(), needle.as_bytes())
}

/// DDL (catalog refresh afterwards); a cheap word check first, the scanner only then.
pub(super) fn is_ddl(sql: &str) -> bool {
    (contains_ci(sql, "create") || contains_ci(sql, "alter") || contains_ci(sql, "drop"))
        && rewrite::is_ddl(sql)
}

/// A multi-statement text that may change the search_path: the statements after the change
/// would be analysed against the old path.
fn changes_path_midway(sql: &str) -> bool {
    may_change_path(sql) && pg_query::split_with_scanner(sql).map_or(true, |stmts| stmts.len() > 1)
}

/// A Query body in a client_encoding other than UTF8, as text with every non-UTF-8 byte
/// replaced (None when it is not one NUL-terminated string).
fn lossy_query(body: &[u8]) -> Option<String> {
    let text = body.strip_suffix(&[0])?;
    (!text.contains(&0)).then(|| String::from_utf8_lossy(text).into_owned())
}

/// The analysis of every text the pre-screen passes: shared, so a plain statement costs no
/// allocation.
static PASSTHROUGH: std::sync::LazyLock<Arc<Analysis>> =
    std::sync::LazyLock::new(|| Arc::new(Analysis::Passthrough));

/// What the analysis of a text decided.
pub(super) enum Decision {
    /// Forward it as it came.
    Same,
    /// Apply this plan to it ([`crate::apply::plan`]).
    Apply(Arc<Plan>),
    /// Refuse it (through the server).
    Refuse(Refused),
}

/// A plan's application to `sql`; one that failed on a value is counted as refused.
pub(super) fn applied<T>(sql: &str, r: Result<T, Refused>) -> Result<T, Refused> {
    if let Err(refused) = &r {
        let code = PgError::from(refused).code;
        crate::net::metrics::observe::refused(sql, code, "-", "a value pgcloak cannot encrypt");
    }
    r
}

impl SessionCrypto {
    /// A message from the client (Terminate and authentication messages never get here).
    pub(super) fn frontend(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        if self.results.take_abort() {
            let e = PgError::from(&EngineError::AbortedAfterDecryptFailure);
            out.to_upstream.extend_from_slice(&raise_query(&e));
            pipe.push(Expect::Injected);
        }
        match FrontendTag::from(frame.tag()) {
            FrontendTag::Query => return self.on_query(&frame, out, pipe),
            FrontendTag::Parse => return self.on_parse(&frame, out, pipe),
            FrontendTag::Bind => return self.on_bind(&frame, out, pipe),
            FrontendTag::Describe => return self.on_describe(&frame, out, pipe),
            FrontendTag::Execute => return self.on_execute(&frame, out, pipe),
            FrontendTag::Close => return self.on_close(&frame, out, pipe),
            FrontendTag::FunctionCall => return self.on_function_call(&frame, out, pipe),
            FrontendTag::Sync => pipe.push(Expect::Sync),
            FrontendTag::CopyData | FrontendTag::CopyDone | FrontendTag::CopyFail => {
                self.client_copy(&frame, out, pipe);
                return Ok(());
            }
            _ => {}
        }
        out.to_upstream.extend_from_slice(frame.bytes());
        Ok(())
    }

    fn analyze(&mut self, sql: &str) -> Arc<Analysis> {
        if !rewrite::may_touch_rules(sql, &self.enc.rules)
            && !rewrite::mentions_any(sql, self.catalog.get().derived_names())
        {
            return Arc::clone(&PASSTHROUGH);
        }
        if !self.text.is_utf8() {
            return Arc::new(Analysis::Refuse(Refusal::table(
                "(any rules table)",
                "a statement in a session whose client_encoding is not UTF8 (pgcloak reads \
                 values as UTF-8; SET client_encoding = 'UTF8')",
            )));
        }
        if let Some(refusal) = self.setting_refusal(sql) {
            return Arc::new(Analysis::Refuse(refusal));
        }
        let names_table = rewrite::mentions_any(sql, self.enc.rules.table_names());
        if names_table && (!self.path.known() || changes_path_midway(sql)) {
            return Arc::new(Analysis::Refuse(Refusal::table(
                "(any rules table)",
                "a statement that may change the search_path, or one pipelined behind such a \
                 change, in the same request as a statement naming a rules table",
            )));
        }
        let (catalog, generation) = self.catalog.get_with_generation();
        let catalog = Arc::clone(catalog);
        // Pending columns (still plaintext in the database) are served as plain columns.
        let rules = catalog.serving_rules().unwrap_or(&self.enc.rules);
        let ctx = AnalysisContext {
            rules,
            search_path: self.path.search_path(),
            catalog: &*catalog,
            qualify: true,
        };
        self.enc.plans.get_or_analyze_at(sql, &ctx, generation)
    }

    /// A session setting that changes how the server reads this statement or renders its
    /// values, in a way the analysis and the codecs do not follow: the statement is refused.
    fn setting_refusal(&self, sql: &str) -> Option<Refusal> {
        if !self.text.standard_strings() {
            return Some(Refusal::table(
                "(any rules table)",
                "a statement while standard_conforming_strings is off (the server would read \
                 backslashes in its strings differently from pgcloak; SET \
                 standard_conforming_strings = on)",
            ));
        }
        if self.text.iso_dates() {
            return None;
        }
        let lower = sql.to_ascii_lowercase();
        let dated = self.enc.rules.tables().find(|t| {
            lower.contains(&t.table)
                && t.columns.iter().any(|c| {
                    use crate::codec::LogicalType as L;
                    matches!(c.ty, L::Date | L::Time | L::Timestamp | L::Timestamptz)
                })
        })?;
        Some(Refusal::table(
            format!("{}.{}", dated.schema, dated.table),
            "a statement while DateStyle is not ISO (pgcloak reads and writes its encrypted \
             dates and times in ISO format only; SET DateStyle = 'ISO')",
        ))
    }

    /// Analyses `sql`: forward it, apply a plan to it (literals encrypted, casts on encrypted
    /// parameters removed, comparisons on deterministic columns made to match every key
    /// version), or refuse it.
    pub(super) fn decide(&mut self, sql: &str) -> Decision {
        let analysis = self.analyze(sql);
        crate::net::metrics::observe::statement(sql, &analysis);
        if contains_ci(sql, "prepare") {
            let plain = matches!(*analysis, Analysis::Passthrough);
            for name in rewrite::prepared_names(sql) {
                // A name prepared again (the server may have kept the first) is never plain.
                self.sql_prepared
                    .entry(name)
                    .and_modify(|p| *p = false)
                    .or_insert(plain);
            }
        }
        match &*analysis {
            Analysis::Passthrough => Decision::Same,
            Analysis::Refuse(r)
                if r.prepared
                    .as_ref()
                    .is_some_and(|n| self.sql_prepared.get(n) == Some(&true)) =>
            {
                Decision::Same
            }
            Analysis::Refuse(r) => {
                crate::net::metrics::observe::refusal(sql, r);
                Decision::Refuse(Refused::Statement(r.clone()))
            }
            Analysis::Rewrite(plan) => Decision::Apply(plan.clone()),
        }
    }

    /// A FunctionCall message (the fast-path interface: large objects, …). One that calls a
    /// function which may write a rules table is refused; any other may have called
    /// `set_config`, so the search_path is read again after it.
    fn on_function_call(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let oid = frame
            .body()
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| {
                SessionError::Protocol("a FunctionCall message without a function OID".into())
            })?;
        if self.catalog.get().writer_oid(oid) {
            let e = PgError::from(&EngineError::FunctionCall);
            tracing::debug!(sqlstate = e.code, "function call refused");
            out.to_upstream.extend_from_slice(&raise_query(&e));
            pipe.push(Expect::query());
            return Ok(());
        }
        out.to_upstream.extend_from_slice(frame.bytes());
        pipe.push(Expect::FunctionCall);
        self.path.stale();
        Ok(())
    }

    fn on_query(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let lossy;
        let sql = match decode_query(frame.body()) {
            Ok(sql) => sql,
            // Another client_encoding: analysed as far as its ASCII goes (which is where a
            // rules table's name would be), and forwarded as it came when it names none.
            Err(_) if !self.text.is_utf8() && lossy_query(frame.body()).is_some() => {
                lossy = lossy_query(frame.body()).unwrap_or_default();
                lossy.as_str()
            }
            // PostgreSQL answers a malformed message with an ERROR; the session goes on.
            Err(_) => {
                let e = PgError::from(&EngineError::Malformed("Query"));
                out.to_upstream.extend_from_slice(&raise_query(&e));
                pipe.push(Expect::query());
                return Ok(());
            }
        };
        let ddl = is_ddl(sql);
        if contains_ci(sql, "deallocate") {
            self.forget_deallocated(sql);
        }
        let mut copies = VecDeque::new();
        let sent = match self.decide(sql) {
            Decision::Same => Ok(None),
            Decision::Apply(plan) => {
                let ring = Arc::clone(self.keys.get());
                applied(sql, plan.apply_query(&ring, sql, &self.text)).map(|text| {
                    copies.extend(plan.copies.iter().cloned());
                    Some(text)
                })
            }
            Decision::Refuse(r) => Err(r),
        };
        match sent {
            Ok(None) => out.to_upstream.extend_from_slice(frame.bytes()),
            Ok(Some(text)) => out.to_upstream.extend_from_slice(&query(&text)),
            Err(r) => {
                let e = PgError::from(&r);
                tracing::debug!(sqlstate = e.code, "statement refused");
                out.to_upstream.extend_from_slice(&raise_query(&e));
            }
        }
        pipe.push(Expect::Query { ddl, copies });
        self.path.note(sql);
        Ok(())
    }

    /// SQL-level DEALLOCATE: forget the statements it may name, so a later Bind to them is
    /// refused rather than bound with a stale plan.
    /// The names come from the parse tree (`DEALLOCATE _pg3_10` forgets `_pg3_10` only); a text
    /// that does not parse forgets every named statement.
    fn forget_deallocated(&mut self, sql: &str) {
        use pg_query::NodeEnum;
        let Ok(tree) = pg_query::parse(sql, 0) else {
            self.statements.retain(|name, _| name.is_empty());
            return;
        };
        for s in &tree.protobuf.stmts {
            if let Some(NodeEnum::DeallocateStmt(d)) = s.stmt.as_ref().and_then(|n| n.node.as_ref())
            {
                if d.isall || d.name.is_empty() {
                    self.statements.retain(|name, _| name.is_empty());
                } else {
                    self.statements.retain(|name, _| *name != d.name);
                }
            }
        }
    }
}
