"""tests/peer: compares per-test outcomes of run.py's configurations with the direct run.

compare.py [--title T] --expected tests/peer/expected.txt --report REPORT.md \
           --base direct=DIR --other plain=DIR ... \
           [--rerun-base DIR --rerun plain=DIR ...]...   (one group per rerun round)

Every test whose outcome in a configuration differs from the direct run is a difference. With
rerun rounds (run.py runs of only the differing tests, on fresh stacks), a difference that any
round does not reproduce (the pair of outcomes, direct and proxied, is not the first run's) is
reported as `not reproduced` (a flaky test: timing, races inside the suite) and does not count;
one that every round reproduces counts. Each counting difference must be listed in the
expected file, else it is unexpected and the exit status is 1. Expected-file lines:

    CONFIGS | TEST ID | REASON

CONFIGS is a comma-separated list of configurations (plain, cloaked) or `*`; TEST ID is a
pytest node id, or a prefix ending in `*`. `#` starts a comment line. Entries that match no
difference, for tests that ran, are reported as stale (informational: they do not fail the run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "hung", "not-run")


def load(d: str) -> dict:
    return json.loads((Path(d) / "results.json").read_text())


def load_expected(path: Path):
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ", 2)]
        if len(parts) != 3 or not parts[2]:
            sys.exit(f"{path}:{n}: want `CONFIGS | TEST ID | REASON`")
        configs = {c.strip() for c in parts[0].split(",")}
        entries.append({"configs": configs, "id": parts[1], "reason": parts[2], "used": 0,
                        "line": n})
    return entries


def match(entries, config: str, test: str):
    for e in entries:
        if "*" not in e["configs"] and config not in e["configs"]:
            continue
        pat = e["id"]
        if test == pat or (pat.endswith("*") and test.startswith(pat[:-1])):
            return e
    return None


def counts(results: dict) -> dict:
    c = {k: 0 for k in OUTCOMES}
    for r in results.values():
        c[r["outcome"]] = c.get(r["outcome"], 0) + 1
    return c


def short(msg: str) -> str:
    line = " ".join(msg.split())
    return line[:240] + ("…" if len(line) > 240 else "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="psycopg test suite")
    ap.add_argument("--expected", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--rerun-base", action="append", default=[])
    ap.add_argument("--other", action="append", default=[])
    ap.add_argument("--rerun", action="append", default=[])
    ap.add_argument("--list-diffs", type=Path,
                    help="write the differing test ids (any configuration) here and exit")
    args = ap.parse_args()
    base_name, base_dir = args.base.split("=", 1)
    base = load(base_dir)
    others = [(n, load(d)) for n, d in (o.split("=", 1) for o in args.other)]

    def differs(config_results, t):
        b = base.get(t, {"outcome": "not-run"})["outcome"]
        o = config_results.get(t, {"outcome": "not-run"})["outcome"]
        return b != o

    if args.list_diffs:
        ids = sorted({t for _, res in others for t in set(base) | set(res) if differs(res, t)})
        args.list_diffs.write_text("".join(i + "\n" for i in ids))
        print(f"{len(ids)} differing tests")
        return 0

    rerun_bases = [load(d) for d in args.rerun_base]
    reruns: dict[str, list] = {}
    for n, d in (r.split("=", 1) for r in args.rerun):
        reruns.setdefault(n, []).append(load(d))
    entries = load_expected(args.expected)

    lines = [f"# {args.title}: pgcloak vs direct", ""]
    lines.append("| configuration | " + " | ".join(OUTCOMES) + " | total |")
    lines.append("|---" * (len(OUTCOMES) + 2) + "|")
    for name, res in [(base_name, base)] + others:
        c = counts(res)
        lines.append(f"| {name} | " + " | ".join(str(c[k]) for k in OUTCOMES)
                     + f" | {len(res)} |")
    lines.append("")
    unexpected = 0
    for name, res in others:
        diffs = sorted(t for t in set(base) | set(res) if differs(res, t))
        lines.append(f"## {name}: {len(diffs)} tests differ from {base_name}")
        lines.append("")
        rows = {"unexpected": [], "expected": [], "not reproduced": []}
        for t in diffs:
            b = base.get(t, {"outcome": "not-run", "message": ""})
            o = res.get(t, {"outcome": "not-run", "message": ""})
            other_pairs = [
                (i + 1, rb[t]["outcome"], ro[t]["outcome"])
                for i, (rb, ro) in enumerate(zip(rerun_bases, reruns.get(name, [])))
                if t in rb and t in ro
                and (rb[t]["outcome"], ro[t]["outcome"]) != (b["outcome"], o["outcome"])
            ]
            if other_pairs:
                e = match(entries, name, t)
                if e is not None:  # listed (say, a timing test) and flaky: not stale either
                    e["used"] += 1
                rnd, rb_out, ro_out = other_pairs[0]
                rows["not reproduced"].append(
                    f"- `{t}`: {b['outcome']} -> {o['outcome']}; rerun {rnd}: {rb_out} -> "
                    f"{ro_out} (first run: {short(o['message'] or b['message'])})")
                continue
            e = match(entries, name, t)
            msg = short(o["message"] or b["message"])
            if e is not None:
                e["used"] += 1
                rows["expected"].append(
                    f"- `{t}`: {b['outcome']} -> {o['outcome']}: {e['reason']} ({msg})")
            else:
                unexpected += 1
                rows["unexpected"].append(f"- `{t}`: {b['outcome']} -> {o['outcome']}: {msg}")
        for kind, items in rows.items():
            if items:
                lines.append(f"### {kind} ({len(items)})")
                lines.append("")
                lines.extend(items)
                lines.append("")
    ran = set(base).union(*(set(r) for _, r in others))

    def in_run(e) -> bool:  # entries for tests this run did not include are not stale
        pat = e["id"]
        return any(t == pat or (pat.endswith("*") and t.startswith(pat[:-1])) for t in ran)

    stale = [e for e in entries if not e["used"] and in_run(e)]
    if stale:
        lines.append(f"## expected-file entries that matched no difference ({len(stale)})")
        lines.append("")
        lines.extend(f"- line {e['line']}: `{e['id']}` ({', '.join(sorted(e['configs']))})"
                     for e in stale)
        lines.append("")
    lines.append(f"**{unexpected} unexpected difference(s).**")
    text = "\n".join(lines) + "\n"
    args.report.write_text(text)
    print(text)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
