//! COPY on a rules table through pgcloak: rows written with `COPY … FROM STDIN` (text, CSV,
//! binary; psql's `\copy` in the simple protocol, tokio-postgres in the extended one) are
//! stored encrypted, and `COPY … TO STDOUT` gives them back decrypted; bad rows fail the COPY
//! with the type's own error and store nothing.

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt, pin_mut};
use pgcloak::devdb::{APP_PASSWORD, APP_USER};
use postgres_types::Type;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};

use crate::enc_env::{EncEnv, Proto, assert_error, assert_usable, ids, ok};
use crate::harness::{HANG, describe, within};

/// Runs `COPY … FROM STDIN` with `data` sent in pieces of `chunk` bytes.
async fn copy_in(
    c: &tokio_postgres::Client,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in(sql).await?;
    pin_mut!(sink);
    for piece in data.chunks(chunk) {
        sink.send(Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

/// Ids of the rows whose ssn is `ssn`, found through pgcloak.
async fn by_ssn(c: &tokio_postgres::Client, ssn: &str) -> crate::enc_env::Rows {
    let sql = "SELECT id FROM people WHERE ssn = $1";
    ok(c, Proto::Extended, sql, &[crate::enc_env::V::T(ssn)]).await
}

/// The whole output of `COPY … TO STDOUT`.
async fn copy_out(c: &tokio_postgres::Client, sql: &str) -> Result<Vec<u8>, tokio_postgres::Error> {
    let stream = c.copy_out(sql).await?;
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(b) = stream.try_next().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_text_and_csv_round_trip_and_store_ciphertext() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    // Text format, no column list (pgcloak writes the catalog's in), sent byte by byte in
    // places: escapes, NULLs and a tab inside a value.
    let text = b"1\tAnn\t111-11\tann@x.org\tnote\\tone\t30\n\
                 2\tBob\t\\N\t\\N\tline\\nbreak\t\\N\n";
    let n = within(HANG, copy_in(&c, "COPY people FROM STDIN", text, 7))
        .await
        .unwrap_or_else(|e| panic!("COPY FROM text: {}", describe(&e)));
    assert_eq!(n, 2);
    env.assert_at_rest("people", "ssn", 1, Some("111-11")).await;
    env.assert_at_rest("people", "email", 1, Some("ann@x.org"))
        .await;
    env.assert_at_rest("people", "note", 1, Some("note\tone"))
        .await;
    env.assert_at_rest("people", "note", 2, Some("line\nbreak"))
        .await;
    env.assert_at_rest("people", "age", 1, Some("30")).await;
    assert_eq!(env.stored("people", "ssn", 2).await, None);
    // What was copied in is found by the deterministic columns and reads back as written.
    assert_eq!(by_ssn(&c, "111-11").await, ids(&[1]));
    let out = copy_out(
        &c,
        "COPY people (id, name, ssn, email, note, age) TO STDOUT",
    )
    .await
    .unwrap();
    assert_eq!(out, text.to_vec(), "COPY TO gives back exactly the rows");
    // CSV with a header, a quoted delimiter, quotes and a newline inside a value.
    let csv = "id,ssn,note\n3,\"333,33\",\"say \"\"hi\"\"\nbye\"\n4,444-44,\n".as_bytes();
    let sql = "COPY people (id, ssn, note) FROM STDIN WITH (FORMAT csv, HEADER)";
    let n = within(HANG, copy_in(&c, sql, csv, 5)).await.unwrap();
    assert_eq!(n, 2);
    env.assert_at_rest("people", "ssn", 3, Some("333,33")).await;
    env.assert_at_rest("people", "note", 3, Some("say \"hi\"\nbye"))
        .await;
    assert_eq!(
        env.stored("people", "note", 4).await,
        None,
        "unquoted empty is NULL"
    );
    let sql = "COPY (SELECT 1) TO STDOUT";
    assert_eq!(copy_out(&c, sql).await.unwrap(), b"1\n");
    // A query's encrypted output is decrypted; its WHERE value is encrypted.
    let sql = "COPY (SELECT p.id, p.ssn, p.note FROM people p WHERE p.email = 'ann@x.org') \
               TO STDOUT (FORMAT csv)";
    assert_eq!(copy_out(&c, sql).await.unwrap(), b"1,111-11,note\tone\n");
    let out = copy_out(
        &c,
        "COPY people (id, ssn, note) TO STDOUT WITH (FORMAT csv, HEADER)",
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("id,ssn,note\n")
            && out.contains("3,\"333,33\",\"say \"\"hi\"\"\nbye\"\n")
            && out.contains("4,444-44,\n")
            && out.contains("1,111-11,note\tone\n"),
        "CSV out: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_binary_and_many_rows() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let sink = c
        .copy_in("COPY people (id, ssn, age) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TEXT, Type::INT4]);
    pin_mut!(writer);
    for i in 1..=3000i32 {
        let ssn = format!("bin-{i:05}");
        let age: Option<i32> = (i % 3 != 0).then_some(i % 90);
        writer.as_mut().write(&[&i, &ssn, &age]).await.unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), 3000);
    env.assert_at_rest("people", "ssn", 2999, Some("bin-02999"))
        .await;
    env.assert_at_rest("people", "age", 1, Some("1")).await;
    assert_eq!(env.stored("people", "age", 3).await, None);
    assert_eq!(by_ssn(&c, "bin-01234").await, ids(&[1234]));
    let stream = c
        .copy_out("COPY people (id, ssn, age) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let rows = BinaryCopyOutStream::new(stream, &[Type::INT4, Type::TEXT, Type::INT4]);
    let rows: Vec<_> = rows.try_collect().await.unwrap();
    assert_eq!(rows.len(), 3000);
    for r in &rows {
        let id: i32 = r.get(0);
        assert_eq!(r.get::<&str>(1), format!("bin-{id:05}"));
        assert_eq!(r.get::<Option<i32>>(2), (id % 3 != 0).then_some(id % 90));
    }
    // Text out of the same rows, many CopyData messages.
    let out = copy_out(&c, "COPY people (id, ssn) TO STDOUT")
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 3000);
    assert!(out.contains("\n1500\tbin-01500\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_copy_rows_store_nothing_and_refusals() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    // An int4 column given a word: the type's own error, naming the column; nothing stored.
    let data = b"1\t111\t30\n2\t222\tthirty\n3\t333\t40\n";
    let res = within(
        HANG,
        copy_in(&c, "COPY people (id, ssn, age) FROM STDIN", data, 4),
    )
    .await;
    assert_error(res, "22P02", &["public.people.age"], "COPY of a bad int4");
    assert_usable(&c, "after a failed COPY").await;
    let n = env.row_count("people").await;
    assert_eq!(n, 0, "a failed COPY stores no row");
    // Malformed CSV (an unterminated quote) is 22P04.
    let sql = "COPY people (id, ssn) FROM STDIN (FORMAT csv)";
    let res = within(HANG, copy_in(&c, sql, b"1,\"open\n", 64)).await;
    assert_error(res, "22P04", &["public.people"], "unterminated CSV quote");
    assert_usable(&c, "after malformed CSV").await;
    // Inside a transaction block the failed COPY aborts it, as PostgreSQL would.
    c.batch_execute("BEGIN").await.unwrap();
    let res = within(
        HANG,
        copy_in(&c, "COPY people (id, age) FROM STDIN", b"5\tx\n", 64),
    )
    .await;
    assert_error(
        res,
        "22P02",
        &["public.people.age"],
        "COPY in a transaction",
    );
    let err = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("25P02"));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_usable(&c, "after rollback").await;
    for sql in [
        "COPY people (id, ssn) FROM '/tmp/people.tsv'",
        "COPY people TO PROGRAM 'cat'",
        "COPY (SELECT ssn FROM people) TO '/tmp/people.out'",
        "COPY people (id, ssn) TO STDOUT (FORMAT csv, FORCE_QUOTE (ssn))",
    ] {
        let res = c.simple_query(sql).await;
        assert_error(res, "0A000", &["public.people"], sql);
        assert_usable(&c, sql).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_copy_in_and_out_through_the_simple_protocol() {
    let env = EncEnv::start().await;
    let ci = env
        .env
        .proxy_conninfo(APP_USER, APP_PASSWORD, env.env.db.database());
    let src = env.env.db.dir().join("people.csv");
    let dst = env.env.db.dir().join("people-out.csv");
    let data: String = (1..=500)
        .map(|i| format!("{i},name {i},ssn-{i},\"a, b {i}\"\n"))
        .collect();
    std::fs::write(&src, &data).unwrap();
    let cmd = format!(
        "\\copy people (id, name, ssn, note) from '{}' csv",
        src.display()
    );
    let (code, _, err) = env.env.psql(&ci, &cmd).await;
    assert_eq!(code, 0, "\\copy from: {err}");
    env.assert_at_rest("people", "ssn", 250, Some("ssn-250"))
        .await;
    env.assert_at_rest("people", "note", 7, Some("a, b 7"))
        .await;
    let cmd = format!(
        "\\copy people (id, name, ssn, note) to '{}' csv",
        dst.display()
    );
    let (code, _, err) = env.env.psql(&ci, &cmd).await;
    assert_eq!(code, 0, "\\copy to: {err}");
    let mut got: Vec<String> = std::fs::read_to_string(&dst)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort_by_key(|l| l.split(',').next().unwrap().parse::<i32>().unwrap());
    let want: Vec<String> = data.lines().map(str::to_owned).collect();
    assert_eq!(got, want);
    // A server-side file is refused with a message saying what to use instead.
    let (code, _, err) = env
        .env
        .psql(&ci, "COPY people (ssn) FROM '/etc/hostname'")
        .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("STDIN") && err.contains("public.people"),
        "{err}"
    );
}

/// `pg_dump` through pgcloak writes a plaintext dump of a rules table (its `COPY … TO stdout`
/// is decrypted); restoring that dump through pgcloak with psql encrypts it again.
#[tokio::test(flavor = "multi_thread")]
async fn pg_dump_and_restore_through_pgcloak() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let sql = "INSERT INTO people (id, name, ssn, email, note, age) VALUES \
               (1, 'Ann', 'dump-111', 'ann@x.org', 'tab\there', 30), (2, 'Bob', 'dump-222', NULL, NULL, NULL)";
    ok(&c, Proto::Simple, sql, &[]).await;
    let ci = env
        .env
        .proxy_conninfo(APP_USER, APP_PASSWORD, env.env.db.database());
    let out = tokio::process::Command::new(env.env.db.bin("pg_dump"))
        .args(["--data-only", "-t", "people", "-d", &ci])
        .env_remove("PGPASSWORD")
        .output();
    let out = within(HANG, out).await.expect("run pg_dump");
    let dump = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dump.contains("1\tAnn\tdump-111\tann@x.org\ttab\\there\t30\n"),
        "plaintext rows in the dump: {dump}"
    );
    let path = env.env.db.dir().join("people-dump.sql");
    std::fs::write(&path, &dump).unwrap();
    c.batch_execute("TRUNCATE people").await.unwrap();
    let file = path.display().to_string();
    let (code, _, err) = env.env.psql_args(&ci, &["-f", &file]).await;
    assert_eq!(code, 0, "restore: {err}");
    env.assert_at_rest("people", "ssn", 1, Some("dump-111"))
        .await;
    env.assert_at_rest("people", "note", 1, Some("tab\there"))
        .await;
    assert_eq!(env.stored("people", "email", 2).await, None);
    assert_eq!(by_ssn(&c, "dump-222").await, ids(&[2]));
}
