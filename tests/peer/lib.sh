# tests/peer/lib.sh: shared by scripts/peer-compare and tests/peer/ci-subset (sourced): builds
# pgcloak (debug) and copies the binary out of the shared target dir, installs the venv and
# psycopg's tests (tests/peer/setup), and runs one configuration or a rerun of some tests.
peer_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peer_dir="$peer_root/tests/peer"
# Runs started side by side stop (and remove their stacks) when the calling script ends.
trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT

peer_prepare() {  # sets PEER_BIN, PEER_SRC, PEER_PY
  "$peer_root/scripts/setup" >&2
  (cd "$peer_root" && cargo build --locked --bin pgcloak -q)
  local target="${CARGO_TARGET_DIR:-$peer_root/target}"
  mkdir -p "$peer_dir/.work/bin"
  # A private copy: other builds sharing the target dir must not swap it mid-run.
  cp "$target/debug/pgcloak" "$peer_dir/.work/bin/pgcloak.new"
  mv "$peer_dir/.work/bin/pgcloak.new" "$peer_dir/.work/bin/pgcloak"
  PEER_BIN="$peer_dir/.work/bin/pgcloak"
  PEER_SRC="$("$peer_dir/setup")"
  PEER_PY="$peer_dir/.venv/bin/python"
}

peer_run() {  # peer_run CONFIG OUTDIR [run.py args...]
  local config="$1" out="$2"
  shift 2
  "$PEER_PY" "$peer_dir/run.py" --config "$config" --out "$out" --pgcloak "$PEER_BIN" \
    --src "$PEER_SRC" "$@"
}

peer_node_run() {  # peer_node_run CONFIG OUTDIR [node_run.py args...]
  local config="$1" out="$2"
  shift 2
  "$PEER_PY" "$peer_dir/node_run.py" --config "$config" --out "$out" --pgcloak "$PEER_BIN" "$@"
}

# peer_compare NAME OUTDIR EXPECTED RUNNER CONFIGS...: runs RUNNER (peer_run or peer_node_run)
# for each configuration (the first is the base), reruns the differing tests PEER_RERUNS
# times (default 3) on fresh stacks, and compares (a difference counts if every round shows it); returns compare.py's status. Extra run arguments: PEER_RUN_ARGS (array).
# PEER_PARALLEL=1 runs the configurations side by side (faster; timing tests flake more, and
# the rerun sorts those out).
peer_each() {  # peer_each RUNNER OUT PREFIX ARGS... -- CONFIGS...: one run per configuration
  local runner="$1" out="$2" prefix="$3" args=() pids=() c status=0
  shift 3
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  for c in "$@"; do
    if [ "${PEER_PARALLEL:-0}" = 1 ]; then
      "$runner" "$c" "$out/$prefix$c" "${args[@]}" &
      pids+=($!)
    else
      "$runner" "$c" "$out/$prefix$c" "${args[@]}" || status=1
    fi
  done
  for c in "${pids[@]}"; do wait "$c" || status=1; done
  return $status
}

peer_compare() {
  local name="$1" out="$2" expected="$3" runner="$4"
  shift 4
  local configs=("$@") others=() rerun=() c
  peer_each "$runner" "$out" "" "${PEER_RUN_ARGS[@]}" -- "${configs[@]}"
  for c in "${configs[@]:1}"; do others+=(--other "$c=$out/$c"); done
  "$PEER_PY" "$peer_dir/compare.py" --title "$name" --expected "$expected" \
    --report "$out/report.md" --base "${configs[0]}=$out/${configs[0]}" "${others[@]}" \
    --list-diffs "$out/diffs.txt"
  local r
  if [ -s "$out/diffs.txt" ]; then
    for r in $(seq 1 "${PEER_RERUNS:-3}"); do
      peer_each "$runner" "$out" "rerun$r-" --ids-file "$out/diffs.txt" -- "${configs[@]}"
      rerun+=(--rerun-base "$out/rerun$r-${configs[0]}")
      for c in "${configs[@]:1}"; do rerun+=(--rerun "$c=$out/rerun$r-$c"); done
    done
  fi
  "$PEER_PY" "$peer_dir/compare.py" --title "$name" --expected "$expected" \
    --report "$out/report.md" --base "${configs[0]}=$out/${configs[0]}" "${others[@]}" "${rerun[@]}"
}
