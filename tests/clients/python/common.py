"""Shared pieces of the Python client scenarios: connection facts from the environment, the
rows every scenario writes, value comparison, the at-rest check over a direct connection,
and a checker that collects failures and turns them into the exit code.

Environment (set by tests/it/clients.rs):
  PGCLOAK_HOST, PGCLOAK_PORT, PGCLOAK_USER, PGCLOAK_PASSWORD, PGCLOAK_DB, PGCLOAK_SSLROOTCERT
      the proxy (verify-full TLS against PGCLOAK_SSLROOTCERT)
  DIRECT_PORT, DIRECT_USER, DIRECT_PASSWORD
      PostgreSQL itself, same host, database and CA, for the at-rest check
  PGCLOAK_EXPECT = "encrypted" (default) or "plain": with "plain" the tables hold the logical
      types and no rules are loaded, so the at-rest and refusal checks are skipped
"""

import datetime as dt
import decimal
import json
import os
import sys
import traceback
import uuid

COLUMNS = [
    "ssn", "email", "age", "visits", "score", "balance", "active", "born", "wake", "seen",
    "seen_tz", "ext_id", "profile", "photo", "small", "ratio", "doc",
]

UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"missing environment variable {name}")
    return value


def encrypted():
    return env("PGCLOAK_EXPECT", "encrypted") != "plain"


def proxy_facts():
    """Keyword arguments for libpq-style drivers (psycopg 3, psycopg2)."""
    return dict(
        host=env("PGCLOAK_HOST"), port=int(env("PGCLOAK_PORT")), user=env("PGCLOAK_USER"),
        password=env("PGCLOAK_PASSWORD"), dbname=env("PGCLOAK_DB"), sslmode="verify-full",
        sslrootcert=env("PGCLOAK_SSLROOTCERT"), connect_timeout=20,
    )


def direct_facts():
    facts = proxy_facts()
    facts.update(port=int(env("DIRECT_PORT")), user=env("DIRECT_USER"),
                 password=env("DIRECT_PASSWORD"))
    return facts


def rows(tag):
    """The three people every scenario inserts: full, mostly NULL, full with edge values."""
    ns = uuid.UUID("6f1d2b1e-3c4a-4e5f-8a9b-0c1d2e3f4a5b")
    return [
        dict(ssn=f"{tag}-100", email=f"{tag}.one@example.com", age=41, visits=9_000_000_001,
             score=3.25, balance=decimal.Decimal("12345.6789"), active=True,
             born=dt.date(1980, 2, 29), wake=dt.time(7, 30, 15, 500000),
             seen=dt.datetime(2024, 3, 1, 12, 34, 56, 789000),
             seen_tz=dt.datetime(2024, 3, 1, 12, 34, 56, 789000, tzinfo=UTC),
             ext_id=uuid.uuid5(ns, tag + "/1"), profile={"a": 1, "tags": ["x", "y"]},
             photo=b"\x00\x01\xfe\xffphoto", small=7, ratio=0.5, doc={"k": "v", "n": [1, 2]}),
        dict(ssn=f"{tag}-200", email=f"{tag}.two@example.com", age=None, visits=None,
             score=None, balance=None, active=None, born=None, wake=None, seen=None,
             seen_tz=None, ext_id=None, profile=None, photo=None, small=None, ratio=None,
             doc=None),
        dict(ssn=f"{tag}-300", email=f"{tag}.trois+é@example.com", age=-5, visits=-1,
             score=-0.125, balance=decimal.Decimal("-0.01"), active=False,
             born=dt.date(2001, 12, 31), wake=dt.time(23, 59, 59),
             seen=dt.datetime(1999, 12, 31, 23, 59, 59),
             seen_tz=dt.datetime(2000, 1, 1, 5, 29, 59, tzinfo=IST),
             ext_id=uuid.uuid5(ns, tag + "/3"), profile=[], photo=b"", small=-32768,
             ratio=-1.5, doc=[]),
    ]


UPDATED = dict(age=42, profile={"a": 2})


def updated_email(tag):
    return f"{tag}.one.new@example.com"


ORDER_AMOUNTS = [10, 25]


def normalize(column, value):
    """A driver's value in a comparable form (bytes for bytea, parsed JSON, ...)."""
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytearray):
        value = bytes(value)
    if column in ("profile", "doc") and isinstance(value, (str, bytes)):
        value = json.loads(value)
    if column == "ext_id" and isinstance(value, str):
        value = uuid.UUID(value)
    if column == "balance" and not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(str(value))
    return value


class Checker:
    """Collects failed checks; `finish()` prints them and exits non-zero if there are any."""

    def __init__(self, client):
        self.client = client
        self.failures = []
        self.checks = 0

    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures.append(what)
        return ok

    def equal(self, what, got, want):
        return self.check(got == want, f"{what}: got {got!r}, want {want!r}")

    def row(self, label, got, want):
        """`got`: mapping column → driver value; `want`: mapping column → expected value."""
        for column, expected in want.items():
            self.equal(f"{label}.{column}", normalize(column, got[column]), expected)

    def refused(self, what, error, sqlstate, expected_type):
        """A refused construct must raise the driver's own error type with SQLSTATE 0A000."""
        if error is None:
            self.check(False, f"{what}: no error raised")
            return
        self.check(isinstance(error, expected_type),
                   f"{what}: error type {type(error).__name__}, want {expected_type.__name__}")
        self.equal(f"{what}: SQLSTATE", sqlstate, "0A000")

    def run(self, scenario):
        try:
            scenario(self)
        except Exception:  # noqa: BLE001 - every unexpected error is a failed scenario
            self.failures.append("unexpected exception:\n" + traceback.format_exc())
        self.finish()

    def finish(self):
        if self.failures:
            print(f"{self.client}: {len(self.failures)} of {self.checks} checks FAILED")
            for f in self.failures:
                print(f"  - {f}")
            sys.exit(1)
        print(f"{self.client}: all {self.checks} checks passed")
        sys.exit(0)


def at_rest(chk, tag):
    """Reads the stored bytea directly: envelopes (0x01 ...), never the plaintext; NULL stays
    NULL; the deterministic join key is equal in both tables."""
    if not encrypted():
        return
    import psycopg

    want = {r["ssn"]: r for r in rows(tag)}
    with psycopg.connect(**direct_facts()) as conn:
        stored = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM compat_people WHERE client = %s", [tag]
        ).fetchall()
        orders = conn.execute(
            "SELECT person_ssn FROM compat_orders WHERE client = %s", [tag]
        ).fetchall()
    chk.equal("at rest: people rows", len(stored), 2)
    for row in stored:
        for column, value in zip(COLUMNS, row):
            if value is None:
                continue
            value = bytes(value)
            chk.check(len(value) > 6 and value[0] == 1 and value[1] in (1, 2),
                      f"at rest: {column} is not an envelope: {value[:8].hex()}")
        ssn, email = bytes(row[0]), bytes(row[1])
        for plain in [r["ssn"] for r in want.values()] + [updated_email(tag)]:
            chk.check(plain.encode() not in ssn and plain.encode() not in email,
                      f"at rest: plaintext {plain!r} visible")
    nulls = [r for r in stored if r[2] is None]
    chk.equal("at rest: the NULL row keeps NULLs", len(nulls), 1)
    ssns = {bytes(r[0]) for r in stored}
    chk.check(len(orders) == 2 and all(bytes(o[0]) in ssns for o in orders),
              "at rest: orders.person_ssn is not the deterministic ciphertext of people.ssn")


def copied_at_rest(chk, tag, rows):
    """The rows a scenario wrote with COPY (client = tag; rows of (client, note, ssn, email)):
    every stored ssn and email is an envelope and no ssn or email is visible."""
    if not encrypted():
        return
    import psycopg

    with psycopg.connect(**direct_facts()) as conn:
        stored = conn.execute(
            "SELECT ssn, email FROM compat_people WHERE client = %s", [tag]).fetchall()
    plain_values = [v for r in rows for v in r[2:]]
    chk.equal("at rest: copied rows", len(stored), len(rows))
    for row in stored:
        for value in row:
            value = bytes(value)
            chk.check(len(value) > 6 and value[0] == 1 and value[1] == 2,
                      f"at rest: a copied value is not an envelope: {value[:8].hex()}")
            for plain in plain_values:
                chk.check(plain.encode() not in value, f"at rest: copied {plain!r} visible")


def describe_exception(e):
    return f"{type(e).__name__}: {e}"
