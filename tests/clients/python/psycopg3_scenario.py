"""psycopg 3 scenario (server-side binding, extended protocol). `--pipeline` runs the writes
and reads in pipeline mode (many Parse/Bind/Execute before one Sync)."""

import contextlib
import sys

import psycopg
from psycopg.types.json import Json, Jsonb

import common
from common import COLUMNS, Checker

PIPELINE = "--pipeline" in sys.argv
TAG = "psycopg3-pipeline" if PIPELINE else "psycopg3"

INSERT = (f"INSERT INTO compat_people (client, note, {', '.join(COLUMNS)}) "
          f"VALUES (%s, %s, {', '.join(['%s'] * len(COLUMNS))}) RETURNING id")
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM compat_people WHERE ssn = %s"


def params(row):
    values = dict(row)
    values["profile"] = None if row["profile"] is None else Jsonb(row["profile"])
    values["doc"] = None if row["doc"] is None else Json(row["doc"])
    return [values[c] for c in COLUMNS]


def write(conn, people):
    """Queues the inserts; returns the cursors whose RETURNING id is still to be fetched."""
    cursors = []
    for i, row in enumerate(people):
        cur = conn.cursor()
        cur.execute(INSERT, [TAG, f"note {i} ü", *params(row)])
        cursors.append(cur)
    for amount in common.ORDER_AMOUNTS:
        conn.execute("INSERT INTO compat_orders (client, person_ssn, amount) VALUES (%s, %s, %s)",
                     [TAG, people[0]["ssn"], amount])
    return cursors


def find_all(conn, people, binary):
    """One SELECT by ssn per person, each on its own cursor (so a pipeline can queue them)."""
    cursors = []
    for row in people:
        cur = conn.cursor(binary=binary)
        cur.execute(SELECT, [row["ssn"]])
        cursors.append(cur)
    return cursors


def maybe_pipeline(conn):
    return conn.pipeline() if PIPELINE else contextlib.nullcontext()


def scenario(chk):
    people = common.rows(TAG)
    with psycopg.connect(**common.proxy_facts(), autocommit=True) as conn:
        with maybe_pipeline(conn):
            cursors = write(conn, people)
        ids = [c.fetchone()[0] for c in cursors]
        chk.equal("inserted ids", len(set(ids)), 3)
        # Find by a deterministic column, text and binary results.
        for binary in (False, True):
            with maybe_pipeline(conn):
                cursors = find_all(conn, people, binary)
            for row, cur in zip(people, cursors):
                got = [dict(zip(["id"] + COLUMNS, r)) for r in cur.fetchall()]
                if chk.equal(f"rows for ssn {row['ssn']} (binary={binary})", len(got), 1):
                    chk.row(f"{row['ssn']} binary={binary}", got[0], row)
        with conn.cursor() as cur:
            # Update an encrypted column and find it by its new value.
            new_email = common.updated_email(TAG)
            cur.execute("UPDATE compat_people SET email = %s, age = %s, profile = %s WHERE ssn = %s",
                        [new_email, common.UPDATED["age"], Jsonb(common.UPDATED["profile"]),
                         people[0]["ssn"]])
            chk.equal("update rowcount", cur.rowcount, 1)
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM compat_people WHERE email = %s",
                        [new_email])
            got = [dict(zip(COLUMNS, r)) for r in cur.fetchall()]
            want = dict(people[0], email=new_email, **common.UPDATED)
            if chk.equal("rows for the new email", len(got), 1):
                chk.row("updated", got[0], want)
            # Delete one.
            cur.execute("DELETE FROM compat_people WHERE ssn = %s", [people[2]["ssn"]])
            chk.equal("delete rowcount", cur.rowcount, 1)
            cur.execute("SELECT count(*) FROM compat_people WHERE client = %s", [TAG])
            chk.equal("people left", cur.fetchone()[0], 2)
            # Join on the shared deterministic key.
            cur.execute("SELECT p.ssn, p.email, o.amount FROM compat_people p "
                        "JOIN compat_orders o ON o.person_ssn = p.ssn "
                        "WHERE p.client = %s ORDER BY o.amount", [TAG])
            chk.equal("join", cur.fetchall(),
                      [(people[0]["ssn"], new_email, a) for a in common.ORDER_AMOUNTS])
            # A refused construct raises psycopg's own error with SQLSTATE 0A000.
            if common.encrypted():
                err = None
                try:
                    cur.execute("SELECT id FROM compat_people WHERE ssn LIKE '1%'")
                except psycopg.Error as e:
                    err = e
                chk.refused("LIKE", err, getattr(err, "sqlstate", None),
                            psycopg.errors.FeatureNotSupported)
            cur.execute("SELECT 1")
            chk.equal("session usable after the refusal", cur.fetchone()[0], 1)
            if not PIPELINE:
                copy_rows(chk, cur)
    common.at_rest(chk, TAG)


def copy_rows(chk, cur):
    """psycopg's COPY (text format): rows written with write_row are stored encrypted, found by
    their deterministic column, and read back decrypted with COPY TO."""
    tag = f"{TAG}-copy"
    rows = [(tag, f"copy-{i}", f"{TAG}-copy-ssn-{i}", f"copy{i}@example.com") for i in range(3)]
    with cur.copy("COPY compat_people (client, note, ssn, email) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute("SELECT email FROM compat_people WHERE ssn = %s", [rows[1][2]])
    chk.equal("COPY FROM: found by ssn", cur.fetchall(), [(rows[1][3],)])
    got = []
    with cur.copy("COPY (SELECT client, note, ssn, email FROM compat_people WHERE client = %s "
                  "ORDER BY note) TO STDOUT", [tag]) as copy:
        got = [tuple(r) for r in copy.rows()]
    chk.equal("COPY TO: decrypted rows", got, rows)
    common.copied_at_rest(chk, tag, rows)


if __name__ == "__main__":
    Checker(TAG).run(scenario)
