//! psql (libpq) through the proxy with `sslmode=verify-full`.

use pgcloak::devdb::{APP_PASSWORD, APP_USER};

use crate::harness::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn psql_select_copy_and_multi_statement() {
    let env = TestEnv::start().await;
    let ci = env.proxy_conninfo(APP_USER, APP_PASSWORD, env.db.database());
    let (code, out, err) = env.psql(&ci, "select 1").await;
    assert_eq!((code, out.trim()), (0, "1"), "stderr: {err}");
    // A multi-statement simple query: every statement runs, the last result is printed.
    let (code, out, err) = env
        .psql(&ci, "create table p(id int, s text); insert into p values (1,'x'),(2,'y'); select string_agg(s, ',' order by id) from p")
        .await;
    assert_eq!((code, out.trim()), (0, "x,y"), "stderr: {err}");
    // \copy in from a client file and out to another.
    let src = env.db.dir().join("in.tsv");
    let dst = env.db.dir().join("out.tsv");
    let data: String = (3..1003).map(|i| format!("{i}\tv{i}\n")).collect();
    std::fs::write(&src, &data).unwrap();
    let cmd = format!("\\copy p from '{}'", src.display());
    let (code, _, err) = env.psql(&ci, &cmd).await;
    assert_eq!(code, 0, "\\copy from: {err}");
    let cmd = format!(
        "\\copy (select * from p where id >= 3 order by id) to '{}'",
        dst.display()
    );
    let (code, _, err) = env.psql(&ci, &cmd).await;
    assert_eq!(code, 0, "\\copy to: {err}");
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), data);
    let d = env.direct_app().await;
    let n: i64 = d
        .query_one("select count(*) from p", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1002);
    // An error is reported with its SQLSTATE and psql exits non-zero.
    let (code, _, err) = env
        .psql_args(&ci, &["-v", "VERBOSITY=verbose", "-c", "select 1/0"])
        .await;
    assert_ne!(code, 0);
    assert!(err.contains("22012"), "stderr: {err}");
    // verify-full is really checked: a name not in the proxy certificate fails.
    let bad = ci.replace("host=localhost", "host=wrong.example");
    let (code, _, err) = env.psql(&bad, "select 1").await;
    assert_ne!(code, 0, "verify-full must reject the wrong host name");
    assert!(
        err.contains("wrong.example") || err.contains("certificate"),
        "stderr: {err}"
    );
}
