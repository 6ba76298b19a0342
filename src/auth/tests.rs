//! Exchange tests across the SCRAM server and client: RFC 7677's example, interoperability
//! with `postgres-protocol` (the client tokio-postgres uses), and the passthrough chain.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use zeroize::Zeroizing;

use super::*;

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_C_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_S_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn verifier(password: &str) -> ScramVerifier {
    ScramVerifier::from_password(password, b"0123456789abcdef", 4096)
}

fn password(p: &str) -> UpstreamSecret {
    UpstreamSecret::Password(Zeroizing::new(p.to_owned()))
}

#[test]
fn rfc7677_example_both_sides() {
    let salt = B64.decode(RFC_SALT).unwrap();
    let v = ScramVerifier::from_password("pencil", &salt, 4096);
    let mut server = ScramServer::new(v, None, false).with_nonce(RFC_S_NONCE);
    let mut client = ScramClient::with_nonce(
        password("pencil"),
        &[SCRAM_SHA_256],
        None,
        RFC_C_NONCE,
        "user",
    )
    .unwrap();
    assert_eq!(client.mechanism(), SCRAM_SHA_256);
    assert_eq!(client.client_first(), RFC_CLIENT_FIRST.as_bytes());
    let sf = server
        .client_first(SCRAM_SHA_256, RFC_CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(sf, RFC_SERVER_FIRST.as_bytes());
    assert_eq!(
        client.server_first(&sf).unwrap(),
        RFC_CLIENT_FINAL.as_bytes()
    );
    let (fin, _key) = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(fin, RFC_SERVER_FINAL.as_bytes());
    client.server_final(&fin).unwrap();
}

/// Runs postgres-protocol's client against our server; returns the server's verdict.
fn pg_client_vs_server(
    client_password: &str,
    binding: ChannelBinding,
    mechanism: &str,
    server: &mut ScramServer,
) -> Result<ClientKey, AuthError> {
    let mut pg = ScramSha256::new(client_password.as_bytes(), binding);
    let sf = server.client_first(mechanism, pg.message())?;
    pg.update(&sf).unwrap();
    let (fin, key) = server.client_final(pg.message())?;
    pg.finish(&fin)
        .expect("postgres-protocol accepts our server signature");
    Ok(key)
}

#[test]
fn postgres_protocol_client_all_binding_modes() {
    let hash = vec![0xabu8; 32];
    let mut s = ScramServer::new(verifier("pw"), None, false);
    assert_eq!(s.mechanisms(), vec![SCRAM_SHA_256]);
    pg_client_vs_server("pw", ChannelBinding::unsupported(), SCRAM_SHA_256, &mut s).unwrap();
    let mut s = ScramServer::new(verifier("pw"), None, false);
    pg_client_vs_server("pw", ChannelBinding::unrequested(), SCRAM_SHA_256, &mut s).unwrap();
    let mut s = ScramServer::new(verifier("pw"), Some(hash.clone()), false);
    assert_eq!(s.mechanisms(), vec![SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    let b = ChannelBinding::tls_server_end_point(hash.clone());
    pg_client_vs_server("pw", b, SCRAM_SHA_256_PLUS, &mut s).unwrap();
    // `n,,` is fine even when PLUS is offered.
    let mut s = ScramServer::new(verifier("pw"), Some(hash), false);
    pg_client_vs_server("pw", ChannelBinding::unsupported(), SCRAM_SHA_256, &mut s).unwrap();
}

#[test]
fn wrong_password_fails() {
    let mut s = ScramServer::new(verifier("pw"), None, false);
    let r = pg_client_vs_server(
        "wrong",
        ChannelBinding::unsupported(),
        SCRAM_SHA_256,
        &mut s,
    );
    assert!(matches!(r, Err(AuthError::WrongProof)), "{r:?}");
}

#[test]
fn tampered_channel_binding_fails() {
    let mut s = ScramServer::new(verifier("pw"), Some(vec![1; 32]), false);
    let b = ChannelBinding::tls_server_end_point(vec![2; 32]);
    let r = pg_client_vs_server("pw", b, SCRAM_SHA_256_PLUS, &mut s);
    assert!(matches!(r, Err(AuthError::ChannelBinding(_))), "{r:?}");
}

#[test]
fn downgrade_and_mismatched_negotiation_fail() {
    let hash = Some(vec![1u8; 32]);
    let mut s = ScramServer::new(verifier("pw"), hash.clone(), false);
    let r = pg_client_vs_server("pw", ChannelBinding::unrequested(), SCRAM_SHA_256, &mut s);
    assert!(matches!(r, Err(AuthError::ChannelBinding(_))), "{r:?}");
    // PLUS chosen but no binding data.
    let mut s = ScramServer::new(verifier("pw"), hash.clone(), false);
    let r = pg_client_vs_server(
        "pw",
        ChannelBinding::unsupported(),
        SCRAM_SHA_256_PLUS,
        &mut s,
    );
    assert!(matches!(r, Err(AuthError::ChannelBinding(_))), "{r:?}");
    // Binding data with plain SCRAM-SHA-256.
    let mut s = ScramServer::new(verifier("pw"), hash, false);
    let b = ChannelBinding::tls_server_end_point(vec![1; 32]);
    let r = pg_client_vs_server("pw", b, SCRAM_SHA_256, &mut s);
    assert!(matches!(r, Err(AuthError::ChannelBinding(_))), "{r:?}");
    // PLUS not offered without a certificate hash.
    let mut s = ScramServer::new(verifier("pw"), None, false);
    let b = ChannelBinding::tls_server_end_point(vec![1; 32]);
    let r = pg_client_vs_server("pw", b, SCRAM_SHA_256_PLUS, &mut s);
    assert!(matches!(r, Err(AuthError::UnsupportedMechanism)), "{r:?}");
}

#[test]
fn dummy_verifier_fails_like_a_wrong_password() {
    let dummy = ScramVerifier::dummy("ghost", &[5; 32]);
    let mut s = ScramServer::new(dummy, None, true);
    let mut pg = ScramSha256::new(b"anything", ChannelBinding::unsupported());
    let sf = s.client_first(SCRAM_SHA_256, pg.message()).unwrap();
    assert!(String::from_utf8(sf.clone()).unwrap().contains(",i=4096"));
    pg.update(&sf).unwrap();
    let dummy_err = s.client_final(pg.message()).unwrap_err();
    let mut s = ScramServer::new(verifier("pw"), None, false);
    let wrong_err =
        pg_client_vs_server("nope", ChannelBinding::unsupported(), SCRAM_SHA_256, &mut s)
            .unwrap_err();
    assert!(matches!(dummy_err, AuthError::WrongProof));
    assert_eq!(dummy_err.to_string(), wrong_err.to_string());
}

/// Client (postgres-protocol) → our server → recovered ClientKey → our client → a second
/// server with the same verifier, standing in for the real upstream.
fn passthrough(offered_by_upstream: Option<Vec<u8>>, proxy_sees: Option<Vec<u8>>) {
    let v = verifier("app-secret");
    let mut front = ScramServer::new(v.clone(), None, false);
    let key = pg_client_vs_server(
        "app-secret",
        ChannelBinding::unsupported(),
        SCRAM_SHA_256,
        &mut front,
    )
    .unwrap();
    let server_key = v.server_key;
    let mut upstream = ScramServer::new(v, offered_by_upstream, false);
    let offered = upstream.mechanisms();
    let secret = UpstreamSecret::ClientKey {
        client_key: key,
        server_key,
    };
    let mut c = ScramClient::new(secret, &offered, proxy_sees).unwrap();
    let cf = c.client_first();
    let sf = upstream.client_first(c.mechanism(), &cf).unwrap();
    let cfin = c.server_first(&sf).unwrap();
    let (sfin, _) = upstream.client_final(&cfin).unwrap();
    c.server_final(&sfin).unwrap();
}

#[test]
fn passthrough_chain_all_binding_modes() {
    passthrough(None, None); // n,,
    passthrough(None, Some(vec![3; 32])); // y,, (upstream does not offer PLUS)
    passthrough(Some(vec![3; 32]), Some(vec![3; 32])); // PLUS
}

#[test]
fn client_picks_mechanism() {
    let c = ScramClient::new(
        password("x"),
        &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256],
        Some(vec![1]),
    )
    .unwrap();
    assert_eq!(c.mechanism(), SCRAM_SHA_256_PLUS);
    let mut c =
        ScramClient::new(password("x"), &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256], None).unwrap();
    assert_eq!(c.mechanism(), SCRAM_SHA_256);
    assert!(c.client_first().starts_with(b"n,,n=,r="));
    let mut c = ScramClient::new(password("x"), &[SCRAM_SHA_256], Some(vec![1])).unwrap();
    assert!(c.client_first().starts_with(b"y,,n=,r="));
    assert!(matches!(
        ScramClient::new(password("x"), &["OAUTHBEARER"], None),
        Err(AuthError::NoCommonMechanism)
    ));
}

#[test]
fn client_rejects_forged_server() {
    let v = verifier("pw");
    let run = |final_msg: Option<&[u8]>, client_pw: &str| {
        let mut up = ScramServer::new(v.clone(), None, false);
        let mut c = ScramClient::new(password(client_pw), &[SCRAM_SHA_256], None).unwrap();
        let sf = up.client_first(SCRAM_SHA_256, &c.client_first()).unwrap();
        let cfin = c.server_first(&sf).unwrap();
        let fin = match final_msg {
            Some(m) => m.to_vec(),
            None => up.client_final(&cfin).unwrap().0,
        };
        c.server_final(&fin)
    };
    run(None, "pw").unwrap();
    let forged = format!("v={}", B64.encode([0u8; 32]));
    assert!(matches!(
        run(Some(forged.as_bytes()), "pw"),
        Err(AuthError::BadServerSignature)
    ));
    assert!(matches!(
        run(Some(b"e=invalid-proof"), "pw"),
        Err(AuthError::ServerRejected(_))
    ));
}

#[test]
fn client_rejects_bad_server_first() {
    let mut c = ScramClient::with_nonce(password("x"), &[SCRAM_SHA_256], None, "abc", "").unwrap();
    c.client_first();
    assert!(matches!(
        c.server_first(b"r=xyz123,s=c2FsdA==,i=4096"),
        Err(AuthError::NonceMismatch)
    ));
    let mut c = ScramClient::with_nonce(password("x"), &[SCRAM_SHA_256], None, "abc", "").unwrap();
    c.client_first();
    assert!(matches!(
        c.server_first(b"r=abc,s=c2FsdA==,i=4096"),
        Err(AuthError::NonceMismatch)
    ));
    let mut c = ScramClient::with_nonce(password("x"), &[SCRAM_SHA_256], None, "abc", "").unwrap();
    c.client_first();
    assert!(matches!(
        c.server_first(b"r=abcd,s=c2FsdA==,i=4000000000"),
        Err(AuthError::Iterations(_))
    ));
}

#[test]
fn server_rejects_out_of_order_and_bad_final() {
    let mut s = ScramServer::new(verifier("pw"), None, false);
    assert!(matches!(
        s.client_final(b"c=biws,r=a,p=x"),
        Err(AuthError::OutOfOrder)
    ));
    let mut s = ScramServer::new(verifier("pw"), None, false).with_nonce("SN");
    s.client_first(SCRAM_SHA_256, b"n,,n=,r=CN").unwrap();
    let proof = B64.encode([0u8; 32]);
    let r = s.client_final(format!("c=biws,r=CNXX,p={proof}").as_bytes());
    assert!(matches!(r, Err(AuthError::NonceMismatch)));
    let mut s = ScramServer::new(verifier("pw"), None, false).with_nonce("SN");
    s.client_first(SCRAM_SHA_256, b"n,,n=,r=CN").unwrap();
    let r = s.client_final(format!("c=eSws,r=CNSN,p={proof}").as_bytes());
    assert!(
        matches!(r, Err(AuthError::ChannelBinding(_))),
        "y,, header in c= after n,,"
    );
    let mut s = ScramServer::new(verifier("pw"), None, false).with_nonce("SN");
    s.client_first(SCRAM_SHA_256, b"n,,n=,r=CN").unwrap();
    assert!(matches!(
        s.client_final(b"c=biws,r=CNSN,p=AAAA"),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        s.client_first(SCRAM_SHA_256, b"n,,n=,r=CN"),
        Err(AuthError::OutOfOrder)
    ));
}

#[test]
fn server_nonce_is_fresh_and_long() {
    let mut a = ScramServer::new(verifier("pw"), None, false);
    let mut b = ScramServer::new(verifier("pw"), None, false);
    let fa = String::from_utf8(a.client_first(SCRAM_SHA_256, b"n,,n=,r=C").unwrap()).unwrap();
    let fb = String::from_utf8(b.client_first(SCRAM_SHA_256, b"n,,n=,r=C").unwrap()).unwrap();
    assert_ne!(fa, fb);
    let nonce = fa.split(',').next().unwrap().strip_prefix("r=C").unwrap();
    assert_eq!(B64.decode(nonce).unwrap().len(), 18);
}
