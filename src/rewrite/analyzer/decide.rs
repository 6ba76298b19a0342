//! The decisions every construct shares: a plaintext use, `ANY`, assigning to a column and
//! comparing two operands.

use std::sync::Arc;

use super::Analyzer;
use crate::rewrite::bind::{Bind, Ev, R, Site, is_array_bind, is_sealed};
use crate::rewrite::plan::Refusal;
use crate::rules::{ColumnRule, Mode};

impl<'a, 'c> Analyzer<'a, 'c> {
    /// Uses `ev` where no encrypted column may appear; `construct` names the use for a refusal.
    pub(crate) fn plain_use(&mut self, ev: Ev, construct: impl FnOnce() -> String) -> R<()> {
        match ev {
            Ev::Enc { rule, .. } => Err(Refusal::column(&rule, construct())),
            Ev::Val(binds) => {
                for b in binds {
                    match b {
                        Bind::Param { number, .. } => self.use_param(number, None)?,
                        Bind::Lit { site, .. } if is_sealed(&site) => {
                            self.sealed_use(&site, None)?;
                        }
                        Bind::Array { loc, .. } => {
                            self.sealed_use(
                                &Site {
                                    loc,
                                    wraps: Vec::new(),
                                },
                                None,
                            )?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Ev::Plain => Ok(()),
        }
    }

    /// Uses `ev` where an encrypted column may appear as is (a result column, IS NULL, …).
    pub(crate) fn any_use(&mut self, ev: Ev) -> R<()> {
        match ev {
            Ev::Enc { .. } => Ok(()),
            other => self.plain_use(other, String::new),
        }
    }

    /// Stores `ev` into `target`'s column (INSERT, UPDATE SET, ON CONFLICT).
    pub(crate) fn assign(&mut self, target: &Arc<ColumnRule>, ev: Ev) -> R<()> {
        match ev {
            Ev::Val(binds) => self.bind(binds, target),
            Ev::Enc { rule, .. } if rule.key == target.key => Ok(()),
            Ev::Enc { rule, .. } => Err(Refusal::column(
                target,
                format!(
                    "copying from encrypted column {} (a different key)",
                    rule.qualified()
                ),
            )),
            Ev::Plain => Err(Refusal::column(
                target,
                "storing a computed or plaintext expression",
            )),
        }
    }

    /// An equality-like comparison (`=`, `<>`, `IN`, `IS [NOT] DISTINCT FROM`).
    pub(crate) fn compare(&mut self, l: Ev, r: Ev, op: &str) -> R<()> {
        let det = |rule: &Arc<ColumnRule>| {
            if rule.mode == Mode::Deterministic {
                Ok(())
            } else {
                Err(Refusal::column(
                    rule,
                    format!("{op} (randomized encryption)"),
                ))
            }
        };
        match (l, r) {
            (Ev::Enc { rule: a, .. }, Ev::Enc { rule: b, .. }) => {
                det(&a)?;
                det(&b)?;
                if a.key != b.key {
                    return Err(Refusal::column(
                        &a,
                        format!("{op} with column {} (a different key)", b.qualified()),
                    ));
                }
                Ok(())
            }
            (Ev::Enc { rule, .. }, Ev::Val(binds)) | (Ev::Val(binds), Ev::Enc { rule, .. }) => {
                det(&rule)?;
                if binds.iter().any(is_array_bind) {
                    return Err(Refusal::column(
                        &rule,
                        format!("{op} with the elements of an unnested array (use = ANY($n))"),
                    ));
                }
                self.bind(binds, &rule)
            }
            (Ev::Enc { rule, .. }, Ev::Plain) | (Ev::Plain, Ev::Enc { rule, .. }) => {
                Err(Refusal::column(
                    &rule,
                    format!("{op} with a computed or plaintext expression"),
                ))
            }
            (l, r) => {
                self.plain_use(l, String::new)?;
                self.plain_use(r, String::new)
            }
        }
    }
}
