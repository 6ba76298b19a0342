//! The migration state in the database: `pgcloak.migrations` (one row per column: direction,
//! phase, last primary key done, counts, times), `pgcloak.migrate_queue` (primary keys of rows
//! written while a migration runs) and the two trigger functions: `migrate_capture` (records
//! `NEW`'s key), `migrate_guard` (refuses a value that is not an envelope) and
//! `migrate_plain_guard` (refuses an envelope's text in a decrypted column). The catalog poll
//! does not count these functions as writers of rules tables (control/catalog.rs).
//! `migrate_capture` runs as its owner (the control role), so application roles need no
//! privilege on the queue.

use tokio_postgres::{Client, GenericClient, Row};

use super::MigrateError;

/// Creates the schema, tables and functions (idempotent).
pub const SETUP_SQL: &str = r#"
CREATE SCHEMA IF NOT EXISTS pgcloak;
CREATE TABLE IF NOT EXISTS pgcloak.migrations (
  id           serial UNIQUE,
  column_name  text PRIMARY KEY,
  direction    text NOT NULL,
  phase        text NOT NULL,
  plain_type   text NOT NULL,
  last_key     text[],
  rows_total   bigint NOT NULL DEFAULT 0,
  rows_done    bigint NOT NULL DEFAULT 0,
  queue_done   bigint NOT NULL DEFAULT 0,
  verified     text,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
CREATE TABLE IF NOT EXISTS pgcloak.migrate_queue (
  seq       bigserial PRIMARY KEY,
  migration int NOT NULL,
  pk        text[] NOT NULL
);
CREATE INDEX IF NOT EXISTS migrate_queue_migration ON pgcloak.migrate_queue (migration, seq);
CREATE OR REPLACE FUNCTION pgcloak.migrate_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
DECLARE
  r jsonb := to_jsonb(NEW);
BEGIN
  INSERT INTO pgcloak.migrate_queue (migration, pk)
    SELECT TG_ARGV[0]::int, array_agg(r ->> k ORDER BY o)
    FROM unnest(TG_ARGV[1]::text[]) WITH ORDINALITY AS u(k, o);
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION pgcloak.migrate_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format(
    'pgcloak: column %s.%s.%s stores encrypted values, and this write carried a value that is '
    'not one (a statement planned before the column was migrated): retry it',
    TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]);
END
$fn$;
CREATE OR REPLACE FUNCTION pgcloak.migrate_plain_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format(
    'pgcloak: column %s.%s.%s stores plaintext again (pgcloak migrate decrypt), and this write '
    'carried an encrypted value (a statement planned before the column was migrated back): '
    'retry it', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]);
END
$fn$;
"#;

/// `migrations.phase`, in order.
pub const PHASES: [&str; 5] = ["backfill", "indexes", "switch", "finish", "done"];

/// One row of `pgcloak.migrations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationRow {
    pub id: i32,
    pub column: String,
    pub direction: String,
    pub phase: String,
    /// The plaintext type (`format_type`), the target of `decrypt`.
    pub plain_type: String,
    pub last_key: Option<Vec<String>>,
    pub rows_total: i64,
    pub rows_done: i64,
    pub queue_done: i64,
    /// The last verification's summary (count and checksum).
    pub verified: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

const COLUMNS: &str = "id, column_name, direction, phase, plain_type, last_key, rows_total, \
     rows_done, queue_done, verified, started_at::text, finished_at::text";

impl MigrationRow {
    fn from_row(r: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(MigrationRow {
            id: r.try_get(0)?,
            column: r.try_get(1)?,
            direction: r.try_get(2)?,
            phase: r.try_get(3)?,
            plain_type: r.try_get(4)?,
            last_key: r.try_get(5)?,
            rows_total: r.try_get(6)?,
            rows_done: r.try_get(7)?,
            queue_done: r.try_get(8)?,
            verified: r.try_get(9)?,
            started_at: r.try_get(10)?,
            finished_at: r.try_get(11)?,
        })
    }
}

/// Creates the state tables and functions.
pub async fn setup(client: &Client, column: &str) -> Result<(), MigrateError> {
    client
        .batch_execute(SETUP_SQL)
        .await
        .map_err(MigrateError::db(column))
}

/// The migration row of `column`, if any.
pub async fn load(
    client: &impl GenericClient,
    column: &str,
) -> Result<Option<MigrationRow>, MigrateError> {
    let sql = format!("SELECT {COLUMNS} FROM pgcloak.migrations WHERE column_name = $1");
    let row = client
        .query_opt(&sql, &[&column])
        .await
        .map_err(MigrateError::db(column))?;
    row.map(|r| MigrationRow::from_row(&r))
        .transpose()
        .map_err(MigrateError::db(column))
}

/// Starts (or restarts, after a finished one in the other direction) the row of `column`.
pub async fn start(
    client: &impl GenericClient,
    column: &str,
    direction: &str,
    plain_type: &str,
    rows_total: i64,
) -> Result<MigrationRow, MigrateError> {
    let sql = format!(
        "INSERT INTO pgcloak.migrations (column_name, direction, phase, plain_type, rows_total) \
         VALUES ($1, $2, 'backfill', $3, $4) \
         ON CONFLICT (column_name) DO UPDATE SET direction = $2, phase = 'backfill', \
           plain_type = $3, rows_total = $4, rows_done = 0, queue_done = 0, last_key = NULL, \
           verified = NULL, started_at = now(), finished_at = NULL \
         RETURNING {COLUMNS}"
    );
    let row = client
        .query_one(&sql, &[&column, &direction, &plain_type, &rows_total])
        .await
        .map_err(MigrateError::db(column))?;
    MigrationRow::from_row(&row).map_err(MigrateError::db(column))
}

/// Moves `column`'s migration to `phase`.
pub async fn set_phase(
    client: &impl GenericClient,
    column: &str,
    phase: &str,
) -> Result<(), MigrateError> {
    let done = phase == "done";
    client
        .execute(
            "UPDATE pgcloak.migrations SET phase = $2, \
             finished_at = CASE WHEN $3 THEN now() END WHERE column_name = $1",
            &[&column, &phase, &done],
        )
        .await
        .map_err(MigrateError::db(column))?;
    Ok(())
}

/// Records a verification summary.
pub async fn set_verified(
    client: &impl GenericClient,
    column: &str,
    summary: &str,
) -> Result<(), MigrateError> {
    client
        .execute(
            "UPDATE pgcloak.migrations SET verified = $2 WHERE column_name = $1",
            &[&column, &summary],
        )
        .await
        .map_err(MigrateError::db(column))?;
    Ok(())
}

/// Every migration, by column (none when the state table does not exist yet).
pub async fn status(client: &Client) -> Result<Vec<MigrationRow>, MigrateError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('pgcloak.migrations') IS NOT NULL", &[])
        .await
        .map_err(MigrateError::db("pgcloak.migrations"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM pgcloak.migrations ORDER BY column_name");
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(MigrateError::db("pgcloak.migrations"))?;
    rows.iter()
        .map(MigrationRow::from_row)
        .collect::<Result<_, _>>()
        .map_err(MigrateError::db("pgcloak.migrations"))
}

/// Entries waiting in the queue of migration `id`.
pub async fn queued(
    client: &impl GenericClient,
    column: &str,
    id: i32,
) -> Result<i64, MigrateError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM pgcloak.migrate_queue WHERE migration = $1",
            &[&id],
        )
        .await
        .map_err(MigrateError::db(column))?
        .get(0))
}
