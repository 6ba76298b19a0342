//! Parameters (`$n`): how each is used (plain, encrypted for a column, an array or JSON of
//! its values), checked to be used one way only, and the casts the server must see.

use std::sync::Arc;

use super::{Analyzer, MAX_PARAM, ParamUse};
use crate::rewrite::bind::{Bind, Ev, R, Site, Wrap};
use crate::rewrite::plan::{ParamCast, Refusal};
use crate::rules::ColumnRule;

impl<'a, 'c> Analyzer<'a, 'c> {
    /// Records one use of a `VALUES`-column literal (`key`: the key it is encrypted under, None:
    /// plaintext). False when it was already used otherwise; true for a first use (record it)
    /// — the caller skips a repeated, identical encrypted use.
    pub(crate) fn sealed_use(&mut self, site: &Site, key: Option<&ColumnRule>) -> R<bool> {
        let want = key.map(|r| format!("{}|{:?}|{:?}", r.key, r.mode, r.ty));
        match self.sealed_uses.get(&site.loc) {
            None => {
                self.sealed_uses.insert(site.loc, want);
                Ok(true)
            }
            Some(had) if *had == want => Ok(false),
            Some(_) => Err(self.refuse_text(
                "a column of a VALUES list used both for an encrypted column and otherwise (or \
                 for two columns with different keys)",
            )),
        }
    }

    /// A `$n` reference, checked for range.
    pub(crate) fn param(&self, number: i32, loc: i32) -> R<Ev> {
        let n = usize::try_from(number).unwrap_or(0);
        if n == 0 || n > MAX_PARAM {
            return Err(self.refuse_text("a parameter number out of range"));
        }
        Ok(Ev::Val(vec![Bind::Param {
            number: n,
            site: Site {
                loc,
                wraps: Vec::new(),
            },
        }]))
    }

    pub(super) fn use_param(&mut self, n: usize, rule: Option<&Arc<ColumnRule>>) -> R<()> {
        let want = match rule {
            None => ParamUse::Plain,
            Some(r) => ParamUse::Enc(r.clone()),
        };
        self.use_param_as(n, want)
    }

    /// Records `$n` as JSON records of a rules table with `columns` encrypted (see
    /// `json_record`); any other use of it is refused.
    pub(crate) fn use_json_param(
        &mut self,
        n: usize,
        columns: Arc<[Arc<ColumnRule>]>,
        rule: &ColumnRule,
    ) -> R<()> {
        if n > MAX_PARAM {
            return Err(self.refuse_text("a parameter number out of range"));
        }
        if self.params.len() < n {
            self.params.resize(n, ParamUse::Unused);
        }
        match &self.params[n - 1] {
            ParamUse::Unused => {
                self.params[n - 1] = ParamUse::Json(columns);
                Ok(())
            }
            _ => Err(Refusal::column(
                rule,
                format!("parameter ${n} used both as JSON records and elsewhere"),
            )),
        }
    }

    /// Records `$n` as an array of `rule`'s values (`col = ANY($n)`).
    pub(crate) fn use_array_param(&mut self, n: usize, rule: &Arc<ColumnRule>) -> R<()> {
        self.use_param_as(n, ParamUse::EncArray(rule.clone()))
    }

    pub(super) fn use_param_as(&mut self, n: usize, want: ParamUse) -> R<()> {
        if self.params.len() < n {
            self.params.resize(n, ParamUse::Unused);
        }
        let slot = &mut self.params[n - 1];
        if let ParamUse::Json(cols) = &*slot
            && let Some(r) = cols.first()
        {
            return Err(Refusal::column(
                r,
                format!("parameter ${n} used both as JSON records and elsewhere"),
            ));
        }
        let same = |a: &ColumnRule, b: &ColumnRule| a.key == b.key && a.ty == b.ty;
        let conflict = match (&*slot, &want) {
            (ParamUse::Unused, _) => {
                *slot = want;
                return Ok(());
            }
            (ParamUse::Plain, ParamUse::Plain) => return Ok(()),
            (ParamUse::Enc(a), ParamUse::Enc(b))
            | (ParamUse::EncArray(a), ParamUse::EncArray(b))
            | (ParamUse::StoreArray(a), ParamUse::StoreArray(b))
                if same(a, b) =>
            {
                return Ok(());
            }
            (ParamUse::Enc(a) | ParamUse::EncArray(a) | ParamUse::StoreArray(a), _) => a.clone(),
            (_, ParamUse::Enc(a) | ParamUse::EncArray(a) | ParamUse::StoreArray(a)) => a.clone(),
            _ => return Ok(()),
        };
        Err(Refusal::column(
            &conflict,
            format!("parameter ${n} used both for this column and elsewhere"),
        ))
    }

    /// Records a cast written on parameter `number` (the range of `site` with its wraps), to be
    /// replaced by plain `$n` since the parameter's type changes.
    pub(crate) fn param_cast(&mut self, number: usize, site: &Site, rule: &ColumnRule) -> R<()> {
        if site
            .wraps
            .iter()
            .any(|w| matches!(w, Wrap::Cast { .. } | Wrap::Sign(_)))
        {
            let (start, end) = self.range(site, rule)?;
            // A `VALUES` column used twice records its parameter's cast once.
            if self.casts.iter().any(|c| c.start == start && c.end == end) {
                return Ok(());
            }
            self.casts.push(ParamCast { start, end, number });
        }
        Ok(())
    }
}
