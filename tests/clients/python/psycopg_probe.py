"""Driver-fidelity probes for psycopg 3 against pgcloak (tests/it/drivers.rs), each a small
reproduction of a defect found by running psycopg's own test suite through the proxy (issue 15).

    psycopg_probe.py large-async   an async connection fetches a 48 KB result many times; each
                                   try has a time limit, so a hang is a failure, not a stall
    psycopg_probe.py cancel-safe   conn.cancel_safe() (libpq >= 17: PQcancelConn, the
                                   CancelRequest inside TLS) cancels pg_sleep(30)
    psycopg_probe.py backend-pid   conn.info.backend_pid is the server's pg_backend_pid(), and a
                                   NOTIFY from the same session names it

Environment: the PGCLOAK_* facts of common.py, and PGCLOAK_LIBPQ_MAJOR, the libpq major version
this interpreter must be using (so a venv that silently changed its libpq fails loudly).
"""

import asyncio
import os
import sys
import threading
import time

import psycopg

import common

LARGE = "select repeat('x', 3000) from generate_series(1, 16)"


def check_libpq():
    want = os.environ.get("PGCLOAK_LIBPQ_MAJOR")
    got = psycopg.pq.version() // 10000
    print(f"psycopg {psycopg.__version__}, impl {psycopg.pq.__impl__}, "
          f"libpq {psycopg.pq.version()}")
    if want is not None and got != int(want):
        raise SystemExit(f"this interpreter uses libpq {got}, the test wants libpq {want}")


def watchdog(limit, what):
    """A timer that ends the process if `what` takes longer than `limit` seconds: a hung
    libpq wait cannot be interrupted from the event loop (psycopg's cancellation of a timed-out
    query waits on the same connection)."""
    def fire():
        print(f"{what} hung (no answer within {limit} s)", flush=True)
        os._exit(3)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    return t


async def large_async(tries, limit):
    async with await psycopg.AsyncConnection.connect(**common.proxy_facts(),
                                                     autocommit=True) as conn:
        for i in range(tries):
            dog = watchdog(limit, f"try {i + 1} of {tries}: the 48 KB result")
            cur = await conn.execute(LARGE)
            rows = await cur.fetchall()
            dog.cancel()
            if len(rows) != 16 or any(r[0] != "x" * 3000 for r in rows):
                raise SystemExit(f"try {i + 1}: wrong result ({len(rows)} rows)")
    print(f"large-async: {tries} tries of a 48 KB result, none hung")


def cancel_safe():
    with psycopg.connect(**common.proxy_facts(), autocommit=True) as conn:
        failed = []

        def cancel_soon():
            time.sleep(1.0)
            try:
                conn.cancel_safe(timeout=10)
            except Exception as e:  # noqa: BLE001 - reported below
                failed.append(e)
        t = threading.Thread(target=cancel_soon)
        start = time.monotonic()
        t.start()
        try:
            conn.execute("select pg_sleep(30)")
            raise SystemExit("pg_sleep(30) finished: the cancel did not arrive")
        except psycopg.errors.QueryCanceled:
            pass
        finally:
            t.join()
        took = time.monotonic() - start
        if failed:
            raise SystemExit(f"cancel_safe() failed: {failed[0]}")
        if took > 15:
            raise SystemExit(f"the cancel took {took:.1f} s")
        # The session is still usable afterwards.
        if conn.execute("select 1").fetchone() != (1,):
            raise SystemExit("the session is not usable after the cancel")
    print(f"cancel-safe: pg_sleep(30) cancelled after {took:.1f} s")


def backend_pid():
    with psycopg.connect(**common.proxy_facts(), autocommit=True) as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        if conn.info.backend_pid != pid:
            raise SystemExit(f"conn.info.backend_pid {conn.info.backend_pid} "
                             f"!= pg_backend_pid() {pid}")
        conn.execute("listen probe")
        conn.execute("notify probe, 'hello'")
        gen = conn.notifies(timeout=10, stop_after=1)
        got = list(gen)
        if len(got) != 1 or got[0].pid != pid or got[0].payload != "hello":
            raise SystemExit(f"notifications {got!r}, want one from pid {pid}")
    print(f"backend-pid: {pid} everywhere")


def main():
    check_libpq()
    what = sys.argv[1]
    if what == "large-async":
        asyncio.run(large_async(int(os.environ.get("PROBE_TRIES", "300")), 5))
    elif what == "cancel-safe":
        cancel_safe()
    elif what == "backend-pid":
        backend_pid()
    else:
        raise SystemExit(f"unknown probe {what!r}")


if __name__ == "__main__":
    main()
