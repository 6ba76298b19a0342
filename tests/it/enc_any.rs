//! `col = ANY(…)` / `col <> ALL(…)` on deterministic columns: array parameters (binary, from
//! tokio-postgres; text arrays are covered by node-postgres in the client suite), array
//! literals and `ARRAY[…]` in the simple protocol, before and after `keys rotate`, with the
//! rows found checked against what is stored at rest.

use postgres_types::Type;

use crate::enc_env::{EncEnv, Proto, V, assert_error, assert_usable, ids, ok, run};
use crate::enc_ops::rotate_in_open_session;
use crate::harness::{HANG, describe, within};

async fn seed(env: &EncEnv, c: &tokio_postgres::Client) {
    for (id, ssn, age) in [(1, "111-11", 30), (2, "222-22", 40), (3, "333-33", 50)] {
        let sql = "INSERT INTO people (id, ssn, age) VALUES ($1, $2, $3)";
        ok(c, Proto::Extended, sql, &[V::I(id), V::T(ssn), V::I(age)]).await;
        env.assert_at_rest("people", "ssn", id, Some(ssn)).await;
    }
}

/// Ids (sorted) of `sql` run with one array parameter.
async fn ids_with<T>(c: &tokio_postgres::Client, sql: &str, arr: &T) -> Vec<i32>
where
    T: postgres_types::ToSql + Sync,
{
    let rows = within(HANG, c.query(sql, &[arr]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    let mut v: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn any_with_an_array_parameter() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    seed(&env, &c).await;
    let two = vec!["111-11".to_owned(), "333-33".to_owned()];
    for sql in [
        "SELECT id FROM people WHERE ssn = ANY($1)",
        "SELECT id FROM people WHERE ssn = ANY($1::text[])",
        "SELECT id FROM people WHERE ssn = SOME (CAST($1 AS text[]))",
    ] {
        assert_eq!(ids_with(&c, sql, &two).await, vec![1, 3], "{sql}");
    }
    let sql = "SELECT id FROM people WHERE ssn <> ALL($1)";
    assert_eq!(ids_with(&c, sql, &two).await, vec![2], "{sql}");
    let sql = "SELECT id FROM people WHERE age = ANY($1)";
    assert_eq!(ids_with(&c, sql, &vec![40i32, 50, 99]).await, vec![2, 3]);
    let none: Vec<String> = Vec::new();
    let sql = "SELECT id FROM people WHERE ssn = ANY($1)";
    assert_eq!(ids_with(&c, sql, &none).await, Vec::<i32>::new());
    let with_null = vec![None, Some("222-22".to_owned())];
    assert_eq!(ids_with(&c, sql, &with_null).await, vec![2]);
    // The application sees its own type; the server sees bytea[].
    let stmt = c.prepare(sql).await.unwrap();
    assert_eq!(stmt.params(), &[Type::TEXT_ARRAY]);
    let stmt = c
        .prepare("SELECT id FROM people WHERE age = ANY($1)")
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::INT4_ARRAY]);
    // Writes through ANY: only the matching rows change, and what lands is ciphertext.
    let upd = "UPDATE people SET note = $2 WHERE ssn = ANY($1)";
    let n = c.execute(upd, &[&two, &"seen"]).await.unwrap();
    assert_eq!(n, 2);
    env.assert_at_rest("people", "note", 1, Some("seen")).await;
    env.assert_at_rest("people", "note", 3, Some("seen")).await;
    assert_eq!(env.stored("people", "note", 2).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn any_with_array_literals_in_the_simple_protocol() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    seed(&env, &c).await;
    for (sql, want) in [
        (
            "SELECT id FROM people WHERE ssn = ANY(ARRAY['111-11', '333-33']) ORDER BY id",
            ids(&[1, 3]),
        ),
        (
            "SELECT id FROM people WHERE ssn = ANY('{111-11,\"333-33\"}'::text[]) ORDER BY id",
            ids(&[1, 3]),
        ),
        (
            "SELECT id FROM people WHERE ssn = ANY('{}') ORDER BY id",
            ids(&[]),
        ),
        (
            "SELECT id FROM people WHERE age <> ALL(ARRAY[30, 50]::int[]) ORDER BY id",
            ids(&[2]),
        ),
        (
            "SELECT id FROM people WHERE age = ANY(ARRAY[NULL, 40]) ORDER BY id",
            ids(&[2]),
        ),
    ] {
        assert_eq!(ok(&c, Proto::Simple, sql, &[]).await, want, "{sql}");
    }
    // An element that is not a value of the column's type is the type's own error.
    let sql = "SELECT id FROM people WHERE age = ANY('{1,x}')";
    let res = run(&c, Proto::Simple, sql, &[]).await;
    assert_error(res, "22P02", &["public.people.age"], sql);
    assert_usable(&c, sql).await;
    // Refused, with the session usable afterwards.
    for (sql, col) in [
        (
            "SELECT id FROM people WHERE note = ANY(ARRAY['x'])",
            "public.people.note",
        ),
        (
            "SELECT id FROM people WHERE ssn > ANY(ARRAY['x'])",
            "public.people.ssn",
        ),
        (
            "SELECT id FROM people WHERE ssn = ANY(string_to_array('a,b', ','))",
            "public.people.ssn",
        ),
        (
            "SELECT id FROM people WHERE ssn = ANY('{{a},{b}}')",
            "public.people.ssn",
        ),
    ] {
        let res = run(&c, Proto::Simple, sql, &[]).await;
        assert_error(res, "0A000", &[col], sql);
        assert_usable(&c, sql).await;
    }
}

/// After a rotation every element is matched under every key version, so rows written before
/// and after it are found; an `ARRAY[$1]` element (one version only) is refused instead.
#[tokio::test(flavor = "multi_thread")]
async fn any_finds_rows_of_every_key_version() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let early = c
        .prepare("SELECT id FROM people WHERE ssn = ANY($1) ORDER BY id")
        .await
        .unwrap();
    let id = rotate_in_open_session(&env, &c).await;
    let new = format!("new-{id}");
    let both = vec!["old-ssn".to_owned(), new.clone()];
    let rows = c.query(&early, &[&both]).await.unwrap();
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec![1, id], "prepared before the rotation");
    let sql = "SELECT id FROM people WHERE ssn = ANY($1)";
    assert_eq!(ids_with(&c, sql, &both).await, vec![1, id]);
    let sql = "SELECT id FROM people WHERE ssn <> ALL($1) AND id IN (1, $2)";
    let rows = c.query(sql, &[&both, &id]).await.unwrap();
    assert!(rows.is_empty(), "<> ALL excludes both versions");
    for sql in [
        format!("SELECT id FROM people WHERE ssn = ANY(ARRAY['old-ssn', '{new}']) ORDER BY id"),
        format!("SELECT id FROM people WHERE ssn = ANY('{{old-ssn,{new}}}') ORDER BY id"),
    ] {
        assert_eq!(
            ok(&c, Proto::Simple, &sql, &[]).await,
            ids(&[1, id]),
            "{sql}"
        );
    }
    // COPY takes no parameters: its comparisons are spelled out under every version.
    let sql = format!(
        "COPY (SELECT id FROM people WHERE ssn IN ('old-ssn', '{new}') ORDER BY id) TO STDOUT"
    );
    let stream = c.copy_out(sql.as_str()).await.unwrap();
    let out: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(stream)
        .await
        .unwrap();
    assert_eq!(out.concat(), format!("1\n{id}\n").into_bytes(), "{sql}");
    let sql = "SELECT id FROM people WHERE ssn = ANY(ARRAY[$1])";
    let res = run(&c, Proto::Extended, sql, &[V::T("old-ssn")]).await;
    assert_error(
        res,
        "0A000",
        &["public.people.ssn"],
        "ARRAY[$1] after rotation",
    );
    assert_usable(&c, "after a refused ARRAY[$1]").await;
}
