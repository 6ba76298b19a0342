//! Parsing of the four SCRAM messages (RFC 5802 §7) in PostgreSQL's flavour.
//!
//! Parsers borrow from the input and never allocate; they reject anything the grammar does not
//! allow (bad attribute order, non-printable nonces, mandatory extensions).

use super::AuthError;

/// The GS2 channel-binding flag of a client-first-message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CbindFlag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    Yes,
    /// `p=tls-server-end-point`: the client uses channel binding.
    TlsServerEndPoint,
}

/// The GS2 header for a flag, as sent at the start of client-first and inside `c=`.
pub(crate) fn gs2_header(flag: CbindFlag) -> &'static str {
    match flag {
        CbindFlag::No => "n,,",
        CbindFlag::Yes => "y,,",
        CbindFlag::TlsServerEndPoint => "p=tls-server-end-point,,",
    }
}

pub(crate) struct ClientFirst<'a> {
    pub flag: CbindFlag,
    /// The GS2 header exactly as sent, including its trailing comma.
    pub gs2_header: &'a str,
    /// client-first-message-bare.
    pub bare: &'a str,
    pub nonce: &'a str,
}

pub(crate) struct ClientFinal<'a> {
    /// `c=` value (base64 of GS2 header ‖ channel-binding data).
    pub channel_binding: &'a str,
    pub nonce: &'a str,
    /// client-final-message-without-proof.
    pub without_proof: &'a str,
    pub proof: &'a str,
}

pub(crate) struct ServerFirst<'a> {
    pub nonce: &'a str,
    pub salt: &'a str,
    pub iterations: u32,
}

pub(crate) enum ServerFinal<'a> {
    Verifier(&'a str),
    Error(&'a str),
}

fn utf8(data: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(data).map_err(|_| AuthError::Malformed("message is not UTF-8"))
}

/// Reads `<name>=<value>` and checks the name.
fn attr<'a>(part: Option<&'a str>, name: char, what: &'static str) -> Result<&'a str, AuthError> {
    let part = part.ok_or(AuthError::Malformed(what))?;
    let mut chars = part.chars();
    if chars.next() != Some(name) || chars.next() != Some('=') {
        return Err(AuthError::Malformed(what));
    }
    Ok(&part[2..])
}

/// RFC 5802 `printable` (no comma), non-empty.
fn check_nonce(nonce: &str) -> Result<&str, AuthError> {
    let ok = !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',');
    ok.then_some(nonce)
        .ok_or(AuthError::Malformed("nonce has a non-printable character"))
}

/// Rejects a mandatory extension (`m=`), which no PostgreSQL peer sends.
fn reject_mext(part: Option<&str>) -> Result<(), AuthError> {
    match part {
        Some(p) if p.starts_with("m=") => {
            Err(AuthError::Malformed("unsupported mandatory extension"))
        }
        _ => Ok(()),
    }
}

pub(crate) fn parse_client_first(data: &[u8]) -> Result<ClientFirst<'_>, AuthError> {
    let text = utf8(data)?;
    let (flag, after_flag) = if let Some(rest) = text.strip_prefix("n,") {
        (CbindFlag::No, rest)
    } else if let Some(rest) = text.strip_prefix("y,") {
        (CbindFlag::Yes, rest)
    } else if let Some(rest) = text.strip_prefix("p=tls-server-end-point,") {
        (CbindFlag::TlsServerEndPoint, rest)
    } else if text.starts_with("p=") {
        return Err(AuthError::ChannelBinding(
            "unsupported channel binding type",
        ));
    } else {
        return Err(AuthError::Malformed("invalid GS2 channel-binding flag"));
    };
    // PostgreSQL does not support an authorization identity.
    let bare = after_flag.strip_prefix(',').ok_or(AuthError::Malformed(
        "authorization identity is not supported",
    ))?;
    let gs2_header = &text[..text.len() - bare.len()];
    let mut parts = bare.split(',');
    let first = parts.next();
    reject_mext(first)?;
    // The user name is ignored: PostgreSQL takes it from the StartupMessage.
    attr(first, 'n', "expected user name attribute")?;
    let nonce = check_nonce(attr(parts.next(), 'r', "expected nonce attribute")?)?;
    // Optional extensions are ignored, as PostgreSQL does.
    Ok(ClientFirst {
        flag,
        gs2_header,
        bare,
        nonce,
    })
}

pub(crate) fn parse_client_final(data: &[u8]) -> Result<ClientFinal<'_>, AuthError> {
    let text = utf8(data)?;
    let idx = text
        .rfind(",p=")
        .ok_or(AuthError::Malformed("expected proof attribute"))?;
    let (without_proof, proof) = (&text[..idx], &text[idx + 3..]);
    let mut parts = without_proof.split(',');
    let channel_binding = attr(parts.next(), 'c', "expected channel-binding attribute")?;
    let nonce = check_nonce(attr(parts.next(), 'r', "expected nonce attribute")?)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

pub(crate) fn parse_server_first(data: &[u8]) -> Result<ServerFirst<'_>, AuthError> {
    let text = utf8(data)?;
    let mut parts = text.split(',');
    let first = parts.next();
    reject_mext(first)?;
    let nonce = check_nonce(attr(first, 'r', "expected nonce attribute")?)?;
    let salt = attr(parts.next(), 's', "expected salt attribute")?;
    let iterations = attr(parts.next(), 'i', "expected iteration count attribute")?
        .parse()
        .map_err(|_| AuthError::Malformed("iteration count is not a number"))?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

pub(crate) fn parse_server_final(data: &[u8]) -> Result<ServerFinal<'_>, AuthError> {
    let text = utf8(data)?;
    let first = text.split(',').next();
    if let Ok(err) = attr(first, 'e', "") {
        return Ok(ServerFinal::Error(err));
    }
    Ok(ServerFinal::Verifier(attr(
        first,
        'v',
        "expected verifier attribute",
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_variants() {
        let m = parse_client_first(b"n,,n=,r=abc").unwrap();
        assert_eq!(
            (m.flag, m.gs2_header, m.bare, m.nonce),
            (CbindFlag::No, "n,,", "n=,r=abc", "abc")
        );
        let m = parse_client_first(b"p=tls-server-end-point,,n=u,r=x,ext=1").unwrap();
        assert_eq!(
            (m.flag, m.gs2_header, m.nonce),
            (
                CbindFlag::TlsServerEndPoint,
                "p=tls-server-end-point,,",
                "x"
            )
        );
        assert_eq!(
            parse_client_first(b"y,,n=,r=q").unwrap().flag,
            CbindFlag::Yes
        );
        for bad in [
            &b"x,,n=,r=a"[..],
            b"n,a=admin,n=,r=a",
            b"n,,m=ext,n=,r=a",
            b"n,,n=,r=",
            b"n,,n=,r=a\x01b",
            b"n,,r=a",
            b"n,,n=",
            b"\xff",
        ] {
            assert!(parse_client_first(bad).is_err());
        }
        assert!(matches!(
            parse_client_first(b"p=tls-unique,,n=,r=a"),
            Err(AuthError::ChannelBinding(_))
        ));
    }

    #[test]
    fn client_final_and_server_messages() {
        let m = parse_client_final(b"c=biws,r=abc,p=cHJvb2Y=").unwrap();
        assert_eq!(
            (m.channel_binding, m.nonce, m.without_proof, m.proof),
            ("biws", "abc", "c=biws,r=abc", "cHJvb2Y=")
        );
        assert!(parse_client_final(b"c=biws,r=abc").is_err());
        assert!(parse_client_final(b"r=abc,c=biws,p=x").is_err());
        let s = parse_server_first(b"r=abc,s=c2FsdA==,i=4096").unwrap();
        assert_eq!((s.nonce, s.salt, s.iterations), ("abc", "c2FsdA==", 4096));
        assert!(parse_server_first(b"r=abc,s=x,i=-1").is_err());
        assert!(matches!(
            parse_server_final(b"v=abc").unwrap(),
            ServerFinal::Verifier("abc")
        ));
        assert!(matches!(
            parse_server_final(b"e=invalid-proof").unwrap(),
            ServerFinal::Error("invalid-proof")
        ));
        assert!(parse_server_final(b"x=1").is_err());
    }
}
