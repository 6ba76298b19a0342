"""tests/peer: runs node-postgres' own integration tests (packages/pg/test/integration, pure
JavaScript client) once, in one configuration (direct, plain, cloaked: see run.py), on a fresh
stack from `pgcloak devdb`.

The tests are those of the brianc/node-postgres commit in node-source, extracted from a git
copy ($PEER_NODE_GIT, default: the local mirror) next to the pg 8.23.1 package from npm
(tests/peer/node/package.json: `npm ci` there); they read the usual PG* variables. TLS:
PGSSLMODE=verify-full and NODE_EXTRA_CA_CERTS (the devdb CA). node-postgres' runner stops a
file at its first failing test, so the unit compared is a file: passed (exit 0), failed (with
the first failing test's name and error) or hung (killed after --timeout seconds).
Writes OUT/results.json in run.py's format, for compare.py.
Usage: node_run.py --config direct|plain|cloaked --out DIR --pgcloak BIN [--timeout S]
                   [--ids-file FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from run import CONFIGS, Stack

HERE = Path(__file__).resolve().parent


def source_commit() -> str:
    for line in (HERE / "node-source").read_text().splitlines():
        if line.startswith("commit="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("node-source has no commit= line")


def prepare() -> Path:
    """tests/peer/.work/node-pg-COMMIT/pg: npm's pg 8.23.1 with the commit's test/ beside lib/."""
    commit = source_commit()
    work = HERE / ".work" / f"node-pg-{commit}"
    if (work / ".complete").exists():
        return work / "pg"
    mods = HERE / "node" / "node_modules"
    lock = HERE / "node" / "package-lock.json"
    stamp = mods / ".lock.sha256"
    import hashlib

    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=HERE / "node", check=True, stdout=sys.stderr)
        stamp.write_text(want)
    git = os.environ.get("PEER_NODE_GIT", "/work/.mirror/brianc+node-postgres/repo")
    if subprocess.run(["git", f"--git-dir={git}", "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True).returncode != 0:
        raise SystemExit(f"node-postgres commit {commit} not found in {git}; set PEER_NODE_GIT "
                         "to a git copy of the brianc/node-postgres repository that has it")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    (work / "pg").mkdir(parents=True)
    for part in ("lib", "esm", "package.json"):
        subprocess.run(["cp", "-r", str(mods / "pg" / part), str(work / "pg")], check=True)
    (work / "node_modules").symlink_to(mods)
    archive = subprocess.run(["git", f"--git-dir={git}", "archive", commit, "packages/pg/test"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "--strip-components=2", "-C", str(work / "pg")],
                   input=archive, check=True)
    (work / ".complete").touch()
    return work / "pg"


def outcome_of(proc_rc: int | None, out: str) -> tuple[str, str]:
    if proc_rc is None:
        return "hung", "killed after the timeout"
    if proc_rc == 0:
        return "passed", ""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("FAILED!"):
            rest = [l.strip() for l in lines[i + 1:] if l.strip()]
            return "failed", f"{line.strip()[:-len('FAILED!')].strip()}: {rest[0] if rest else ''}"
        if "did not complete withint" in line:
            return "failed", line.strip()
    tail = [l.strip() for l in lines if l.strip()][-3:]
    return "failed", f"exit {proc_rc}: " + " / ".join(tail)


def main() -> int:
    # Stop cleanly (pytest, pgcloak serve and the devdb with it) on SIGTERM, and on SIGINT even
    # when started in the background by a script (which ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=CONFIGS, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pgcloak", required=True)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--ids-file", help="run only these files (one test id a line)")
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.pgcloak = str(Path(args.pgcloak).resolve())
    pg = prepare()
    files = sorted(str(p.relative_to(pg)) for p in (pg / "test" / "integration").rglob("*-tests.js"))
    if args.ids_file:
        wanted = set(Path(args.ids_file).read_text().split())
        files = [f for f in files if f in wanted]
    results = {}
    t0 = time.monotonic()
    with Stack(args.config, args.out, args.pgcloak) as stack:
        port = stack.proxy_port if args.config != "direct" else int(stack.env["PEER_DIRECT_PORT"])
        db = stack.env["PEER_CLOAKED_DATABASE" if args.config == "cloaked" else "PEER_PLAIN_DATABASE"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST="localhost", PGPORT=str(port), PGDATABASE=db,
                   PGUSER=stack.env["PEER_USER"], PGPASSWORD=stack.env["PEER_PASSWORD"],
                   PGSSLMODE="verify-full", NODE_EXTRA_CA_CERTS=stack.env["PEER_CA"])
        log = open(args.out / "node.log", "w")
        for f in files:
            t = time.monotonic()
            try:
                p = subprocess.run(["node", f], cwd=pg, env=env, capture_output=True,
                                   text=True, timeout=args.timeout)
                rc, out = p.returncode, p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                rc = None
                out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
                    else (e.stdout or "")
            outcome, msg = outcome_of(rc, out)
            results[f] = {"outcome": outcome, "message": msg[:500],
                          "duration": round(time.monotonic() - t, 3)}
            log.write(f"===== {f}: {outcome}\n{out}\n")
            log.flush()
    (args.out / "results.json").write_text(json.dumps(results, indent=0, sort_keys=True))
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    wall = time.monotonic() - t0
    print(f"[node {args.config}] {len(results)} files in {wall:.0f}s: "
          + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
