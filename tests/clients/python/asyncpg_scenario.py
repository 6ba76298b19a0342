"""asyncpg scenario: every statement is prepared (named), described, and run with binary
parameters and results; executemany pipelines its Binds."""

import asyncio
import json
import ssl

import asyncpg

import common
from common import COLUMNS, Checker

TAG = "asyncpg"
INSERT = (f"INSERT INTO compat_people (client, note, {', '.join(COLUMNS)}) "
          f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 3))}) RETURNING id")
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM compat_people WHERE ssn = $1"


def params(row):
    values = dict(row)
    for column in ("profile", "doc"):
        if row[column] is not None:
            values[column] = json.dumps(row[column])
    return [values[c] for c in COLUMNS]


async def connect():
    ctx = ssl.create_default_context(cafile=common.env("PGCLOAK_SSLROOTCERT"))
    return await asyncpg.connect(
        host=common.env("PGCLOAK_HOST"), port=int(common.env("PGCLOAK_PORT")),
        user=common.env("PGCLOAK_USER"), password=common.env("PGCLOAK_PASSWORD"),
        database=common.env("PGCLOAK_DB"), ssl=ctx, timeout=20)


async def scenario_async(chk):
    people = common.rows(TAG)
    conn = await connect()
    try:
        ids = [await conn.fetchval(INSERT, TAG, f"note {i} ü", *params(row))
               for i, row in enumerate(people)]
        chk.equal("inserted ids", len(set(ids)), 3)
        await conn.executemany(
            "INSERT INTO compat_orders (client, person_ssn, amount) VALUES ($1, $2, $3)",
            [(TAG, people[0]["ssn"], a) for a in common.ORDER_AMOUNTS])
        stmt = await conn.prepare(SELECT)
        for _ in range(2):  # the second round reuses the prepared statement
            for row in people:
                got = await stmt.fetch(row["ssn"])
                if chk.equal(f"rows for ssn {row['ssn']}", len(got), 1):
                    chk.row(row["ssn"], dict(got[0]), row)
        new_email = common.updated_email(TAG)
        status = await conn.execute(
            "UPDATE compat_people SET email = $1, age = $2, profile = $3 WHERE ssn = $4",
            new_email, common.UPDATED["age"], json.dumps(common.UPDATED["profile"]),
            people[0]["ssn"])
        chk.equal("update status", status, "UPDATE 1")
        got = await conn.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM compat_people WHERE email = $1", new_email)
        if chk.equal("rows for the new email", len(got), 1):
            chk.row("updated", dict(got[0]), dict(people[0], email=new_email, **common.UPDATED))
        status = await conn.execute("DELETE FROM compat_people WHERE ssn = $1", people[2]["ssn"])
        chk.equal("delete status", status, "DELETE 1")
        left = await conn.fetchval("SELECT count(*) FROM compat_people WHERE client = $1", TAG)
        chk.equal("people left", left, 2)
        # A list as one binary array parameter (text[] from ParameterDescription).
        found = await conn.fetchval(
            "SELECT count(*) FROM compat_people WHERE ssn = ANY($1::text[])",
            [people[0]["ssn"], people[1]["ssn"], "nobody"])
        chk.equal("= ANY($1) with a list", found, 2)
        joined = await conn.fetch(
            "SELECT p.ssn, p.email, o.amount FROM compat_people p "
            "JOIN compat_orders o ON o.person_ssn = p.ssn "
            "WHERE p.client = $1 ORDER BY o.amount", TAG)
        chk.equal("join", [tuple(r) for r in joined],
                  [(people[0]["ssn"], new_email, a) for a in common.ORDER_AMOUNTS])
        if common.encrypted():
            err = None
            try:
                await conn.fetch("SELECT id FROM compat_people WHERE ssn LIKE '1%'")
            except asyncpg.PostgresError as e:
                err = e
            chk.refused("LIKE", err, getattr(err, "sqlstate", None),
                        asyncpg.exceptions.FeatureNotSupportedError)
            err = None
            try:
                await conn.fetch("SELECT id FROM compat_people WHERE ssn LIKE $1", "1%")
            except asyncpg.PostgresError as e:
                err = e
            chk.refused("LIKE $1", err, getattr(err, "sqlstate", None),
                        asyncpg.exceptions.FeatureNotSupportedError)
        chk.equal("session usable after the refusal", await conn.fetchval("SELECT 1"), 1)
        await copy_records(chk, conn)
    finally:
        await conn.close()
    common.at_rest(chk, TAG)


async def copy_records(chk, conn):
    """asyncpg's copy_records_to_table (binary COPY): stored encrypted, found by the
    deterministic column, read back decrypted by copy_from_query (text COPY)."""
    tag = f"{TAG}-copy"
    rows = [(tag, f"copy-{i}", f"{TAG}-copy-ssn-{i}", f"copy{i}@example.com") for i in range(3)]
    await conn.copy_records_to_table(
        "compat_people", records=rows, columns=["client", "note", "ssn", "email"])
    found = await conn.fetchval("SELECT email FROM compat_people WHERE ssn = $1", rows[2][2])
    chk.equal("COPY FROM (binary): found by ssn", found, rows[2][3])
    import io
    out = io.BytesIO()
    await conn.copy_from_query(
        f"SELECT client, note, ssn, email FROM compat_people WHERE client = '{tag}' "
        "ORDER BY note", output=out, format="csv")
    got = [tuple(line.split(",")) for line in out.getvalue().decode().splitlines()]
    chk.equal("COPY TO (csv): decrypted rows", got, rows)
    common.copied_at_rest(chk, tag, rows)


if __name__ == "__main__":
    Checker(TAG).run(lambda chk: asyncio.run(scenario_async(chk)))
