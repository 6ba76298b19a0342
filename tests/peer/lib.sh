# tests/peer/lib.sh: shared by scripts/peer-compare and tests/peer/ci-subset (sourced): builds
# pgcloak (debug) and copies the binary out of the shared target dir, installs the venv and
# psycopg's tests (tests/peer/setup), and runs one configuration or a rerun of some tests.
peer_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peer_dir="$peer_root/tests/peer"

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
