"""tests/peer: a pytest plugin that records every test's outcome as it happens.

Loaded by run.py with `-p peer_plugin`. `--peer-log FILE` appends one JSON line per event:
{"ev": "collected", "ids": [...]} after collection, {"ev": "start", "id": ...} before a test
and {"ev": "done", "id": ..., "outcome": ..., "message": ...} after its teardown. Tests already
in FILE (done, or started but never finished: the run died or hung on them) are deselected, so
run.py can restart pytest after a crash and carry on with the rest. Outcomes: passed, failed,
error (setup or teardown failed), skipped, xfailed, xpassed; a pytest-timeout expiry is a
failure whose message starts with "Timeout". See pytest_collection_finish for the one change
it makes to the suite (TLS through psycopg's TCP-tunnel fixture).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

_state: dict = {"fh": None, "reports": {}}


def pytest_addoption(parser):
    parser.addoption("--peer-log", default=None, help="append outcomes to this JSONL file")


def _emit(rec: dict) -> None:
    fh = _state["fh"]
    if fh is not None:
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _seen(path: str) -> set[str]:
    seen: set[str] = set()
    if not os.path.exists(path):
        return seen
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if rec.get("ev") in ("start", "done"):
                seen.add(rec["id"])
    return seen


def pytest_configure(config):
    path = config.getoption("--peer-log")
    if path:
        _state["seen"] = _seen(path)
        _state["fh"] = open(path, "a")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if _state["fh"] is None:
        return
    seen = _state["seen"]
    if not seen:
        _emit({"ev": "collected", "ids": [i.nodeid for i in items]})
    keep = [i for i in items if i.nodeid not in seen]
    drop = [i for i in items if i.nodeid in seen]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session):
    """The one adaptation of psycopg's suite: its `proxy` fixture (a pproxy TCP tunnel, used to
    cut connections) forces sslmode=disable on the tunnelled DSN. A TCP tunnel carries TLS as
    well, and neither PostgreSQL here nor pgcloak accepts plaintext, so keep the DSN's sslmode
    (the certificates name 127.0.0.1, the tunnel's address)."""
    fix_proxy = sys.modules.get("tests.fix_proxy")
    if fix_proxy is None or getattr(fix_proxy.Proxy, "_peer_patched", False):
        return
    from psycopg import conninfo

    orig = fix_proxy.Proxy.__init__

    def __init__(self, server_dsn):
        orig(self, server_dsn)
        sslmode = conninfo.conninfo_to_dict(server_dsn).get("sslmode")
        if sslmode:
            cdict = conninfo.conninfo_to_dict(self.client_dsn)
            cdict["sslmode"] = sslmode
            self.client_dsn = conninfo.make_conninfo("", **cdict)

    fix_proxy.Proxy.__init__ = __init__
    fix_proxy.Proxy._peer_patched = True


def pytest_runtest_logstart(nodeid, location):
    _state["reports"][nodeid] = []
    _emit({"ev": "start", "id": nodeid})


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])[:500]
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)[:500]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:500]
    return str(report.longrepr or "")[:500]


def pytest_runtest_logreport(report):
    _state["reports"].setdefault(report.nodeid, []).append(report)


def pytest_runtest_logfinish(nodeid, location):
    reports = _state["reports"].pop(nodeid, [])
    outcome, message = "passed", ""
    by_when = {r.when: r for r in reports}
    setup, call, teardown = (by_when.get(w) for w in ("setup", "call", "teardown"))
    if setup is not None and setup.failed:
        outcome, message = "error", _message(setup)
    elif setup is not None and setup.skipped:
        outcome, message = ("xfailed" if hasattr(setup, "wasxfail") else "skipped"), _message(setup)
    elif call is not None:
        if hasattr(call, "wasxfail"):
            outcome = "xfailed" if call.skipped else "xpassed"
            message = _message(call)
        elif call.failed:
            outcome, message = "failed", _message(call)
        elif call.skipped:
            outcome, message = "skipped", _message(call)
    if outcome in ("passed", "xpassed") and teardown is not None and teardown.failed:
        outcome, message = "error", _message(teardown)
    duration = sum(r.duration for r in reports)
    _emit(
        {
            "ev": "done",
            "id": nodeid,
            "outcome": outcome,
            "message": message,
            "duration": round(duration, 3),
        }
    )


def pytest_unconfigure(config):
    fh = _state["fh"]
    if fh is not None:
        fh.close()
        _state["fh"] = None
