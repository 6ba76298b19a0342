"""psycopg2 scenario: parameters are interpolated client-side, so every value reaches the
proxy as a literal (often with a cast, e.g. '...'::timestamp) in a simple Query."""

import psycopg2
import psycopg2.errors
import psycopg2.extras

import common
from common import COLUMNS, Checker

TAG = "psycopg2"
INSERT = (f"INSERT INTO compat_people (client, note, {', '.join(COLUMNS)}) "
          f"VALUES (%s, %s, {', '.join(['%s'] * len(COLUMNS))}) RETURNING id")
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM compat_people WHERE ssn = %s"


def params(row):
    values = dict(row)
    for column in ("profile", "doc"):
        if row[column] is not None:
            values[column] = psycopg2.extras.Json(row[column])
    return [values[c] for c in COLUMNS]


def scenario(chk):
    psycopg2.extras.register_uuid()
    people = common.rows(TAG)
    conn = psycopg2.connect(**common.proxy_facts())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            ids = []
            for i, row in enumerate(people):
                cur.execute(INSERT, [TAG, f"note {i} ü", *params(row)])
                ids.append(cur.fetchone()[0])
            chk.equal("inserted ids", len(set(ids)), 3)
            psycopg2.extras.execute_values(
                cur, "INSERT INTO compat_orders (client, person_ssn, amount) VALUES %s",
                [(TAG, people[0]["ssn"], a) for a in common.ORDER_AMOUNTS])
            for row in people:
                cur.execute(SELECT, [row["ssn"]])
                got = [dict(zip(["id"] + COLUMNS, r)) for r in cur.fetchall()]
                if chk.equal(f"rows for ssn {row['ssn']}", len(got), 1):
                    chk.row(row["ssn"], got[0], row)
            new_email = common.updated_email(TAG)
            cur.execute("UPDATE compat_people SET email = %s, age = %s, profile = %s WHERE ssn = %s",
                        [new_email, common.UPDATED["age"],
                         psycopg2.extras.Json(common.UPDATED["profile"]), people[0]["ssn"]])
            chk.equal("update rowcount", cur.rowcount, 1)
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM compat_people WHERE email IN (%s, %s)",
                        [new_email, "nobody@example.com"])
            got = [dict(zip(COLUMNS, r)) for r in cur.fetchall()]
            if chk.equal("rows for the new email", len(got), 1):
                chk.row("updated", got[0], dict(people[0], email=new_email, **common.UPDATED))
            cur.execute("DELETE FROM compat_people WHERE ssn = %s", [people[2]["ssn"]])
            chk.equal("delete rowcount", cur.rowcount, 1)
            cur.execute("SELECT count(*) FROM compat_people WHERE client = %s", [TAG])
            chk.equal("people left", cur.fetchone()[0], 2)
            # psycopg2 adapts a list to ARRAY['…', '…'].
            cur.execute("SELECT count(*) FROM compat_people WHERE ssn = ANY(%s)",
                        [[people[0]["ssn"], people[1]["ssn"], "nobody"]])
            chk.equal("= ANY(%s) with a list", cur.fetchone()[0], 2)
            cur.execute("SELECT p.ssn, p.email, o.amount FROM compat_people p "
                        "JOIN compat_orders o ON o.person_ssn = p.ssn "
                        "WHERE p.client = %s ORDER BY o.amount", [TAG])
            chk.equal("join", cur.fetchall(),
                      [(people[0]["ssn"], new_email, a) for a in common.ORDER_AMOUNTS])
            if common.encrypted():
                err = None
                try:
                    cur.execute("SELECT id FROM compat_people WHERE ssn LIKE %s", ["1%"])
                except psycopg2.Error as e:
                    err = e
                chk.refused("LIKE", err, getattr(err, "pgcode", None),
                            psycopg2.errors.FeatureNotSupported)
            cur.execute("SELECT 1")
            chk.equal("session usable after the refusal", cur.fetchone()[0], 1)
    finally:
        conn.close()
    common.at_rest(chk, TAG)


if __name__ == "__main__":
    Checker(TAG).run(scenario)
