"""tests/peer: runs psycopg 3's own test suite once, in one configuration, on a fresh stack.

Configurations (each on its own throwaway PostgreSQL from `pgcloak devdb`):
  direct   psycopg -> PostgreSQL, database `plain`
  plain    psycopg -> pgcloak serve -> PostgreSQL, database `plain` (no rules file names it)
  cloaked  psycopg -> pgcloak serve -> PostgreSQL, database `cloaked` (a rules file names it,
           with a table the suite never uses: every statement goes through the analysis)
Both legs use TLS: the DSN has sslmode=verify-full and the devdb's CA; pgcloak's upstream is
verify-full too. The suite runs as the devdb superuser (psycopg's tests create roles,
extensions and types).

Outcomes go to OUT/results.json ({test id: {outcome, message, duration}}), written from the
JSON lines of peer_plugin.py, so a crash or a hang loses nothing: a test pytest-timeout stops
is a failure ("Timeout ..."); if pytest dies or stops making progress, the test it was running
is recorded as `hung` and pytest is restarted on the tests not yet run. Tests collected but
never run are `not-run`.

Usage: run.py --config direct|plain|cloaked --out DIR --pgcloak BIN --src PSYCOPG_SRC
              [--timeout SECONDS] [--stall SECONDS] [--select PATH ...] [--deselect ID ...]
              [--ids-file FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = ("direct", "plain", "cloaked")
# Deselected everywhere: psycopg's `mypy` tests run the type checker on sample files (nothing
# to do with the server), and its `refcount` tests (marked "sometimes flaky" by psycopg) count
# Python objects around a query: they fail at random by one object in every configuration.
ALWAYS_DESELECT_MARK = "not mypy and not refcount"
MAX_RESTARTS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, limit: float = 60) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port} within {limit}s")


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition("=")
        env[k] = shlex.split(v)[0] if v else ""
    return env


def stop(proc: subprocess.Popen | None, limit: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Stack:
    """A devdb and, unless direct, `pgcloak serve` in front of it."""

    def __init__(self, config: str, out: Path, pgcloak: str):
        self.config, self.out, self.pgcloak = config, out, pgcloak
        self.devdb = self.serve = None

    def __enter__(self) -> "Stack":
        env_file = self.out / "stack.env"
        env_file.unlink(missing_ok=True)
        self.proxy_port = free_port()
        self.devdb = subprocess.Popen(
            [self.pgcloak, "devdb", "--env-file", str(env_file),
             "--listen", f"127.0.0.1:{self.proxy_port}"],
            stdout=open(self.out / "devdb.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + 180
        while not env_file.exists():
            if self.devdb.poll() is not None:
                raise RuntimeError(f"pgcloak devdb exited ({self.out / 'devdb.log'})")
            if time.monotonic() > end:
                raise RuntimeError("pgcloak devdb not ready within 180s")
            time.sleep(0.2)
        self.env = read_env(env_file)
        if self.config == "direct":
            port, db = int(self.env["PEER_DIRECT_PORT"]), self.env["PEER_PLAIN_DATABASE"]
        else:
            env = dict(os.environ, RUST_LOG=os.environ.get("PEER_RUST_LOG", "warn"),
                       PGCLOAK_CONTROL_PASSWORD=self.env["PGCLOAK_CONTROL_PASSWORD"])
            self.serve = subprocess.Popen(
                [self.pgcloak, "serve", "-c", self.env["PEER_CONFIG"]], env=env,
                stdout=open(self.out / "pgcloak.log", "ab"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait_port(self.proxy_port, self.serve, "pgcloak serve")
            port = self.proxy_port
            db = self.env[
                "PEER_PLAIN_DATABASE" if self.config == "plain" else "PEER_CLOAKED_DATABASE"
            ]
        self.dsn = (
            f"host=localhost port={port} dbname={db} user={self.env['PEER_USER']} "
            f"password={self.env['PEER_PASSWORD']} sslmode=verify-full "
            f"sslrootcert={self.env['PEER_CA']}"
        )
        return self

    def __exit__(self, *exc) -> None:
        stop(self.serve)
        stop(self.devdb)


def read_log(path: Path):
    collected: list[str] = []
    started: list[str] = []
    done: dict[str, dict] = {}
    if not path.exists():
        return collected, started, done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec["ev"] == "collected" and not collected:
            collected = rec["ids"]
        elif rec["ev"] == "start":
            started.append(rec["id"])
        elif rec["ev"] == "done":
            done[rec["id"]] = rec
    return collected, started, done


def run_pytest(args, stack: Stack, log: Path) -> None:
    """pytest until every collected test has an outcome (restarting after a crash or stall)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PSYCOPG_TEST_DSN=stack.dsn,
        PYTHONPATH=str(HERE),
        PYTHONDONTWRITEBYTECODE="1",
    )
    base = [
        sys.executable, "-m", "pytest", "-p", "peer_plugin", "-p", "no:randomly",
        f"--peer-log={log}", f"--timeout={args.timeout}", "-m", ALWAYS_DESELECT_MARK,
        "-q", "-o", "console_output_style=classic", "--tb=line", "-rN",
    ]
    for d in args.deselect:
        base += ["--deselect", d]
    targets = list(args.select)
    if args.ids_file:
        targets += [l for l in Path(args.ids_file).read_text().splitlines() if l.strip()]
    restarts, had = 0, -1
    pytest_out = open(args.out / "pytest.log", "ab")
    while True:
        cache = args.out / f"cache-{restarts}"
        cmd = base + ["-o", f"cache_dir={cache}"] + targets
        proc = subprocess.Popen(cmd, cwd=args.src, env=env, stdout=pytest_out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        last_size, last_change = -1, time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(1)
                size = log.stat().st_size if log.exists() else 0
                if size != last_size:
                    last_size, last_change = size, time.monotonic()
                elif time.monotonic() - last_change > args.stall:
                    print(f"[{args.config}] no progress for {args.stall}s: killing pytest",
                          flush=True)
                    stop(proc, limit=10)
        finally:
            stop(proc, limit=10)
        collected, started, done = read_log(log)
        unfinished = [t for t in started if t not in done]
        for t in unfinished:
            with open(log, "a") as f:
                f.write(json.dumps({"ev": "done", "id": t, "outcome": "hung",
                                    "message": f"pytest exited ({proc.returncode}) or stalled "
                                               "while this test ran", "duration": 0}) + "\n")
        remaining = [t for t in collected if t not in done and t not in unfinished]
        if proc.returncode in (0, 1, 5) and not unfinished:
            return
        if not remaining or restarts >= MAX_RESTARTS or len(done) == had:
            return
        had = len(done)
        restarts += 1
        print(f"[{args.config}] pytest ended ({proc.returncode}); restart {restarts} with "
              f"{len(remaining)} tests left", flush=True)


def main() -> int:
    # Stop cleanly (pytest, pgcloak serve and the devdb with it) on SIGTERM, and on SIGINT even
    # when started in the background by a script (which ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=CONFIGS, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pgcloak", required=True)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--stall", type=int, default=240)
    ap.add_argument("--select", nargs="*", default=[])
    ap.add_argument("--deselect", action="append", default=[])
    ap.add_argument("--ids-file")
    args = ap.parse_args()
    args.out, args.src = args.out.resolve(), args.src.resolve()
    args.pgcloak = str(Path(args.pgcloak).resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "events.jsonl"
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    with Stack(args.config, args.out, args.pgcloak) as stack:
        run_pytest(args, stack, log)
    collected, _, done = read_log(log)
    results = {}
    for t in collected:
        rec = done.get(t)
        results[t] = (
            {"outcome": rec["outcome"], "message": rec["message"], "duration": rec["duration"]}
            if rec else {"outcome": "not-run", "message": "", "duration": 0}
        )
    for t, rec in done.items():  # tests pytest ran but did not list (should not happen)
        results.setdefault(t, {"outcome": rec["outcome"], "message": rec["message"],
                               "duration": rec["duration"]})
    (args.out / "results.json").write_text(json.dumps(results, indent=0, sort_keys=True))
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    wall = time.monotonic() - t0
    (args.out / "summary.json").write_text(json.dumps({"counts": counts, "wall": wall}))
    print(f"[{args.config}] {len(results)} tests in {wall:.0f}s: "
          + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), flush=True)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
