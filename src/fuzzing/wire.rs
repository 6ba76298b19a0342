//! Harnesses for the wire layer: the frame splitter, the startup phase, every typed message
//! decoder (with the decode → encode round trip) and the SCRAM message parsers.

use bytes::BytesMut;

use crate::auth::message;
use crate::protocol::startup::StartupRequest;
use crate::protocol::{backend, extended, frame, frontend, split_frame, split_startup};

/// The splitter over a stream fed in pieces (sizes from the first byte): every frame it cuts
/// is exactly the next bytes of the input, and what it leaves is the unconsumed rest.
pub fn frame_splitter(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let max = 1 << 16;
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match split_frame(&mut buf, max) {
                Ok(Some(f)) => {
                    let n = f.bytes().len();
                    assert_eq!(&f.bytes()[..], &input[consumed..consumed + n]);
                    assert_eq!(f.tag(), input[consumed]);
                    assert_eq!(f.body().len(), n - 5);
                    consumed += n;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // The buffer never grows far past what arrived (no reservation from a length word).
        assert!(buf.capacity() <= buf.len() + (1 << 17), "over-reserved");
    }
    assert_eq!(&buf[..], &input[consumed..]);
}

/// The startup phase: untagged frames, each decoded as the first message of a connection.
pub fn startup(data: &[u8]) {
    if let Some(word) = data.get(..4) {
        let _ = frame::startup_len([word[0], word[1], word[2], word[3]]);
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = split_startup(&mut buf) {
        let Ok(req) = StartupRequest::decode(f.body()) else {
            continue;
        };
        let StartupRequest::Startup(msg) = req else {
            continue;
        };
        let _ = (msg.user(), msg.database(), msg.duplicate());
        if msg.major == 3 {
            let _ = msg.negotiation();
        }
        // What goes upstream decodes to the same parameters, minus the declined options.
        let up = msg.encode_v3_0();
        let Ok(StartupRequest::Startup(again)) = StartupRequest::decode(&up[4..]) else {
            panic!("re-encoded StartupMessage does not decode");
        };
        let kept: Vec<_> = msg
            .params
            .iter()
            .filter(|(n, _)| !n.starts_with("_pq_."))
            .cloned()
            .collect();
        assert_eq!(again.params, kept);
    }
}

/// Asserts that `encoded` (a whole message) carries exactly `body`.
fn same_body(encoded: &[u8], body: &[u8], what: &str) {
    assert_eq!(
        &encoded[5..],
        body,
        "{what} does not re-encode to its bytes"
    );
}

/// Asserts that `encoded` carries the start of `body` (for the decoders of server messages,
/// which ignore what follows the fields they read, as libpq does).
fn prefix_body(encoded: &[u8], body: &[u8], what: &str) {
    assert!(
        body.starts_with(&encoded[5..]),
        "{what} does not re-encode to its bytes"
    );
}

/// Every typed decoder on every frame (whatever its tag); the ones the proxy re-encodes must
/// give back the very bytes they decoded.
pub fn messages(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = split_frame(&mut buf, 1 << 20) {
        let body = f.body();
        if let Ok(q) = extended::decode_query(body) {
            same_body(&extended::query(q), body, "Query");
        }
        if let Ok(p) = extended::Parse::decode(body) {
            same_body(&p.encode(), body, "Parse");
        }
        if let Ok(b) = extended::Bind::decode(body) {
            same_body(&b.encode(), body, "Bind");
            for i in 0..b.params.len() {
                let _ = extended::format_of(&b.param_formats, i);
            }
        }
        if let Ok(n) = extended::Named::decode(body) {
            same_body(&n.encode(b'D'), body, "Describe/Close");
        }
        if let Ok(e) = extended::Execute::decode(body) {
            same_body(&e.encode(), body, "Execute");
        }
        if let Ok(fields) = extended::decode_row_description(body) {
            same_body(&extended::row_description(&fields), body, "RowDescription");
        }
        if let Ok(cells) = extended::decode_data_row(body) {
            same_body(&extended::data_row(&cells), body, "DataRow");
        }
        if let Ok(oids) = extended::decode_parameter_description(body) {
            same_body(
                &extended::parameter_description(&oids),
                body,
                "ParameterDescription",
            );
        }
        backend_decoders(body);
    }
}

/// The decoders of what the server sends during login and after.
fn backend_decoders(body: &[u8]) {
    if let Ok(a) = backend::Authentication::decode(body) {
        let _ = a.encode();
    }
    if let Ok(k) = backend::decode_backend_key(body) {
        same_body(&backend::backend_key_data(&k), body, "BackendKeyData");
    }
    if let Ok((n, v)) = backend::decode_parameter_status(body) {
        prefix_body(&backend::parameter_status(n, v), body, "ParameterStatus");
    }
    if let Ok(s) = backend::decode_ready_for_query(body) {
        same_body(&backend::ready_for_query(s), body, "ReadyForQuery");
    }
    if let Ok(fields) = backend::decode_error_fields(body) {
        prefix_body(
            &backend::encode_error_fields(b'E', fields.iter().copied()),
            body,
            "ErrorResponse",
        );
    }
    if let Ok(s) = frontend::SaslInitialResponse::decode(body) {
        same_body(&s.encode(), body, "SASLInitialResponse");
    }
    let _ = crate::protocol::copy::response_is_binary(body);
}

/// The four SCRAM message parsers (both legs) on the same bytes.
pub fn scram(data: &[u8]) {
    let _ = message::parse_client_first(data);
    let _ = message::parse_client_final(data);
    let _ = message::parse_server_first(data);
    let _ = message::parse_server_final(data);
}
