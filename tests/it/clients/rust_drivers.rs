//! The compatibility scenario from Rust: tokio-postgres (prepared statements typed by the
//! server's ParameterDescription, binary parameters and results) and sqlx (Parse + Describe,
//! named cached statements, type checks against RowDescription on decode).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{COLUMNS, plain};
use crate::harness::TestEnv;
use pgcloak::devdb::{APP_PASSWORD, APP_USER};

/// One person, with every logical type.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    ssn: String,
    email: String,
    age: Option<i32>,
    visits: Option<i64>,
    score: Option<f64>,
    balance: Option<Decimal>,
    active: Option<bool>,
    born: Option<NaiveDate>,
    wake: Option<NaiveTime>,
    seen: Option<NaiveDateTime>,
    seen_tz: Option<DateTime<Utc>>,
    ext_id: Option<Uuid>,
    profile: Option<Value>,
    photo: Option<Vec<u8>>,
    small: Option<i16>,
    ratio: Option<f32>,
    doc: Option<Value>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn time(h: u32, m: u32, s: u32, micro: u32) -> NaiveTime {
    NaiveTime::from_hms_micro_opt(h, m, s, micro).expect("valid time")
}

/// The three people of the scenario: full, mostly NULL, full with edge values.
pub fn people(tag: &str) -> [Person; 3] {
    let full = Person {
        ssn: format!("{tag}-100"),
        email: format!("{tag}.one@example.com"),
        age: Some(41),
        visits: Some(9_000_000_001),
        score: Some(3.25),
        balance: Some(Decimal::new(123_456_789, 4)),
        active: Some(true),
        born: Some(date(1980, 2, 29)),
        wake: Some(time(7, 30, 15, 500_000)),
        seen: Some(date(2024, 3, 1).and_time(time(12, 34, 56, 789_000))),
        seen_tz: Some(Utc.from_utc_datetime(&date(2024, 3, 1).and_time(time(12, 34, 56, 789_000)))),
        ext_id: Some(Uuid::from_u128(0x6f1d_2b1e_3c4a_4e5f_8a9b_0c1d_2e3f_4a5b)),
        profile: Some(json!({"a": 1, "tags": ["x", "y"]})),
        photo: Some(vec![0, 1, 0xfe, 0xff, b'p']),
        small: Some(7),
        ratio: Some(0.5),
        doc: Some(json!({"k": "v", "n": [1, 2]})),
    };
    let two = Person {
        ssn: format!("{tag}-200"),
        email: format!("{tag}.two@example.com"),
        age: None,
        visits: None,
        score: None,
        balance: None,
        active: None,
        born: None,
        wake: None,
        seen: None,
        seen_tz: None,
        ext_id: None,
        profile: None,
        photo: None,
        small: None,
        ratio: None,
        doc: None,
    };
    let three = Person {
        ssn: format!("{tag}-300"),
        email: format!("{tag}.trois+é@example.com"),
        age: Some(-5),
        visits: Some(-1),
        score: Some(-0.125),
        balance: Some(Decimal::new(-1, 2)),
        active: Some(false),
        born: Some(date(2001, 12, 31)),
        wake: Some(time(23, 59, 59, 0)),
        seen: Some(date(1999, 12, 31).and_time(time(23, 59, 59, 0))),
        seen_tz: Some(Utc.from_utc_datetime(&date(1999, 12, 31).and_time(time(23, 59, 59, 0)))),
        ext_id: Some(Uuid::from_u128(0x7c9e_6679_7425_40de_944b_e07f_c1f9_0ae7)),
        profile: Some(json!([])),
        photo: Some(Vec::new()),
        small: Some(i16::MIN),
        ratio: Some(-1.5),
        doc: Some(json!([])),
    };
    [full, two, three]
}

fn names() -> String {
    COLUMNS.map(|(c, _)| c).join(", ")
}

fn insert_sql() -> String {
    let params: Vec<String> = (3..COLUMNS.len() + 3).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO compat_people (client, note, {}) VALUES ($1, $2, {}) RETURNING id",
        names(),
        params.join(", ")
    )
}

fn select_by(column: &str) -> String {
    format!("SELECT {} FROM compat_people WHERE {column} = $1", names())
}

const JOIN: &str = "SELECT p.ssn, p.email, o.amount FROM compat_people p \
     JOIN compat_orders o ON o.person_ssn = p.ssn WHERE p.client = $1 ORDER BY o.amount";
const UPDATE: &str = "UPDATE compat_people SET email = $1, age = $2, profile = $3 WHERE ssn = $4";
const REFUSED: &str = "SELECT id FROM compat_people WHERE ssn LIKE '1%'";

/// The first person after the update.
fn updated(p: &Person, tag: &str) -> Person {
    Person {
        email: format!("{tag}.one.new@example.com"),
        age: Some(42),
        profile: Some(json!({"a": 2})),
        ..p.clone()
    }
}

fn tp_params<'a>(tag: &'a String, note: &'a String, p: &'a Person) -> Vec<&'a (dyn ToSql + Sync)> {
    vec![
        tag, note, &p.ssn, &p.email, &p.age, &p.visits, &p.score, &p.balance, &p.active, &p.born,
        &p.wake, &p.seen, &p.seen_tz, &p.ext_id, &p.profile, &p.photo, &p.small, &p.ratio, &p.doc,
    ]
}

fn tp_person(r: &tokio_postgres::Row) -> Person {
    Person {
        ssn: r.get("ssn"),
        email: r.get("email"),
        age: r.get("age"),
        visits: r.get("visits"),
        score: r.get("score"),
        balance: r.get("balance"),
        active: r.get("active"),
        born: r.get("born"),
        wake: r.get("wake"),
        seen: r.get("seen"),
        seen_tz: r.get("seen_tz"),
        ext_id: r.get("ext_id"),
        profile: r.get("profile"),
        photo: r.get("photo"),
        small: r.get("small"),
        ratio: r.get("ratio"),
        doc: r.get("doc"),
    }
}

/// tokio-postgres through the proxy: prepared, binary, pipelined inserts.
pub async fn tokio_postgres_scenario(env: &TestEnv, tag: &str) {
    let c = env.app().await;
    let ps = people(tag);
    let tag_owned = tag.to_string();
    let insert = c.prepare(&insert_sql()).await.expect("prepare insert");
    // Pipelined: all three Bind/Execute before awaiting any.
    let notes: Vec<String> = (0..3).map(|i| format!("note {i} ü")).collect();
    let futs = ps.iter().zip(&notes).map(|(p, n)| {
        let params = tp_params(&tag_owned, n, p);
        let insert = &insert;
        let c = &c;
        async move { c.query_one(insert, &params).await }
    });
    for r in futures_util::future::join_all(futs).await {
        r.expect("insert person");
    }
    let order = "INSERT INTO compat_orders (client, person_ssn, amount) VALUES ($1, $2, $3)";
    for amount in [10i32, 25] {
        c.execute(order, &[&tag, &ps[0].ssn, &amount])
            .await
            .expect("insert order");
    }
    let find = c.prepare(&select_by("ssn")).await.expect("prepare find");
    for p in &ps {
        let rows = c.query(&find, &[&p.ssn]).await.expect("find by ssn");
        assert_eq!(rows.len(), 1, "rows for {}", p.ssn);
        assert_eq!(tp_person(&rows[0]), *p);
    }
    // Equality on the other deterministic types, typed binary parameters.
    let by_uuid = c.query(&select_by("ext_id"), &[&ps[0].ext_id]).await;
    assert_eq!(by_uuid.expect("find by uuid").len(), 1);
    let by_date = c.query(&select_by("born"), &[&ps[2].born]).await;
    assert_eq!(by_date.expect("find by date").len(), 1);
    let by_int8 = c.query(&select_by("visits"), &[&ps[0].visits]).await;
    assert_eq!(by_int8.expect("find by int8").len(), 1);
    let want = updated(&ps[0], tag);
    let n = c
        .execute(UPDATE, &[&want.email, &want.age, &want.profile, &ps[0].ssn])
        .await
        .expect("update");
    assert_eq!(n, 1);
    let rows = c
        .query(&select_by("email"), &[&want.email])
        .await
        .expect("find by email");
    assert_eq!(
        rows.iter().map(tp_person).collect::<Vec<_>>(),
        vec![want.clone()]
    );
    let n = c
        .execute("DELETE FROM compat_people WHERE ssn = $1", &[&ps[2].ssn])
        .await
        .expect("delete");
    assert_eq!(n, 1);
    let joined: Vec<(String, String, i32)> = c
        .query(JOIN, &[&tag])
        .await
        .expect("join")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let wanted = [10, 25].map(|a| (ps[0].ssn.clone(), want.email.clone(), a));
    assert_eq!(joined, wanted);
    if !plain() {
        let e = c
            .query(REFUSED, &[])
            .await
            .expect_err("LIKE must be refused");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
            "{e:?}"
        );
        let e = c
            .simple_query(REFUSED)
            .await
            .expect_err("LIKE must be refused");
        assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e:?}");
    }
    let one: i32 = c.query_one("SELECT 1", &[]).await.expect("usable").get(0);
    assert_eq!(one, 1);
}

fn sqlx_bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    p: &'q Person,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(&p.ssn)
        .bind(&p.email)
        .bind(p.age)
        .bind(p.visits)
        .bind(p.score)
        .bind(p.balance)
        .bind(p.active)
        .bind(p.born)
        .bind(p.wake)
        .bind(p.seen)
        .bind(p.seen_tz)
        .bind(p.ext_id)
        .bind(&p.profile)
        .bind(&p.photo)
        .bind(p.small)
        .bind(p.ratio)
        .bind(p.doc.as_ref().map(sqlx::types::Json))
}

fn sqlx_person(r: &sqlx::postgres::PgRow) -> Result<Person, sqlx::Error> {
    use sqlx::Row;
    Ok(Person {
        ssn: r.try_get("ssn")?,
        email: r.try_get("email")?,
        age: r.try_get("age")?,
        visits: r.try_get("visits")?,
        score: r.try_get("score")?,
        balance: r.try_get("balance")?,
        active: r.try_get("active")?,
        born: r.try_get("born")?,
        wake: r.try_get("wake")?,
        seen: r.try_get("seen")?,
        seen_tz: r.try_get("seen_tz")?,
        ext_id: r.try_get("ext_id")?,
        profile: r.try_get("profile")?,
        photo: r.try_get("photo")?,
        small: r.try_get("small")?,
        ratio: r.try_get("ratio")?,
        doc: r.try_get("doc")?,
    })
}

async fn sqlx_connect(env: &TestEnv) -> sqlx::PgConnection {
    use sqlx::Connection;
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("localhost")
        .port(env.proxy_addr().port())
        .username(APP_USER)
        .password(APP_PASSWORD)
        .database(env.db.database())
        .ssl_mode(sqlx::postgres::PgSslMode::VerifyFull)
        .ssl_root_cert(env.db.ca_cert_path());
    sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("sqlx connect through the proxy")
}

/// sqlx through the proxy.
pub async fn sqlx_scenario(env: &TestEnv, tag: &str) {
    use sqlx::Row;
    let mut c = sqlx_connect(env).await;
    let ps = people(tag);
    let insert = insert_sql();
    for (i, p) in ps.iter().enumerate() {
        let q = sqlx::query(&insert).bind(tag).bind(format!("note {i} ü"));
        sqlx_bind(q, p)
            .fetch_one(&mut c)
            .await
            .expect("sqlx insert person");
    }
    let order = "INSERT INTO compat_orders (client, person_ssn, amount) VALUES ($1, $2, $3)";
    for amount in [10i32, 25] {
        let q = sqlx::query(order).bind(tag).bind(&ps[0].ssn).bind(amount);
        q.execute(&mut c).await.expect("sqlx insert order");
    }
    let find = select_by("ssn");
    for round in 0..2 {
        for p in &ps {
            let rows = sqlx::query(&find).bind(&p.ssn).fetch_all(&mut c).await;
            let rows = rows.expect("sqlx find by ssn");
            assert_eq!(rows.len(), 1, "rows for {} (round {round})", p.ssn);
            assert_eq!(sqlx_person(&rows[0]).expect("decode person"), *p);
        }
    }
    let want = updated(&ps[0], tag);
    let done = sqlx::query(UPDATE)
        .bind(&want.email)
        .bind(want.age)
        .bind(&want.profile)
        .bind(&ps[0].ssn)
        .execute(&mut c)
        .await
        .expect("sqlx update");
    assert_eq!(done.rows_affected(), 1);
    let rows = sqlx::query(&select_by("email"))
        .bind(&want.email)
        .fetch_all(&mut c)
        .await
        .expect("sqlx find by email");
    let got: Result<Vec<Person>, _> = rows.iter().map(sqlx_person).collect();
    assert_eq!(got.expect("decode"), vec![want.clone()]);
    let done = sqlx::query("DELETE FROM compat_people WHERE ssn = $1")
        .bind(&ps[2].ssn)
        .execute(&mut c)
        .await
        .expect("sqlx delete");
    assert_eq!(done.rows_affected(), 1);
    let rows = sqlx::query(JOIN).bind(tag).fetch_all(&mut c).await;
    let joined: Vec<(String, String, i32)> = rows
        .expect("sqlx join")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let wanted = [10, 25].map(|a| (ps[0].ssn.clone(), want.email.clone(), a));
    assert_eq!(joined, wanted);
    if !plain() {
        let e = sqlx::query(REFUSED).fetch_all(&mut c).await;
        match e {
            Err(sqlx::Error::Database(db)) => {
                assert_eq!(db.code().as_deref(), Some("0A000"), "{db}")
            }
            other => panic!("LIKE must be refused with a database error, got {other:?}"),
        }
    }
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut c)
        .await
        .expect("usable");
    assert_eq!(one, 1);
}
