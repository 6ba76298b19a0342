"""Runner of the adversarial probe suite (tests/it/adversarial.rs) for psycopg 3.

Reads a JSON list of probe instances from the file named by argv[1]:
  [{"id": n, "mode": "text"|"binary"|"prepare", "steps": [{"sql": ..., "params": [...]}]}]
runs each instance's steps through pgcloak in one autocommit session (SQL `$n` placeholders
become psycopg's `%(pn)s`, or `%(pn)b` in binary mode), and prints a JSON list of
  {"id": n, "steps": [{"ok": true, "rows": [[text|null]]} | {"ok": false, "code", "message", "detail"}]}
Values are rendered as PostgreSQL's text output would show them for the common types.
"""
import datetime
import decimal
import json
import os
import re
import sys
import uuid

import psycopg


def conninfo():
    return dict(
        host="localhost",
        hostaddr="127.0.0.1",
        port=os.environ["PGCLOAK_PORT"],
        user=os.environ["PGCLOAK_USER"],
        password=os.environ["PGCLOAK_PASSWORD"],
        dbname=os.environ["PGCLOAK_DB"],
        sslmode="verify-full",
        sslrootcert=os.environ["PGCLOAK_SSLROOTCERT"],
        connect_timeout=20,
    )


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, (decimal.Decimal, int, float, uuid.UUID, str)):
        return str(v)
    return str(v)


PLACEHOLDER = re.compile(r"\$(\d+)")


def convert(sql, nparams, binary):
    if nparams == 0:
        return sql
    sql = sql.replace("%", "%%")
    kind = "b" if binary else "s"
    return PLACEHOLDER.sub(lambda m: "%%(p%s)%s" % (m.group(1), kind), sql)


def run_instance(inst):
    mode = inst["mode"]
    out = []
    try:
        conn = psycopg.connect(**conninfo(), autocommit=True)
    except Exception as e:  # noqa: BLE001
        return [{"ok": False, "code": "connect", "message": str(e)} for _ in inst["steps"]]
    with conn:
        for step in inst["steps"]:
            params = step["params"]
            sql = convert(step["sql"], len(params), mode == "binary")
            args = {"p%d" % (i + 1): v for i, v in enumerate(params)} if params else None
            kw = {}
            if mode == "binary":
                kw["binary"] = True
            if mode == "prepare":
                kw["prepare"] = True
            try:
                cur = conn.cursor()
                cur.execute(sql, args, **kw)
                rows = []
                while True:
                    if cur.description is not None:
                        rows.extend([[text(c) for c in r] for r in cur.fetchall()])
                    if not cur.nextset():
                        break
                out.append({"ok": True, "rows": rows})
            except psycopg.Error as e:
                diag = e.diag
                out.append(
                    {
                        "ok": False,
                        "code": e.sqlstate or "client",
                        "message": diag.message_primary or str(e),
                        "detail": diag.message_detail or "",
                    }
                )
            except Exception as e:  # noqa: BLE001
                out.append({"ok": False, "code": "client", "message": repr(e), "detail": ""})
    return out


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    results = [{"id": inst["id"], "steps": run_instance(inst)} for inst in spec]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
