//! Byte ranges of value expressions, from the scanner's tokens around parse-tree locations.
//!
//! The parse tree gives only start locations; the scanner (`pg_query::scan`) gives each token's
//! start and end. A literal's range is its constant token (plus a leading sign, or a following
//! `UESCAPE '…'`); a cast's range runs to the end of its type name (`::timestamp with time
//! zone`, `::varchar(10)`, `::int[]`) or to the closing parenthesis of `CAST(… AS …)`.

use pg_query::protobuf::{KeywordKind, ScanToken, Token};

/// The scanned tokens of one SQL text, sorted by start.
pub(crate) struct Tokens {
    toks: Vec<ScanToken>,
}

fn kind(t: &ScanToken) -> Token {
    Token::try_from(t.token).unwrap_or(Token::Nul)
}

fn keyword(t: &ScanToken) -> KeywordKind {
    KeywordKind::try_from(t.keyword_kind).unwrap_or(KeywordKind::NoKeyword)
}

impl Tokens {
    /// Scans `sql`; None when the scanner fails (the caller refuses).
    pub(crate) fn scan(sql: &str) -> Option<Self> {
        let toks = pg_query::scan(sql).ok()?.tokens;
        let toks = toks
            .into_iter()
            .filter(|t| !matches!(kind(t), Token::SqlComment | Token::CComment))
            .collect();
        Some(Self { toks })
    }

    fn index_at(&self, loc: i32) -> Option<usize> {
        self.toks.binary_search_by_key(&loc, |t| t.start).ok()
    }

    fn get(&self, i: usize) -> Option<&ScanToken> {
        self.toks.get(i)
    }

    /// The token kind at byte `loc`, if a token starts there.
    pub(crate) fn kind_at(&self, loc: i32) -> Option<Token> {
        self.index_at(loc).and_then(|i| self.get(i)).map(kind)
    }

    /// Range of the constant starting at `loc` (an `A_Const` location).
    pub(crate) fn constant(&self, loc: i32) -> Option<(usize, usize)> {
        let i = self.index_at(loc)?;
        let t = self.get(i)?;
        let end = match kind(t) {
            // A sign the parser folded into the constant: `-5`, and also `- -5`, `-(-5)`,
            // `+(-(5))` — the whole run of signs and parentheses up to the constant.
            Token::Ascii45 | Token::Ascii43 => self.signed_end(i + 1)?,
            Token::Usconst => match self.get(i + 1) {
                Some(n) if kind(n) == Token::Uescape => self.get(i + 2)?.end,
                _ => t.end,
            },
            _ => t.end,
        };
        Some((usize::try_from(t.start).ok()?, usize::try_from(end).ok()?))
    }

    /// End of what the sign at `loc` applies to, when that is a parenthesised group or a
    /// numeric constant (`+(-(3))`: PostgreSQL folds `-` into the constant, not `+`).
    pub(crate) fn sign_end(&self, loc: i32) -> Option<usize> {
        let i = self.index_at(loc)?;
        usize::try_from(self.signed_end(i + 1)?).ok()
    }

    /// End of the constant at token `i` after a folded sign: more signs, a parenthesised
    /// group, or the numeric constant itself.
    fn signed_end(&self, mut i: usize) -> Option<i32> {
        loop {
            let t = self.get(i)?;
            match kind(t) {
                Token::Ascii45 | Token::Ascii43 => i += 1,
                Token::Ascii40 => return i32::try_from(self.paren_end(i)?).ok(),
                Token::Iconst | Token::Fconst => return Some(t.end),
                _ => return None,
            }
        }
    }

    /// The escape character of a `U&'…'` constant at `loc` (default `\`), when it is one.
    pub(crate) fn unicode_escape(&self, sql: &str, loc: i32) -> Option<Option<char>> {
        let i = self.index_at(loc)?;
        let t = self.get(i)?;
        if kind(t) != Token::Usconst {
            return Some(None);
        }
        match self.get(i + 1) {
            Some(n) if kind(n) == Token::Uescape => {
                let s = self.get(i + 2)?;
                let text = sql.get(usize::try_from(s.start).ok()?..usize::try_from(s.end).ok()?)?;
                let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
                let mut chars = inner.chars();
                let c = chars.next()?;
                chars.next().is_none().then_some(Some(c))
            }
            _ => Some(Some('\\')),
        }
    }

    /// The highest `$n` in the text (0 when none).
    pub(crate) fn max_param(&self, sql: &str) -> usize {
        self.toks
            .iter()
            .filter(|t| kind(t) == Token::Param)
            .filter_map(|t| {
                let text = sql.get(usize::try_from(t.start).ok()?..usize::try_from(t.end).ok()?)?;
                text.strip_prefix('$')?.parse::<usize>().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// Range of the (possibly qualified) column reference starting at `loc`: `col`, `t.col`,
    /// `"S"."T"."c"`.
    pub(crate) fn column_ref(&self, loc: i32) -> Option<(usize, usize)> {
        let mut i = self.index_at(loc)?;
        let first = self.get(i)?;
        if !is_name(first) {
            return None;
        }
        let mut end = first.end;
        while let (Some(dot), Some(name)) = (self.get(i + 1), self.get(i + 2)) {
            if kind(dot) != Token::Ascii46 || !is_name(name) {
                break;
            }
            end = name.end;
            i += 2;
        }
        Some((
            usize::try_from(first.start).ok()?,
            usize::try_from(end).ok()?,
        ))
    }

    /// Widens `(start, end)` over parentheses that enclose exactly it: `(($1))` → the whole.
    pub(crate) fn widen_parens(&self, mut start: usize, mut end: usize) -> (usize, usize) {
        loop {
            let before = self.index_at(i32::try_from(start).unwrap_or(-1));
            let after = self
                .toks
                .partition_point(|t| usize::try_from(t.start).unwrap_or(0) < end);
            let (Some(b), Some(a)) = (before.and_then(|b| b.checked_sub(1)), self.get(after))
            else {
                return (start, end);
            };
            let (Some(open), Ok(a_end)) = (self.get(b), usize::try_from(a.end)) else {
                return (start, end);
            };
            if kind(open) != Token::Ascii40 || kind(a) != Token::Ascii41 {
                return (start, end);
            }
            // The pair must match each other, not close an outer group: nothing but the
            // range lies between them.
            if self.paren_end(b) != Some(a_end) {
                return (start, end);
            }
            start = usize::try_from(open.start).unwrap_or(start);
            end = a_end;
        }
    }

    /// End of the parenthesised list that follows the `IN` (or `NOT IN`) at `loc`.
    pub(crate) fn in_list_end(&self, loc: i32) -> Option<usize> {
        let mut i = self.index_at(loc)?;
        if matches!(kind(self.get(i)?), Token::Not | Token::NotLa) {
            i += 1;
        }
        if kind(self.get(i)?) != Token::InP {
            return None;
        }
        self.paren_end(i + 1)
    }

    /// End of a `x::type` cast whose `::` token starts at `loc`; or of `CAST(x AS type)` whose
    /// `CAST` keyword starts at `loc`.
    pub(crate) fn cast_end(&self, loc: i32) -> Option<usize> {
        let i = self.index_at(loc)?;
        match kind(self.get(i)?) {
            Token::Typecast => self.type_name_end(i + 1),
            Token::Cast => self.paren_end(i + 1),
            _ => None,
        }
    }

    /// End of the balanced parenthesis group opening at token `i`.
    fn paren_end(&self, i: usize) -> Option<usize> {
        if kind(self.get(i)?) != Token::Ascii40 {
            return None;
        }
        let mut depth = 0usize;
        for t in self.toks.get(i..)? {
            match kind(t) {
                Token::Ascii40 => depth += 1,
                Token::Ascii41 => {
                    depth -= 1;
                    if depth == 0 {
                        return usize::try_from(t.end).ok();
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// End of the type name whose first token is `i`.
    fn type_name_end(&self, mut i: usize) -> Option<usize> {
        let mut end = None;
        let mut prev_time = false;
        while let Some(t) = self.get(i) {
            let k = kind(t);
            if prev_time && matches!(k, Token::With | Token::Without) {
                // `timestamp with time zone`: three tokens
                let z = self.get(i + 2)?;
                end = usize::try_from(z.end).ok();
                i += 3;
                prev_time = false;
                continue;
            }
            let name_part = match k {
                Token::Ident | Token::Uident => true,
                Token::Ascii46 => true,
                Token::Ascii40 | Token::Ascii91 => {
                    let close = if k == Token::Ascii40 {
                        Token::Ascii41
                    } else {
                        Token::Ascii93
                    };
                    let j = self.toks.get(i..)?.iter().position(|t| kind(t) == close)? + i;
                    end = usize::try_from(self.get(j)?.end).ok();
                    i = j + 1;
                    continue;
                }
                _ => {
                    keyword(t) != KeywordKind::ReservedKeyword
                        && !is_follower(k)
                        && keyword(t) != KeywordKind::NoKeyword
                }
            };
            if !name_part {
                break;
            }
            prev_time = matches!(k, Token::Time | Token::Timestamp);
            end = usize::try_from(t.end).ok();
            i += 1;
        }
        end
    }
}

/// A token that can be (part of) a column name: an identifier or any keyword.
fn is_name(t: &ScanToken) -> bool {
    matches!(kind(t), Token::Ident | Token::Uident) || keyword(t) != KeywordKind::NoKeyword
}

/// Non-reserved keywords that can follow an expression, so never continue a type name.
fn is_follower(k: Token) -> bool {
    matches!(
        k,
        Token::Between
            | Token::Like
            | Token::Ilike
            | Token::Similar
            | Token::At
            | Token::Isnull
            | Token::Notnull
            | Token::Overlaps
            | Token::Is
            | Token::Escape
    )
}

/// Decodes the body of a `U&'…'` constant (as pg_query leaves it) with escape character `esc`.
pub(crate) fn decode_unicode(raw: &str, esc: char) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != esc {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&esc) {
            chars.next();
            out.push(esc);
            continue;
        }
        let digits = if chars.peek() == Some(&'+') {
            chars.next();
            6
        } else {
            4
        };
        let hex: String = (0..digits).filter_map(|_| chars.next()).collect();
        if hex.len() != digits {
            return None;
        }
        let code = u32::from_str_radix(&hex, 16).ok()?;
        out.push(char::from_u32(code)?);
    }
    Some(out)
}
