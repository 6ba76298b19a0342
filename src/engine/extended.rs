//! Client → server, extended protocol: Parse texts are analysed like Query texts
//! ([`super::frontend`]) and their plans applied to Parse and Bind ([`crate::apply::plan`]:
//! parameter types of encrypted parameters become `bytea`, Bind values for them are encrypted
//! and sent as binary); portals a client executes without describing are described by the
//! proxy (answer swallowed) so their rows can be decrypted. A refused or malformed message is
//! replaced by a raising statement whose error the client gets, after which the server skips
//! to Sync as it would.

use std::sync::{Arc, OnceLock};

use super::frontend::{Decision, applied, is_ddl};
use super::handlers::Outputs;
use super::pipeline::{Expect, Pipeline};
use super::search_path::may_change_path;
use super::state::{Portal, SessionCrypto, Statement};
use crate::apply::matching::MatchParams;
use crate::apply::refuse::raise_extended;
use crate::error::{EngineError, SessionError};
use crate::protocol::extended::{Bind, Execute, Named, Parse, Target};
use crate::protocol::{Frame, FrontendTag, PgError};

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
        let (plan, matching, bytes) = match self.decide(p.query) {
            Decision::Same => (None, MatchParams::default(), frame.bytes().clone()),
            Decision::Apply(plan) => {
                let ring = Arc::clone(self.keys.get());
                let r = plan.apply_parse(&ring, p.query, &p.param_types, &self.text);
                match applied(p.query, r) {
                    Ok(a) => {
                        let msg = Parse {
                            name: p.name,
                            query: &a.text,
                            param_types: a.param_types,
                        };
                        (Some(plan), a.matching, msg.encode())
                    }
                    Err(r) => {
                        self.refuse_extended(out, pipe, &r);
                        return Ok(());
                    }
                }
            }
            Decision::Refuse(r) => {
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
        let plan = stmt.plan.as_ref().filter(|p| p.rewrites_bind());
        let bytes = match plan {
            None => frame.bytes().clone(),
            Some(plan) => {
                let ring = Arc::clone(self.keys.get());
                match plan.apply_bind(&ring, &b, &stmt.declared, &stmt.matching, &self.text) {
                    Ok(bytes) => bytes,
                    Err(r) => {
                        self.refuse_extended(out, pipe, &r);
                        return Ok(());
                    }
                }
            }
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
        if let Some(p) = &portal
            && p.shape().is_none()
            && !shape_pending(pipe, p)
        {
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
