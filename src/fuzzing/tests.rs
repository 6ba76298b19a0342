//! Replays every committed seed and crash reproducer in `fuzz/corpus/<target>/` through its
//! harness, and a few hand-written inputs that reached defects (kept as named regressions).

use std::path::Path;

use super::*;

#[test]
fn every_corpus_file_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut ran = 0;
    for (name, harness) in TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut here = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let caught = std::panic::catch_unwind(|| harness(&data));
            assert!(caught.is_ok(), "{} failed on {}", name, path.display());
            here += 1;
        }
        assert!(here > 0, "no seeds for {name}");
        ran += here;
    }
    assert!(ran >= TARGETS.len());
}

#[test]
fn bind_and_data_row_lengths_below_minus_one_are_malformed() {
    // PostgreSQL reads only -1 as NULL; -2 is "insufficient data left in message". Read as
    // NULL, a Bind would be forwarded re-encoded with -1: a different message than the client's.
    let mut bind = b"\0\0\0\0\0\x01".to_vec();
    bind.extend_from_slice(&(-2i32).to_be_bytes());
    bind.extend_from_slice(b"\0\0");
    assert!(crate::protocol::extended::Bind::decode(&bind).is_err());
    let mut row = b"\0\x01".to_vec();
    row.extend_from_slice(&(-2i32).to_be_bytes());
    assert!(crate::protocol::extended::decode_data_row(&row).is_err());
    let mut sasl = b"SCRAM-SHA-256\0".to_vec();
    sasl.extend_from_slice(&(-2i32).to_be_bytes());
    assert!(crate::protocol::frontend::SaslInitialResponse::decode(&sasl).is_err());
    messages(&[
        b'B', 0, 0, 0, 14, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0,
    ]);
}
