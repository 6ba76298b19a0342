//! SQL identifiers as PostgreSQL reads them: unquoted names are case-folded to lower case
//! (ASCII only, as in a UTF-8 database) and may hold letters, digits, `_` and `$` (not first);
//! `"Quoted"` names keep their case and may hold anything but NUL (`""` is a literal quote).
//! Names longer than 63 bytes are rejected rather than silently truncated.

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// Why a name is not a valid identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("empty identifier")]
    Empty,
    #[error("unterminated quoted identifier")]
    UnterminatedQuote,
    #[error("zero-length quoted identifier")]
    EmptyQuoted,
    #[error(
        "character {0:?} is not allowed in an unquoted identifier (quote it: \"\\\"Name\\\"\")"
    )]
    BadChar(char),
    #[error("identifier longer than {MAX_IDENT_BYTES} bytes")]
    TooLong,
    #[error("expected {expected} dot-separated name(s), found {found}")]
    Parts {
        expected: &'static str,
        found: usize,
    },
}

/// Parses one identifier that must span all of `s`.
pub fn parse_ident(s: &str) -> Result<String, IdentError> {
    let (name, rest) = next_ident(s)?;
    match rest.chars().next() {
        None => Ok(name),
        Some(c) => Err(IdentError::BadChar(c)),
    }
}

/// Parses `a.b.c` into its folded parts.
pub fn parse_qualified(s: &str) -> Result<Vec<String>, IdentError> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let (name, after) = next_ident(rest)?;
        parts.push(name);
        match after.strip_prefix('.') {
            Some(r) => rest = r,
            None if after.is_empty() => return Ok(parts),
            None => return Err(IdentError::BadChar(after.chars().next().unwrap_or('.'))),
        }
    }
}

/// Reads one identifier from the start of `s`; returns it and what follows.
fn next_ident(s: &str) -> Result<(String, &str), IdentError> {
    let mut chars = s.char_indices();
    let Some((_, first)) = chars.next() else {
        return Err(IdentError::Empty);
    };
    if first == '"' {
        return quoted(&s[1..]);
    }
    if !(first.is_alphabetic() || first == '_') {
        return Err(if first == '.' {
            IdentError::Empty
        } else {
            IdentError::BadChar(first)
        });
    }
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .map_or(s.len(), |(i, _)| i);
    let name = s[..end].to_ascii_lowercase();
    check_len(&name)?;
    Ok((name, &s[end..]))
}

fn quoted(s: &str) -> Result<(String, &str), IdentError> {
    let mut name = String::new();
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        match c {
            '"' if iter.peek().map(|p| p.1) == Some('"') => {
                iter.next();
                name.push('"');
            }
            '"' => {
                if name.is_empty() {
                    return Err(IdentError::EmptyQuoted);
                }
                check_len(&name)?;
                return Ok((name, &s[i + 1..]));
            }
            '\0' => return Err(IdentError::BadChar(c)),
            c => name.push(c),
        }
    }
    Err(IdentError::UnterminatedQuote)
}

fn check_len(name: &str) -> Result<(), IdentError> {
    if name.len() > MAX_IDENT_BYTES {
        Err(IdentError::TooLong)
    } else {
        Ok(())
    }
}

/// Quotes `name` if PostgreSQL would need quotes to read it back unchanged.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_folds_and_quoted_keeps_case() {
        assert_eq!(parse_ident("SSN").unwrap(), "ssn");
        assert_eq!(parse_ident("\"MixedCase\"").unwrap(), "MixedCase");
        assert_eq!(parse_ident("\"a\"\"b\"").unwrap(), "a\"b");
        assert_eq!(parse_ident("x$1_y").unwrap(), "x$1_y");
        assert_eq!(
            parse_qualified("Public.\"Pat.ients\"").unwrap(),
            vec!["public", "Pat.ients"]
        );
        assert_eq!(parse_qualified("patients").unwrap(), vec!["patients"]);
    }

    #[test]
    fn bad_identifiers_are_rejected() {
        assert_eq!(parse_ident(""), Err(IdentError::Empty));
        assert_eq!(parse_ident("1abc"), Err(IdentError::BadChar('1')));
        assert_eq!(parse_ident("my col"), Err(IdentError::BadChar(' ')));
        assert_eq!(parse_ident("\"abc"), Err(IdentError::UnterminatedQuote));
        assert_eq!(parse_ident("\"\""), Err(IdentError::EmptyQuoted));
        assert_eq!(parse_ident(&"a".repeat(64)), Err(IdentError::TooLong));
        assert_eq!(parse_qualified("a..b"), Err(IdentError::Empty));
        assert_eq!(parse_qualified("a."), Err(IdentError::Empty));
    }

    #[test]
    fn quote_round_trips() {
        for name in ["ssn", "MixedCase", "a\"b", "with space", "1x"] {
            assert_eq!(parse_ident(&quote_ident(name)).unwrap(), name);
        }
    }
}
