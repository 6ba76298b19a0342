//! Client → server, extended protocol: Parse texts are analysed and rewritten like Query
//! texts ([`super::frontend`]), parameter types of encrypted parameters become `bytea`, Bind
//! values for them are encrypted and sent as binary, and portals a client executes without
//! describing are described by the proxy (answer swallowed) so their rows can be decrypted.
//! A refused or malformed message is replaced by a raising statement whose error the client
//! gets, after which the server skips to Sync as it would.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::frontend::{Rewritten, Via, is_ddl};
use super::handlers::Outputs;
use super::pipeline::{Expect, Pipeline};
use super::search_path::may_change_path;
use super::state::{Portal, SessionCrypto, Statement};
use crate::apply::arrays::{encrypt_coerced, encrypt_store_array};
use crate::apply::json_records::encrypt_json_records;
use crate::apply::matching::{MatchParams, parse_types};
use crate::apply::refuse::{Refused, raise_extended};
use crate::apply::values::encrypt_array;
use crate::error::{EngineError, SessionError};
use crate::protocol::extended::{Bind, Execute, FORMAT_BINARY, Named, Parse, Target, format_of};
use crate::protocol::{Frame, FrontendTag, PgError};
use crate::rewrite::Plan;

/// True when a Describe already queued will tell the portal's result shape.
fn shape_pending(pipe: &Pipeline, p: &Arc<Portal>) -> bool {
    pipe.iter().any(|e| match e {
        Expect::DescribeStatement(s) => Arc::ptr_eq(s, &p.statement),
        Expect::DescribePortal { portal, .. } => Arc::ptr_eq(portal, p),
        _ => false,
    })
}

impl SessionCrypto {
    /// Sends the raising statement in place of a refused extended-protocol message.
    pub(super) fn refuse_extended(
        &mut self,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
        e: impl Into<PgError>,
    ) {
        let e = e.into();
        tracing::debug!(sqlstate = e.code, "extended-protocol message refused");
        raise_extended(out.to_upstream, &e);
        pipe.push(Expect::Close { swallow: true });
        pipe.push(Expect::Parse { swallow: true });
        pipe.push(Expect::Bind { swallow: true });
        pipe.push(Expect::Execute(None));
    }

    pub(super) fn on_parse(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let Ok(p) = Parse::decode(frame.body()) else {
            return self.malformed(out, pipe, "Parse");
        };
        let ddl = is_ddl(p.query);
        let via = Via::Parse(p.param_types.len());
        let (plan, matching, bytes) = match self.rewrite(p.query, via) {
            Rewritten::Same => (None, MatchParams::default(), frame.bytes().clone()),
            Rewritten::Text(text, plan, mp) => {
                let types = match &plan {
                    Some(plan) => parse_types(&p.param_types, plan, &mp),
                    None => p.param_types.clone(),
                };
                let msg = Parse {
                    name: p.name,
                    query: &text,
                    param_types: types,
                };
                (plan, mp, msg.encode())
            }
            Rewritten::Refused(r) => {
                self.refuse_extended(out, pipe, &r);
                return Ok(());
            }
        };
        // A named statement that exists stays as it is (the server answers 42P05).
        if p.name.is_empty() || !self.statements.contains_key(p.name) {
            let stmt = Statement {
                plan,
                shape: OnceLock::new(),
                ddl,
                declared: p.param_types,
                matching,
                changes_path: may_change_path(p.query),
            };
            self.statements.insert(p.name.to_owned(), Arc::new(stmt));
        }
        out.to_upstream.extend_from_slice(&bytes);
        pipe.push(Expect::Parse { swallow: false });
        self.path.note(p.query);
        Ok(())
    }

    pub(super) fn on_bind(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let Ok(b) = Bind::decode(frame.body()) else {
            return self.malformed(out, pipe, "Bind");
        };
        let Some(stmt) = self.statement(b.statement) else {
            let e = EngineError::UnknownStatement(b.statement.to_owned());
            self.refuse_extended(out, pipe, &e);
            return Ok(());
        };
        let plan = stmt.plan.as_ref().filter(|p| {
            p.params.iter().any(Option::is_some)
                || !p.matches.is_empty()
                || !p.json_params.is_empty()
        });
        let bytes = match plan {
            None => frame.bytes().clone(),
            Some(plan) => match self.encrypt_params(&b, plan, &stmt) {
                Ok(bytes) => bytes,
                Err(r) => {
                    self.refuse_extended(out, pipe, &r);
                    return Ok(());
                }
            },
        };
        let portal = Portal {
            statement: stmt,
            formats: b.result_formats.clone(),
            shape: OnceLock::new(),
        };
        self.portals.insert(b.portal.to_owned(), Arc::new(portal));
        out.to_upstream.extend_from_slice(&bytes);
        pipe.push(Expect::Bind { swallow: false });
        Ok(())
    }

    /// The Bind with every encrypted parameter encrypted and sent as binary `bytea`, and the
    /// extra `bytea[]` parameters of comparisons appended.
    fn encrypt_params(
        &mut self,
        b: &Bind<'_>,
        plan: &Plan,
        stmt: &Statement,
    ) -> Result<Bytes, Refused> {
        let ring = Arc::clone(self.keys.get());
        stmt.matching.check(&ring)?;
        let extras = stmt
            .matching
            .values(&ring, b, |i| stmt.declared(i), &self.text)?;
        let n = b.params.len() + extras.len();
        let mut formats = Vec::with_capacity(n);
        let mut values: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(n);
        for (i, v) in b.params.iter().enumerate() {
            let fmt = format_of(&b.param_formats, i);
            if let (Some(cols), Some(v)) = (plan.json_of(i), v) {
                let d = stmt.declared(i);
                let enc = encrypt_json_records(&ring, cols, v, fmt, d, &self.text);
                formats.push(fmt);
                values.push(Some(Cow::Owned(enc?)));
                continue;
            }
            match (plan.params.get(i).and_then(Option::as_ref), v) {
                (Some(rule), Some(v)) => {
                    let d = stmt.declared(i);
                    let coerce = plan.coerce_of(i);
                    let enc = if plan.is_store_array(i) {
                        encrypt_store_array(&ring, rule, v, fmt, coerce, &self.text)
                    } else if plan.is_array_param(i) {
                        encrypt_array(&ring, rule, v, fmt, &self.text)
                    } else {
                        encrypt_coerced(&ring, rule, v, fmt, d, coerce, &self.text)
                    };
                    let enc = enc?;
                    formats.push(FORMAT_BINARY);
                    values.push(Some(Cow::Owned(enc)));
                }
                (Some(_), None) => {
                    formats.push(FORMAT_BINARY);
                    values.push(None);
                }
                (None, v) => {
                    formats.push(fmt);
                    values.push(v.map(Cow::Borrowed));
                }
            }
        }
        // The client sent what its statement declares; extras follow exactly after them.
        if b.params.len() == stmt.matching.base {
            for e in extras {
                formats.push(FORMAT_BINARY);
                values.push(Some(Cow::Owned(e)));
            }
        }
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        Ok(b.encode_with(&formats, &refs))
    }

    /// A message that does not decode: an ERROR through the server, which then skips to Sync,
    /// as PostgreSQL does with a malformed extended-protocol message.
    pub(super) fn malformed(
        &mut self,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
        kind: &'static str,
    ) -> Result<(), SessionError> {
        self.refuse_extended(out, pipe, &EngineError::Malformed(kind));
        Ok(())
    }

    pub(super) fn on_describe(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let Ok(d) = Named::decode(frame.body()) else {
            return self.malformed(out, pipe, "Describe");
        };
        let e = match d.target {
            Target::Statement => {
                Expect::DescribeStatement(self.statement(d.name).unwrap_or_default())
            }
            Target::Portal => Expect::DescribePortal {
                portal: self.portal_or_unknown(d.name),
                swallow: false,
            },
        };
        pipe.push(e);
        out.to_upstream.extend_from_slice(frame.bytes());
        Ok(())
    }

    fn portal_or_unknown(&self, name: &str) -> Arc<Portal> {
        self.portals.get(name).cloned().unwrap_or_else(|| {
            Arc::new(Portal {
                statement: Arc::default(),
                formats: Vec::new(),
                shape: OnceLock::new(),
            })
        })
    }

    pub(super) fn on_execute(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let Ok(e) = Execute::decode(frame.body()) else {
            return self.malformed(out, pipe, "Execute");
        };
        let portal = self.portals.get(e.portal).cloned();
        if let Some(p) = &portal {
            if p.shape().is_none() && !shape_pending(pipe, p) {
                // The client never asked: ask for it ourselves (answer swallowed).
                let d = Named {
                    target: Target::Portal,
                    name: e.portal,
                };
                out.to_upstream
                    .extend_from_slice(&d.encode(FrontendTag::Describe.into()));
                pipe.push(Expect::DescribePortal {
                    portal: p.clone(),
                    swallow: true,
                });
            }
        }
        if portal.as_ref().is_some_and(|p| p.statement.changes_path) {
            self.path.stale();
        }
        pipe.push(Expect::Execute(portal));
        out.to_upstream.extend_from_slice(frame.bytes());
        Ok(())
    }

    pub(super) fn on_close(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let Ok(c) = Named::decode(frame.body()) else {
            return self.malformed(out, pipe, "Close");
        };
        match c.target {
            Target::Statement => self.statements.remove(c.name),
            Target::Portal => self.portals.remove(c.name).map(|_| Arc::default()),
        };
        pipe.push(Expect::Close { swallow: false });
        out.to_upstream.extend_from_slice(frame.bytes());
        Ok(())
    }
}
