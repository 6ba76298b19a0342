//! Unit tests of COPY stream splitting and re-encoding, in every format, fed whole and byte by
//! byte.

use super::*;

/// Maps field 1: uppercases it, NULL stays NULL; `"fail"` is refused.
fn upper(idx: usize, v: Field<'_>) -> Result<Option<Vec<u8>>, String> {
    assert_eq!(idx, 1, "only field 1 is mapped");
    match v {
        Some(b"fail") => Err("refused".to_owned()),
        Some(v) => Ok(Some(v.to_ascii_uppercase())),
        None => Ok(None),
    }
}

fn mapped() -> Vec<bool> {
    vec![false, true, false]
}

/// Runs `input` through a stream, whole and then in `chunk`-byte pieces; both must agree.
fn run(opts: &CopyOptions, input: &[u8]) -> Result<Vec<u8>, CopyError<String>> {
    let mut whole = CopyStream::new(opts.clone(), mapped());
    let mut out = whole.feed(input, &mut upper)?;
    out.extend(whole.finish(&mut upper)?);
    for chunk in [1, 2, 3, 7] {
        let mut s = CopyStream::new(opts.clone(), mapped());
        let mut got = Vec::new();
        for piece in input.chunks(chunk) {
            got.extend(s.feed(piece, &mut upper)?);
        }
        got.extend(s.finish(&mut upper)?);
        assert_eq!(got, out, "chunks of {chunk}");
    }
    Ok(out)
}

fn text() -> CopyOptions {
    CopyOptions::new(Format::Text)
}

fn csv() -> CopyOptions {
    CopyOptions::new(Format::Csv)
}

#[test]
fn text_rows_map_only_the_mapped_field() {
    let got = run(
        &text(),
        b"1\tab\tx\\ty\n2\t\\N\tz\r\n3\tc\\td\\\\e\\nf\t\\N\n",
    )
    .unwrap();
    assert_eq!(
        got,
        b"1\tAB\tx\\ty\n2\t\\N\tz\r\n3\tC\\tD\\\\E\\nF\t\\N\n".to_vec()
    );
    // Escapes are decoded before mapping: octal, hex, and an escaped delimiter.
    let got = run(&text(), b"1\t\\101\\x42\\,\\\t\n").unwrap();
    assert_eq!(got, b"1\tAB,\\t\n".to_vec());
    // An escaped newline is data, not the end of the row.
    let got = run(&text(), b"1\ta\\\nb\tz\n").unwrap();
    assert_eq!(got, b"1\tA\\nB\tz\n".to_vec());
    // The end-of-data marker ends the stream; what follows passes through.
    let got = run(&text(), b"1\tq\tz\n\\.\n1\tleft\tz\n").unwrap();
    assert_eq!(got, b"1\tQ\tz\n\\.\n1\tleft\tz\n".to_vec());
    // A last row without a newline is transformed at finish.
    assert_eq!(run(&text(), b"1\tq\tz").unwrap(), b"1\tQ\tz".to_vec());
    // Custom delimiter and NULL marker.
    let mut o = text();
    o.delimiter = b'|';
    o.null = b"NULL".to_vec();
    assert_eq!(
        run(&o, b"1|NULL|x\n2|a\\|b|y\n").unwrap(),
        b"1|NULL|x\n2|A\\|B|y\n".to_vec()
    );
    // A header line passes through untouched.
    let mut o = text();
    o.header = true;
    assert_eq!(
        run(&o, b"id\tssn\tz\n1\tq\tz\n").unwrap(),
        b"id\tssn\tz\n1\tQ\tz\n"
    );
}

#[test]
fn csv_rows_respect_quotes() {
    let got = run(&csv(), b"1,ab,x\n2,\"c,d\",\"y,z\"\n3,,w\n4,\"\",v\n").unwrap();
    assert_eq!(got, b"1,AB,x\n2,\"C,D\",\"y,z\"\n3,,w\n4,\"\",v\n".to_vec());
    // A quoted newline and doubled quotes stay data; the output is quoted again.
    let got = run(&csv(), b"1,\"a\nb\"\"c\",z\r\n").unwrap();
    assert_eq!(got, b"1,\"A\nB\"\"C\",z\r\n".to_vec());
    // A custom escape character.
    let mut o = csv();
    o.escape = b'\\';
    let got = run(&o, b"1,\"a\\\"b\",z\n").unwrap();
    assert_eq!(got, b"1,\"A\\\"B\",z\n".to_vec());
    // `\.` alone ends the data; inside a row it is data.
    let got = run(&csv(), b"1,\\.,z\n\\.\n").unwrap();
    assert_eq!(got, b"1,\\.,z\n\\.\n".to_vec());
}

#[test]
fn binary_tuples_are_rebuilt() {
    let mut input = b"PGCOPY\n\xff\r\n\0".to_vec();
    input.extend(0i32.to_be_bytes());
    input.extend(4i32.to_be_bytes());
    input.extend(b"ext!");
    let tuple = |f1: Option<&[u8]>| {
        let mut t = 3i16.to_be_bytes().to_vec();
        t.extend(1i32.to_be_bytes());
        t.push(b'k');
        match f1 {
            None => t.extend((-1i32).to_be_bytes()),
            Some(v) => {
                t.extend(i32::try_from(v.len()).unwrap().to_be_bytes());
                t.extend(v);
            }
        }
        t.extend((-1i32).to_be_bytes());
        t
    };
    let mut want = input.clone();
    input.extend(tuple(Some(b"abc")));
    input.extend(tuple(None));
    input.extend((-1i16).to_be_bytes());
    want.extend(tuple(Some(b"ABC")));
    want.extend(tuple(None));
    want.extend((-1i16).to_be_bytes());
    assert_eq!(
        run(&CopyOptions::new(Format::Binary), &input).unwrap(),
        want
    );
    let bad = b"PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0";
    assert!(matches!(
        run(&CopyOptions::new(Format::Binary), bad),
        Err(CopyError::Malformed(_))
    ));
}

#[test]
fn malformed_data_and_refused_values_leave_the_stream_unchanged() {
    for bad in [&b"1\ta\rb\tz\n"[..], b"1\tab\\.cd\tz\n", b"1\tend\\"] {
        assert!(
            matches!(run(&text(), bad), Err(CopyError::Malformed(_))),
            "{bad:?}"
        );
    }
    for bad in [&b"1,\"open,z\n"[..], b"1,a\rb,z\n"] {
        assert!(
            matches!(run(&csv(), bad), Err(CopyError::Malformed(_))),
            "{bad:?}"
        );
    }
    let mut s = CopyStream::new(text(), mapped());
    assert_eq!(
        s.feed(b"1\tok\tz\n2\tpart", &mut upper).unwrap(),
        b"1\tOK\tz\n"
    );
    let err = s.feed(b"ial\tz\n3\tfail\tz\n", &mut upper).unwrap_err();
    assert_eq!(err, CopyError::Value("refused".to_owned()));
    // The failed payload was not kept: feeding a good one continues the partial row.
    assert_eq!(s.feed(b"ial\tz\n", &mut upper).unwrap(), b"2\tPARTIAL\tz\n");
    assert!(s.finish(&mut upper).unwrap().is_empty());
}

proptest::proptest! {
    /// Arbitrary bytes in any chunking, in every format: an answer or an error, never a panic,
    /// and the identity map passes valid text data through unchanged.
    #[test]
    fn any_input_in_any_chunking_never_panics(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        cut in 1usize..40,
        fmt in 0u8..3,
    ) {
        let format = [Format::Text, Format::Csv, Format::Binary][usize::from(fmt)];
        let mut s = CopyStream::new(CopyOptions::new(format), vec![true, true, false]);
        let mut id = |_: usize, v: Field<'_>| Ok::<_, ()>(v.map(<[u8]>::to_vec));
        for piece in data.chunks(cut) {
            if s.feed(piece, &mut id).is_err() {
                break;
            }
        }
        let _ = s.finish(&mut id);
    }

    #[test]
    fn identity_map_keeps_plain_text_rows(rows in proptest::collection::vec("[a-z0-9 ]{0,8}\t[a-z0-9 ]{1,8}\t[a-z]{0,3}", 0..8), cut in 1usize..20) {
        let data: String = rows.iter().map(|r| format!("{r}\n")).collect();
        let mut s = CopyStream::new(CopyOptions::new(Format::Text), vec![true, true, true]);
        let mut id = |_: usize, v: Field<'_>| Ok::<_, ()>(v.map(<[u8]>::to_vec));
        let mut out = Vec::new();
        for piece in data.as_bytes().chunks(cut) {
            out.extend(s.feed(piece, &mut id).unwrap());
        }
        out.extend(s.finish(&mut id).unwrap());
        proptest::prop_assert_eq!(out, data.into_bytes());
    }
}
