//! Adversarial probes: every statement kind that can move a value into a rules column or
//! change what a rules column is — DDL (defaults, type changes, USING, CHECK, partial and
//! expression indexes, policies, CTAS/SELECT INTO onto a rules name, renames then reuse,
//! triggers, rules, inheritance, domains), procedural code (CALL, DO, functions, triggers on
//! plain tables), COPY from programs and files, MERGE, writable CTEs, INSERT … SELECT,
//! ON CONFLICT, UPDATE … FROM, RETURNING, PREPARE/EXECUTE, cursors, and composite expansion
//! (`(x).*`, `ROW(…).*`, `json_populate_record(set)`, whole-row outputs).

use crate::adversarial::{
    Driver, Expect, P, Probe, SIMPLE, TOKIO, TWO, count, enc, probe, run_suite, t,
};

const DDL: &str = "ddl";
const DML: &str = "dml";
const PROC: &str = "procedural";
const COMP: &str = "composite";

fn ddl_probes() -> Vec<Probe> {
    let s1 = || vec![t("{S1}")];
    let refused = |name: &str, sql: &str| {
        probe(DDL, name)
            .attack(sql)
            .expect(Expect::Refused)
            .on(SIMPLE)
    };
    vec![
        probe(DDL, "SET DEFAULT with a text literal, then DEFAULT VALUES")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET DEFAULT '{S1}'")
            .attack("INSERT INTO {t} (id) VALUES (1)")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(TWO),
        refused("SET DEFAULT with plaintext bytes (convert_to)", "ALTER TABLE {t} ALTER COLUMN s SET DEFAULT convert_to('{S1}', 'UTF8')"),
        refused("SET DEFAULT with a bytea literal of the plaintext", "ALTER TABLE {t} ALTER COLUMN r SET DEFAULT '{S1}'::bytea"),
        refused("ALTER COLUMN TYPE text", "ALTER TABLE {t} ALTER COLUMN s TYPE text"),
        refused("ALTER COLUMN TYPE varchar(255) (Sequelize sync alter)", "ALTER TABLE {t} ALTER COLUMN \"v\" TYPE VARCHAR(255)"),
        refused("ALTER COLUMN TYPE bytea USING a plaintext", "ALTER TABLE {t} ALTER COLUMN s TYPE bytea USING convert_to('{S1}', 'UTF8')"),
        refused("ALTER COLUMN SET DATA TYPE bytea USING s || plaintext", "ALTER TABLE {t} ALTER COLUMN s SET DATA TYPE bytea USING s || '{S1}'::bytea"),
        refused("CHECK comparing an encrypted column with a literal", "ALTER TABLE {t} ADD CONSTRAINT {x}_c CHECK (s <> '{S1}')"),
        refused("CHECK NOT VALID with a plaintext bytea", "ALTER TABLE {t} ADD CONSTRAINT {x}_c CHECK (r <> convert_to('{S1}', 'UTF8')) NOT VALID"),
        refused("partial index predicate on an encrypted column", "CREATE INDEX {x}_i ON {t} (id) WHERE s = '{S1}'"),
        refused("unique partial index predicate on a bytea literal", "CREATE UNIQUE INDEX {x}_i ON {t} (s) WHERE r <> '{S1}'::bytea"),
        refused("expression index with a plaintext", "CREATE INDEX {x}_i ON {t} ((s || '{S1}'::bytea))"),
        refused("CREATE POLICY USING a literal", "CREATE POLICY {x}_p ON {t} USING (s = '{S1}')"),
        refused("CREATE POLICY WITH CHECK a literal", "CREATE POLICY {x}_p ON {t} FOR INSERT WITH CHECK (s <> '{S1}')"),
        refused("EXCLUDE constraint with a predicate literal", "ALTER TABLE {t} ADD CONSTRAINT {x}_e EXCLUDE USING btree (s WITH =) WHERE (r <> '{S1}')"),
        refused("ADD COLUMN named like a dropped rules column, as text", "ALTER TABLE {t} DROP COLUMN s, ADD COLUMN s text DEFAULT '{S1}'"),
        probe(DDL, "RENAME TO, then write under the new name")
            .attack("ALTER TABLE {t} RENAME TO {x}_r")
            .any("INSERT INTO {x}_r (id, s) VALUES (1, convert_to('{M1}', 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "RENAME COLUMN, then ADD COLUMN with the old name")
            .attack("ALTER TABLE {t} RENAME COLUMN s TO s_old")
            .any("ALTER TABLE {t} ADD COLUMN s bytea")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "RENAME another table onto the rules name")
            .direct("CREATE TABLE {x}_p (id int PRIMARY KEY, s text)")
            .setup("DROP TABLE {t}")
            .attack("ALTER TABLE {x}_p RENAME TO {t}")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "SET SCHEMA moves a plain table onto the rules name")
            .direct("CREATE SCHEMA {x}; CREATE TABLE {x}.{t} (id int PRIMARY KEY, s text)")
            .setup("DROP TABLE public.{t}")
            .attack("ALTER TABLE {x}.{t} SET SCHEMA public")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE AS onto a dropped rules name")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} AS SELECT 1 AS id, '{S1}'::text AS s")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "SELECT INTO onto a dropped rules name")
            .setup("DROP TABLE {t}")
            .attack("SELECT 1 AS id, '{S1}'::text AS s INTO {t}")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE with a text rules column")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} (id int PRIMARY KEY, s text DEFAULT '{S1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE with a bytea rules column and a plaintext default")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} (id int PRIMARY KEY, s bytea DEFAULT convert_to('{S1}', 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE with a generated rules column")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} (id int PRIMARY KEY, note text, s bytea GENERATED ALWAYS AS (convert_to(note, 'UTF8')) STORED)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "sound DDL on a rules table passes")
            .attack("CREATE INDEX {x}_i ON {t} (s)")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET NOT NULL")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET STORAGE EXTERNAL")
            .attack("COMMENT ON COLUMN {t}.s IS 'encrypted'")
            .attack("ALTER TABLE {t} ADD COLUMN extra int DEFAULT 7")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(DDL, "CREATE TRIGGER on a rules table")
            .direct("CREATE FUNCTION {x}_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.s := convert_to('x', 'UTF8'); RETURN NEW; END $$")
            .attack("CREATE TRIGGER {x}_tr BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {x}_tf()")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE RULE on a rules table")
            .direct("CREATE TABLE {x}_log (s bytea)")
            .attack("CREATE RULE {x}_r AS ON INSERT TO {t} DO ALSO INSERT INTO {x}_log VALUES (NEW.s)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE RULE on a plain table redirecting into a rules table")
            .direct("CREATE TABLE {x}_p (id int, s text)")
            .attack("CREATE RULE {x}_r AS ON INSERT TO {x}_p DO INSTEAD INSERT INTO {t} (id, s) VALUES (NEW.id, convert_to(NEW.s, 'UTF8'))")
            .any("INSERT INTO {x}_p VALUES (1, '{M1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE … INHERITS a rules table")
            .attack("CREATE TABLE {x}_c () INHERITS ({t})")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "ALTER TABLE plain INHERIT a rules table, then write the child")
            .direct("CREATE TABLE {x}_p (id int, s bytea, r bytea, i bytea, n bytea, v bytea, d bytea, j bytea, b bytea, note text)")
            .attack("ALTER TABLE {x}_p INHERIT {t}")
            .any("INSERT INTO {x}_p (id, s) VALUES (5, convert_to('{M1}', 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "ALTER COLUMN TYPE to a domain with a plaintext default")
            .direct("CREATE DOMAIN {x}_d AS bytea DEFAULT convert_to('{M1}', 'UTF8')")
            .attack("ALTER TABLE {t} ALTER COLUMN s TYPE {x}_d")
            .any("INSERT INTO {t} (id) VALUES (1)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "SET DEFAULT to a function returning plaintext bytes")
            .direct("CREATE FUNCTION {x}_f() RETURNS bytea LANGUAGE sql AS $$ SELECT convert_to('{M1}', 'UTF8') $$")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET DEFAULT {x}_f()")
            .any("INSERT INTO {t} (id) VALUES (1)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE VIEW over a rules table, then write through it")
            .attack("CREATE VIEW {x}_v AS SELECT id, s FROM {t}")
            .any("INSERT INTO {x}_v (id, s) VALUES (1, convert_to('{M1}', 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE STATISTICS on encrypted columns")
            .attack("CREATE STATISTICS {x}_st ON s, r FROM {t}")
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
    ]
}

fn proc_probes() -> Vec<Probe> {
    vec![
        probe(PROC, "CALL a procedure that writes a rules table")
            .direct("CREATE PROCEDURE {x}_p(v text) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {t} (id, s) VALUES (1, convert_to(v, 'UTF8')); END $$")
            .attack_p("CALL {x}_p($1)", vec![t("{S1}")])
            .expect(Expect::Refused)
            .on(TOKIO),
        probe(PROC, "SELECT a SQL function that writes a rules table")
            .direct("CREATE FUNCTION {x}_f(v text) RETURNS int LANGUAGE sql AS $$ INSERT INTO {t} (id, s) VALUES (1, convert_to(v, 'UTF8')) RETURNING id $$")
            .attack_p("SELECT {x}_f($1)", vec![t("{S1}")])
            .expect(Expect::Refused)
            .on(TOKIO),
        probe(PROC, "function writing a rules table through dynamic SQL with a computed name")
            .direct("CREATE FUNCTION {x}_f(v text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('INSERT INTO %I (id, s) VALUES (1, convert_to($1, ''UTF8''))', 'a' || '{k}') USING v; END $$")
            .attack_p("SELECT {x}_f($1)", vec![t("{S1}")])
            .expect(Expect::Refused)
            .on(TOKIO),
        probe(PROC, "function called from a plain table's DEFAULT")
            .direct("CREATE FUNCTION {x}_f(v text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {t} (id, s) VALUES (1, convert_to(v, 'UTF8')); RETURN 1; END $$; CREATE TABLE {x}_q (v text)")
            .attack("INSERT INTO {x}_q SELECT {x}_f('{M1}')::text")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "DO block inserting plaintext bytes")
            .attack("DO $$ BEGIN INSERT INTO {t} (id, s) VALUES (1, convert_to('{S1}', 'UTF8')); END $$")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "DO block with a computed table name")
            .attack("DO $$ BEGIN EXECUTE 'INSERT INTO a' || '{k}' || ' (id, s) VALUES (1, convert_to(''{S1}'', ''UTF8''))'; END $$")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "DO block with a dollar-quoted tag inside")
            .attack("DO $do$ BEGIN EXECUTE $q$INSERT INTO {t} (id, r) VALUES (1, '{S1}'::bytea)$q$; END $do$")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "COPY FROM PROGRAM into a rules table")
            .attack("COPY {t} (id, s) FROM PROGRAM 'echo 1,{S1}' WITH (FORMAT csv)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "COPY FROM a server file into a rules table")
            .attack("COPY {t} (id, s) FROM '/tmp/{S1}.csv' WITH (FORMAT csv)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "SQL-level PREPARE of an INSERT, EXECUTE with a literal")
            .any("PREPARE {x}p(int, text) AS INSERT INTO {t} (id, s) VALUES ($1, $2)")
            .attack("EXECUTE {x}p(1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(PROC, "EXECUTE of a statement that was never prepared")
            .attack("EXECUTE {x}nope(1, '{S1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(PROC, "PREPARE with a literal, then EXECUTE")
            .any("PREPARE {x}p AS INSERT INTO {t} (id, s) VALUES (1, '{S1}')")
            .attack("EXECUTE {x}p")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(PROC, "cursor over an encrypted column: FETCH decrypts")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .setup("BEGIN")
            .attack("DECLARE {x}c CURSOR FOR SELECT s FROM {t}")
            .attack("FETCH ALL FROM {x}c")
            .rows(&[&[Some("{S1}")]])
            .any("COMMIT")
            .expect(Expect::Safe(vec![]))
            .on(TWO),
    ]
}

fn dml_probes() -> Vec<Probe> {
    let s1 = || vec![t("{S1}")];
    vec![
        probe(DML, "MERGE inserting a plain table's column")
            .direct("CREATE TABLE {x}_p (id int, s text); INSERT INTO {x}_p VALUES (1, '{M1}')")
            .attack("MERGE INTO {t} USING {x}_p v ON {t}.id = v.id WHEN NOT MATCHED THEN INSERT (id, s) VALUES (v.id, convert_to(v.s, 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "writable CTE UPDATE with a value from the outer query's CTE")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("WITH v AS (SELECT $1::text AS x), u AS (UPDATE {t} SET s = (SELECT x FROM v) WHERE id = 1 RETURNING id) SELECT id FROM u", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT … SELECT with a parameter")
            .attack_p("INSERT INTO {t} (id, s) SELECT 1, $1", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT … SELECT from a plain table's text column")
            .direct("CREATE TABLE {x}_p (id int, s text); INSERT INTO {x}_p VALUES (1, '{M1}')")
            .attack("INSERT INTO {t} (id, s) SELECT id, convert_to(s, 'UTF8') FROM {x}_p")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "INSERT … SELECT from a VALUES list")
            .attack_p("INSERT INTO {t} (id, s) SELECT * FROM (VALUES (1, $1)) v(a, b)", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT … SELECT … UNION ALL")
            .attack_p("INSERT INTO {t} (id, s) SELECT 1, $1 UNION ALL SELECT 2, $2", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("s", 2, Some("{S2}"))])),
        probe(DML, "INSERT … SELECT unnest of an array parameter (Django bulk_create)")
            .attack_p("INSERT INTO {t} (id, s) SELECT * FROM UNNEST($1::int[], $2::text[])", vec![t("{1,2}"), t("{{S1},{S2}}")])
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("s", 2, Some("{S2}"))]))
            .on(TWO),
        probe(DML, "INSERT without a column list")
            .attack_p("INSERT INTO {t} VALUES (1, $1)", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "multi-row VALUES")
            .attack_p("INSERT INTO {t} (id, s, r) VALUES (1, $1, NULL), (2, NULL, $2)", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}")), enc("r", 2, Some("{S2}")), enc("s", 2, None)])),
        probe(DML, "ON CONFLICT DO UPDATE SET col = EXCLUDED.col")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET s = EXCLUDED.s", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "ON CONFLICT DO UPDATE SET col = $2")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET r = $2", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("old")), enc("r", 1, Some("{S2}"))])),
        probe(DML, "ON CONFLICT DO UPDATE SET col = EXCLUDED.col || plaintext")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET s = EXCLUDED.s || convert_to($2, 'UTF8')", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Refused),
        probe(DML, "ON CONFLICT … WHERE on an encrypted column")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET r = $2 WHERE {t}.s = $3", vec![t("x"), t("{S1}"), t("old")])
            .expect(Expect::Safe(vec![enc("r", 1, Some("{S1}"))])),
        probe(DML, "UPDATE … FROM a plain table's text column")
            .direct("CREATE TABLE {x}_p (id int, s text); INSERT INTO {x}_p VALUES (1, '{M1}'); INSERT INTO {t} (id) VALUES (1)")
            .attack("UPDATE {t} SET s = convert_to(p.s, 'UTF8') FROM {x}_p p WHERE {t}.id = p.id")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "UPDATE SET a plain text column into an encrypted one")
            .direct("INSERT INTO {t} (id, note) VALUES (1, '{M1}')")
            .attack("UPDATE {t} SET s = note::bytea")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "UPDATE SET (a, b) = (…) row assignment")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET (s, r) = ($1, $2) WHERE id = 1", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("r", 1, Some("{S2}"))])),
        probe(DML, "UPDATE SET (a, b) = (SELECT …) sub-select assignment")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET (s, r) = (SELECT $1, $2) WHERE id = 1", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("r", 1, Some("{S2}"))])),
        probe(DML, "UPDATE SET col = (SELECT $1)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET s = (SELECT $1) WHERE id = 1", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "UPDATE SET col = (CASE WHEN … THEN $1 END)::varchar (Django bulk_update)")
            .setup_p("INSERT INTO {t} (id, v) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET v = (CASE WHEN (id = 1) THEN $1 ELSE NULL END)::varchar WHERE id IN (1)", s1())
            .expect(Expect::Safe(vec![enc("v", 1, Some("{S1}"))])),
        probe(DML, "UPDATE copying between columns with different keys")
            .setup_p("INSERT INTO {t} (id, s, v) VALUES (1, $1, $2)", vec![t("{S1}"), t("{S2}")])
            .attack("UPDATE {t} SET s = v")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "INSERT … SELECT copying the same-key column (ciphertext copy)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .attack("INSERT INTO {t} (id, s) SELECT 2, s FROM {t} WHERE id = 1")
            .expect(Expect::Safe(vec![enc("s", 2, Some("{S1}"))]))
            .on(SIMPLE),
        probe(DML, "UPDATE SET a plain column from an encrypted one")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .attack("UPDATE {t} SET note = s::text")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DML, "DELETE … RETURNING the encrypted column")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .attack("DELETE FROM {t} WHERE id = 1 RETURNING s")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Encrypted(vec![count("public.{t}", 0)])),
        probe(DML, "UPDATE … RETURNING old and new")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET s = $1 WHERE id = 1 RETURNING id, s", s1())
            .rows(&[&[Some("1"), Some("{S1}")]])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT … RETURNING * decrypts every column")
            .attack_p("INSERT INTO {t} (id, s, note) VALUES (1, $1, 'n') RETURNING id, s, r, note", s1())
            .rows(&[&[Some("1"), Some("{S1}"), None, Some("n")]])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "SET col = DEFAULT and VALUES (DEFAULT)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack("UPDATE {t} SET s = DEFAULT WHERE id = 1")
            .attack("INSERT INTO {t} (id, s) VALUES (2, DEFAULT)")
            .expect(Expect::Encrypted(vec![enc("s", 1, None), enc("s", 2, None)]))
            .on(SIMPLE),
        probe(DML, "INSERT value from a scalar sub-select")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, (SELECT $1))", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT value computed by the server (concatenation)")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1 || 'tail')", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}tail"))])),
        probe(DML, "INSERT value through a function (lower)")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, lower($1))", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT value through COALESCE")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, COALESCE($1, 'x'))", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT value through CASE")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, CASE WHEN true THEN $1 END)", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT value from an array element")
            .attack("INSERT INTO {t} (id, s) VALUES (1, (ARRAY['{S1}'])[1])")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(DML, "INSERT … SELECT from unnest of an array literal")
            .attack("INSERT INTO {t} (id, s) SELECT 1, x FROM unnest(ARRAY['{S1}']) x")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(DML, "INSERT from a CTE constant")
            .attack_p("WITH c AS (SELECT $1::text AS x) INSERT INTO {t} (id, s) SELECT 1, x FROM c", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(DML, "INSERT … SELECT from generate_series with a constant")
            .attack_p("INSERT INTO {t} (id, s) SELECT g, $1 FROM generate_series(1, 2) g", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("s", 2, Some("{S1}"))])),
    ]
}

fn composite_probes() -> Vec<Probe> {
    let ty = "CREATE TYPE {x}_ty AS (id int, s text)";
    vec![
        probe(COMP, "INSERT … SELECT (x).* of a composite value")
            .direct(ty)
            .attack_p(
                "INSERT INTO {t} (id, s) SELECT (x).* FROM (SELECT ROW(1, $1)::{x}_ty AS x) q",
                vec![t("{S1}")],
            )
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(COMP, "VALUES ((ROW(…)::type).*)")
            .direct(ty)
            .attack("INSERT INTO {t} (id, s) VALUES ((ROW(1, '{S1}')::{x}_ty).*)")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(COMP, "SELECT (json_populate_record(NULL::type, $1)).*")
            .direct(ty)
            .attack_p(
                "INSERT INTO {t} (id, s) SELECT (json_populate_record(NULL::{x}_ty, $1)).*",
                vec![t("{\"id\": 1, \"s\": \"{S1}\"}")],
            )
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(
            COMP,
            "INSERT … SELECT * FROM json_populate_record(NULL::rules_table, $1)",
        )
        .attack_p(
            "INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, $1)",
            vec![t("{\"id\": 1, \"s\": \"{S1}\"}")],
        )
        .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(
            COMP,
            "INSERT … SELECT * FROM jsonb_populate_recordset(NULL::rules_table, $1)",
        )
        .attack_p(
            "INSERT INTO {t} SELECT * FROM jsonb_populate_recordset(NULL::{t}, $1)",
            vec![t("[{\"id\": 1, \"s\": \"\\\\x{S1}\"}]")],
        )
        // The JSON string is the text `\x…` (a bytea literal only to PostgreSQL's bytea input,
        // which never sees it: pgcloak encrypts the text).
        .expect(Expect::Safe(vec![enc("s", 1, Some("\\x{S1}"))])),
        probe(
            COMP,
            "INSERT … SELECT * FROM jsonb_populate_record of a plain type",
        )
        .direct(ty)
        .attack_p(
            "INSERT INTO {t} (id, s) SELECT * FROM jsonb_populate_record(NULL::{x}_ty, $1::jsonb)",
            vec![t("{\"id\": 1, \"s\": \"{S1}\"}")],
        )
        .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(COMP, "INSERT … SELECT (h).* from a plain table")
            .direct("CREATE TABLE {x}_h (id int, s text); INSERT INTO {x}_h VALUES (1, '{M1}')")
            .attack("INSERT INTO {t} (id, s) SELECT (h).* FROM {x}_h h")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(
            COMP,
            "SELECT (h).* from the rules table decrypts or is refused",
        )
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .attack("SELECT (h).s FROM {t} h")
        .rows(&[&[Some("{S1}")]])
        .expect(Expect::Safe(vec![])),
        probe(COMP, "SELECT (h).* of the rules table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT (h).* FROM {t} h")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "whole-row output of the rules table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT h FROM {t} h")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "row_to_json of the rules table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT row_to_json(h) FROM {t} h")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "to_jsonb of a sub-select over the rules table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT to_jsonb(q) FROM (SELECT s FROM {t}) q")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "encode(col, 'hex') of an encrypted column")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT encode(s, 'hex') FROM {t}")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "an encrypted column cast to text")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT s::text FROM {t}")
            .expect(Expect::Safe(vec![])),
        probe(COMP, "an encrypted column inside ARRAY[…]")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT ARRAY[s] FROM {t}")
            .expect(Expect::Safe(vec![])),
        probe(
            COMP,
            "an encrypted column through a set-returning sub-select in FROM",
        )
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .attack("SELECT q.x FROM (SELECT s AS x FROM {t} UNION ALL SELECT s FROM {t}) q LIMIT 1")
        .rows(&[&[Some("{S1}")]])
        .expect(Expect::Safe(vec![])),
        probe(COMP, "an encrypted column through COALESCE in the output")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT COALESCE(s, s) FROM {t}")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Safe(vec![])),
        probe(COMP, "string_agg over an encrypted column")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT string_agg(s, '\\x2c'::bytea) FROM {t}")
            .expect(Expect::Safe(vec![])),
    ]
}

/// Driver spread: the common forms through psql, psycopg and node-postgres too.
fn driver_probes() -> Vec<Probe> {
    let all = &[
        Driver::Psql,
        Driver::PyText,
        Driver::PyBin,
        Driver::PyPrep,
        Driver::Node,
    ];
    vec![
        probe(DML, "driver: INSERT with a parameter")
            .attack_p(
                "INSERT INTO {t} (id, s, r) VALUES ($1, $2, $3)",
                vec![P::I(1), t("{S1}"), t("{S2}")],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{S1}")),
                enc("r", 1, Some("{S2}")),
            ]))
            .on(all),
        probe(
            DML,
            "driver: UPDATE … WHERE on a deterministic column, RETURNING",
        )
        .setup_p(
            "INSERT INTO {t} (id, s) VALUES ($1, $2)",
            vec![P::I(1), t("{S1}")],
        )
        .attack_p(
            "UPDATE {t} SET r = $1 WHERE s = $2 RETURNING id, r",
            vec![t("{S2}"), t("{S1}")],
        )
        .rows(&[&[Some("1"), Some("{S2}")]])
        .expect(Expect::Encrypted(vec![enc("r", 1, Some("{S2}"))]))
        .on(all),
        probe(DDL, "driver: SET DEFAULT with plaintext bytes")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET DEFAULT convert_to('{S1}', 'UTF8')")
            .expect(Expect::Refused)
            .on(&[Driver::Psql, Driver::PyText, Driver::Node]),
        probe(COMP, "driver: json_populate_record of the rules table")
            .attack_p(
                "INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, $1)",
                vec![t("{\"id\": 1, \"s\": \"{S1}\"}")],
            )
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql, Driver::PyText, Driver::PyBin, Driver::Node]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_ddl_and_procedural() {
    let mut p = ddl_probes();
    p.extend(proc_probes());
    run_suite(p).await.assert_all_passed("ddl and procedural");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_dml_composite_and_drivers() {
    let mut p = dml_probes();
    p.extend(composite_probes());
    p.extend(driver_probes());
    run_suite(p)
        .await
        .assert_all_passed("dml, composite and drivers");
}
