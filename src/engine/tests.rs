//! The session's encryption state machine without a database: scripted client and server
//! messages, checking what goes upstream and what the client receives.

use bytes::{Bytes, BytesMut};

use super::handlers::Outputs;
use super::*;
use crate::config::Rules;
use crate::config::parse_rules;
use crate::control::catalog::Catalog;
use crate::control::encryption::Encryption;
use crate::crypto::{Algorithm, DataKey, KeyRing};
use crate::protocol::backend::{TxStatus, ready_for_query};
use crate::protocol::extended::*;
use crate::protocol::{Frame, MAX_FRAME_LEN, split_frame};
use std::sync::Arc;

const RULES: &str = "[tables.patients]\nssn = { type = \"text\", mode = \"deterministic\" }\n";
const OID: u32 = 16400;

fn setup() -> (Handlers, Arc<KeyRing>) {
    let rules =
        Rules::from_columns(parse_rules(RULES, std::path::Path::new("r.toml")).unwrap()).unwrap();
    let key = DataKey::generate(
        "public.patients.ssn",
        1,
        Algorithm::for_mode(crate::config::Mode::Deterministic),
    );
    let ring = KeyRing::from_data_keys(vec![key]).unwrap();
    let rows = vec![
        ("public".into(), "patients".into(), OID, 1, "id".into()),
        ("public".into(), "patients".into(), OID, 2, "ssn".into()),
    ];
    let catalog = Catalog::from_rows(&rules, rows);
    let enc = Encryption::for_tests(rules, ring, catalog);
    let ring = enc.keys.current();
    (Handlers::with_crypto(SessionCrypto::new(enc)), ring)
}

fn frame(bytes: Bytes) -> Frame {
    Frame::new(bytes[0], bytes)
}

fn frames(buf: &mut BytesMut) -> Vec<Frame> {
    let mut v = Vec::new();
    while let Some(f) = split_frame(buf, MAX_FRAME_LEN).unwrap() {
        v.push(f);
    }
    v
}

struct Io {
    up: BytesMut,
    down: BytesMut,
}

impl Io {
    fn new() -> Self {
        Io {
            up: BytesMut::new(),
            down: BytesMut::new(),
        }
    }
    fn client(&mut self, s: &mut Handlers, b: Bytes) {
        let mut out = Outputs {
            to_upstream: &mut self.up,
            to_client: &mut self.down,
        };
        s.frontend(frame(b), &mut out).unwrap();
    }
    fn server(&mut self, s: &mut Handlers, b: Bytes) {
        let mut out = Outputs {
            to_upstream: &mut self.up,
            to_client: &mut self.down,
        };
        s.backend(frame(b), &mut out).unwrap();
    }
}

fn simple(tag: u8) -> Bytes {
    Bytes::from(vec![tag, 0, 0, 0, 4])
}

fn ssn_field(format: i16) -> Field<'static> {
    Field {
        name: b"ssn",
        table_oid: OID,
        attnum: 2,
        type_oid: 17,
        typlen: -1,
        typmod: -1,
        format,
    }
}

#[test]
fn extended_pipeline_encrypts_binds_and_decrypts_rows() {
    let (mut s, ring) = setup();
    let mut io = Io::new();
    let parse = Parse {
        name: "",
        query: "SELECT ssn FROM patients WHERE ssn = $1",
        param_types: vec![],
    };
    io.client(&mut s, parse.encode());
    io.client(
        &mut s,
        Named {
            target: Target::Statement,
            name: "",
        }
        .encode(b'D'),
    );
    let bind = Bind {
        portal: "",
        statement: "",
        param_formats: vec![],
        params: vec![Some(b"123")],
        result_formats: vec![1],
    };
    io.client(&mut s, bind.encode());
    io.client(
        &mut s,
        Execute {
            portal: "",
            max_rows: 0,
        }
        .encode(),
    );
    io.client(&mut s, sync());
    let up = frames(&mut io.up);
    assert_eq!(up.len(), 5);
    let p = Parse::decode(up[0].body()).unwrap();
    assert_eq!(p.param_types, vec![17, 1001]);
    assert_eq!(
        p.query, "SELECT ssn FROM public.patients WHERE (ssn = ANY($2::bytea[]))",
        "the table is sent schema-qualified as pgcloak resolved it"
    );
    let b = Bind::decode(up[2].body()).unwrap();
    assert_eq!(b.param_formats, vec![1, 1]);
    let stored = ring
        .encrypt(
            "public.patients.ssn",
            crate::config::Mode::Deterministic,
            b"123",
        )
        .unwrap();
    assert_eq!(b.params[0], Some(&stored[..]));
    assert_eq!(
        bytea_array_items(b.params[1].unwrap()),
        vec![stored.clone()]
    );
    assert!(!up[2].bytes().windows(3).any(|w| w == b"123"));

    io.server(&mut s, simple(b'1'));
    io.server(&mut s, parameter_description(&[17]));
    io.server(&mut s, row_description(&[ssn_field(0)]));
    io.server(&mut s, simple(b'2'));
    io.server(&mut s, data_row(&[Some(&stored[..])]));
    io.server(&mut s, Bytes::from_static(b"C\0\0\0\x0dSELECT 1\0"));
    io.server(&mut s, ready_for_query(TxStatus::Idle));
    let down = frames(&mut io.down);
    let tags: Vec<u8> = down.iter().map(|f| f.tag()).collect();
    assert_eq!(tags, b"1tT2DCZ");
    assert_eq!(
        decode_parameter_description(down[1].body()).unwrap(),
        vec![25]
    );
    let f = decode_row_description(down[2].body()).unwrap();
    assert_eq!((f[0].type_oid, f[0].typlen), (25, -1));
    assert_eq!(
        decode_data_row(down[4].body()).unwrap(),
        vec![Some(&b"123"[..])]
    );
    assert!(s.pipeline().is_empty());
}

#[test]
fn refused_parse_goes_through_the_server_and_undescribed_portals_get_described() {
    let (mut s, ring) = setup();
    let mut io = Io::new();
    let parse = Parse {
        name: "",
        query: "SELECT id FROM patients WHERE ssn LIKE $1",
        param_types: vec![],
    };
    io.client(&mut s, parse.encode());
    io.client(&mut s, sync());
    let up = frames(&mut io.up);
    let tags: Vec<u8> = up.iter().map(|f| f.tag()).collect();
    assert_eq!(tags, b"CPBES");
    io.server(&mut s, simple(b'3'));
    io.server(&mut s, simple(b'1'));
    io.server(&mut s, simple(b'2'));
    let err =
        crate::protocol::PgError::new(crate::protocol::Severity::Error, "0A000", "x").encode();
    io.server(&mut s, err);
    io.server(&mut s, ready_for_query(TxStatus::Idle));
    let tags: Vec<u8> = frames(&mut io.down).iter().map(|f| f.tag()).collect();
    assert_eq!(tags, b"EZ");

    // Parse + Bind + Execute without any Describe: the proxy asks and swallows the answer.
    let parse = Parse {
        name: "s",
        query: "SELECT ssn FROM patients",
        param_types: vec![],
    };
    io.client(&mut s, parse.encode());
    let bind = Bind {
        portal: "",
        statement: "s",
        param_formats: vec![],
        params: vec![],
        result_formats: vec![],
    };
    io.client(&mut s, bind.encode());
    io.client(
        &mut s,
        Execute {
            portal: "",
            max_rows: 0,
        }
        .encode(),
    );
    io.client(&mut s, sync());
    let tags: Vec<u8> = frames(&mut io.up).iter().map(|f| f.tag()).collect();
    assert_eq!(tags, b"PBDES");
    let stored = ring
        .encrypt(
            "public.patients.ssn",
            crate::config::Mode::Deterministic,
            b"9",
        )
        .unwrap();
    let hex: String = stored.iter().map(|b| format!("{b:02x}")).collect();
    io.server(&mut s, simple(b'1'));
    io.server(&mut s, simple(b'2'));
    io.server(&mut s, row_description(&[ssn_field(0)]));
    io.server(&mut s, data_row(&[Some(format!("\\x{hex}").as_bytes())]));
    io.server(&mut s, data_row(&[Some(&b"\\x00"[..])]));
    io.server(&mut s, Bytes::from_static(b"C\0\0\0\x0dSELECT 2\0"));
    io.server(&mut s, ready_for_query(TxStatus::InTransaction));
    let down = frames(&mut io.down);
    let tags: Vec<u8> = down.iter().map(|f| f.tag()).collect();
    // Second row failed to decrypt: XX001 instead, rest dropped, transaction shown failed.
    assert_eq!(tags, b"12DEZ");
    assert_eq!(
        decode_data_row(down[2].body()).unwrap(),
        vec![Some(&b"9"[..])]
    );
    assert_eq!(down[4].body(), b"E");
    // The server's transaction is aborted before the client's next message.
    io.client(&mut s, crate::protocol::extended::query("SELECT 1"));
    let up = frames(&mut io.up);
    assert_eq!(up.len(), 2);
    assert!(
        decode_query(up[0].body())
            .unwrap()
            .contains("RAISE EXCEPTION")
    );
}

#[test]
fn parameter_description_echoes_declared_types_and_binds_decode_as_declared() {
    let (mut s, ring) = setup();
    let mut io = Io::new();
    // pgjdbc declares varchar for a String; the server (asked for bytea) says 17.
    let parse = Parse {
        name: "s1",
        query: "SELECT id FROM patients WHERE ssn = $1 OR ssn = $2 OR id = $3",
        param_types: vec![1043, 0, 0],
    };
    io.client(&mut s, parse.encode());
    let d = Named {
        target: Target::Statement,
        name: "s1",
    };
    io.client(&mut s, d.encode(b'D'));
    let bind = Bind {
        portal: "",
        statement: "s1",
        param_formats: vec![1, 0, 0],
        params: vec![Some(b"123"), Some(b"123"), Some(b"7")],
        result_formats: vec![],
    };
    io.client(&mut s, bind.encode());
    io.client(&mut s, sync());
    let up = frames(&mut io.up);
    assert_eq!(
        Parse::decode(up[0].body()).unwrap().param_types,
        vec![17, 17, 0, 1001, 1001]
    );
    let b = Bind::decode(up[2].body()).unwrap();
    let stored = ring
        .encrypt(
            "public.patients.ssn",
            crate::config::Mode::Deterministic,
            b"123",
        )
        .unwrap();
    // Binary varchar and text input of one value encrypt alike for the text column.
    assert_eq!(b.params[0], Some(&stored[..]));
    assert_eq!(b.params[1], Some(&stored[..]));
    // The comparisons' own parameters: every version of each value.
    assert_eq!(b.params.len(), 5);
    assert_eq!(
        bytea_array_items(b.params[3].unwrap()),
        vec![stored.clone()]
    );
    assert_eq!(
        bytea_array_items(b.params[4].unwrap()),
        vec![stored.clone()]
    );

    io.server(&mut s, simple(b'1'));
    io.server(&mut s, parameter_description(&[17, 17, 23, 1001, 1001]));
    io.server(&mut s, simple(b'n'));
    let down = frames(&mut io.down);
    assert_eq!(
        decode_parameter_description(down[1].body()).unwrap(),
        vec![1043, 25, 23]
    );
}

/// The elements of a binary one-dimensional `bytea[]` without NULLs.
fn bytea_array_items(v: &[u8]) -> Vec<Vec<u8>> {
    let be = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(be(&v[0..4]), 1, "one dimension");
    assert_eq!(be(&v[8..12]), 17, "of bytea");
    let n = usize::try_from(be(&v[12..16])).unwrap();
    let mut pos = 20;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = usize::try_from(be(&v[pos..pos + 4])).unwrap();
        out.push(v[pos + 4..pos + 4 + len].to_vec());
        pos += 4 + len;
    }
    assert_eq!(pos, v.len());
    out
}

/// A client that sends its COPY data without waiting for CopyInResponse: the data is held
/// until the server starts the COPY (then encrypted), and dropped if the COPY never starts.
#[test]
fn copy_data_sent_early_is_held_then_encrypted_or_dropped() {
    use crate::protocol::copy::{copy_data, copy_done};
    let (mut s, _ring) = setup();
    let mut io = Io::new();
    io.client(
        &mut s,
        crate::protocol::extended::query("COPY patients (id, ssn) FROM STDIN"),
    );
    io.client(&mut s, copy_data(b"1\tsecret-ssn\n"));
    io.client(&mut s, copy_done());
    let up = frames(&mut io.up);
    assert_eq!(
        up.len(),
        1,
        "only the COPY statement goes up before the server answers"
    );
    // The server starts the COPY (text, two columns).
    io.server(&mut s, Bytes::from_static(b"G\0\0\0\x0b\0\0\x02\0\0\0\0"));
    let up = frames(&mut io.up);
    assert_eq!(up.len(), 2, "the held CopyData and CopyDone follow");
    assert_eq!(up[0].tag(), b'd');
    assert!(!up[0].bytes().windows(10).any(|w| w == b"secret-ssn"));
    assert!(
        up[0].body().starts_with(b"1\t\\\\x01"),
        "an envelope in bytea hex"
    );
    assert_eq!(up[1].tag(), b'c');
    io.server(&mut s, Bytes::from_static(b"C\0\0\0\x0bCOPY 1\0"));
    io.server(&mut s, ready_for_query(TxStatus::Idle));

    // The COPY fails before it starts (e.g. no permission): the early data is never sent.
    io.client(
        &mut s,
        crate::protocol::extended::query("COPY patients (id, ssn) FROM STDIN"),
    );
    io.client(&mut s, copy_data(b"2\tother-secret\n"));
    frames(&mut io.up);
    let err = crate::protocol::PgError::new(crate::protocol::Severity::Error, "42501", "denied");
    io.server(&mut s, err.encode());
    io.server(&mut s, ready_for_query(TxStatus::Idle));
    io.client(&mut s, copy_data(b"3\tlate-secret\n"));
    io.client(&mut s, copy_done());
    let up = frames(&mut io.up);
    assert!(
        up.iter().all(|f| f.tag() != b'd'),
        "no CopyData of a COPY that never started goes up: {up:?}"
    );

    // Early data for a COPY that fails while another COPY is pipelined behind it: the next
    // COPY is failed, never fed the first one's rows.
    for sql in ["COPY patients (id, ssn) FROM STDIN", "SELECT 1"] {
        io.client(&mut s, crate::protocol::extended::query(sql));
    }
    io.client(
        &mut s,
        copy_data(
            b"4	for-the-first
",
        ),
    );
    io.client(&mut s, copy_done());
    io.server(&mut s, err.encode());
    io.server(&mut s, ready_for_query(TxStatus::Idle));
    io.server(&mut s, Bytes::from_static(b"G\0\0\0\x0b\0\0\x02\0\0\0\0"));
    let up = frames(&mut io.up);
    assert!(up.iter().all(|f| f.tag() != b'd'), "{up:?}");
    assert_eq!(
        up.last().map(|f| f.tag()),
        Some(b'f'),
        "the second COPY is failed"
    );
}

/// A Query with bytes that are not UTF-8, in a session whose client_encoding is LATIN1.
fn latin1_query(text: &[u8]) -> Bytes {
    let mut v = vec![b'Q'];
    v.extend_from_slice(&(i32::try_from(text.len() + 5).unwrap()).to_be_bytes());
    v.extend_from_slice(text);
    v.push(0);
    Bytes::from(v)
}

#[test]
fn another_client_encoding_passes_statements_on_other_tables_and_refuses_rules_ones() {
    let (mut s, _) = setup();
    let mut io = Io::new();
    io.server(
        &mut s,
        crate::protocol::backend::parameter_status("client_encoding", "LATIN1"),
    );
    io.down.clear();
    let plain = latin1_query(b"INSERT INTO notes (t) VALUES ('caf\xe9')");
    io.client(&mut s, plain.clone());
    assert_eq!(&io.up[..], &plain[..], "forwarded byte for byte");
    io.up.clear();
    io.client(
        &mut s,
        latin1_query(b"INSERT INTO patients (ssn) VALUES ('caf\xe9')"),
    );
    let up = frames(&mut io.up);
    let sent = String::from_utf8_lossy(up[0].body()).into_owned();
    assert!(sent.contains("client_encoding"), "a refusal: {sent}");
    assert!(
        !sent.contains("caf"),
        "the value never reaches the server: {sent}"
    );
}
