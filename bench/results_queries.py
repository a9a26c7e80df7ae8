"""Results queries at scale: a 1,000,000-row table and journal, every query the API offers.

    .venv/bin/python bench/results_queries.py [--rows 1000000] [--dir DIR] [--runs 20]
                                              [--out bench/results/results_queries.json]

Builds (or reuses, when ``DIR`` already holds one of that size) the app's local state with
``--rows`` rows in the DuckDB table (bench/results_table.py) and as many done events in
the bucket's journal, then starts ``tideflow run`` on it and times over HTTP,
``--runs`` times each after one warm-up: ``/api/results`` unfiltered, with ``label``, ``q``,
``min_confidence`` (alone and with a label), paged deep into the table, the results page
with a filter, ``/api/results.csv`` of a rare label, ``/stats``, and ``tideflow status``
(the command, and the journal counts it reads, in-process). Targets: results p95 <= 150 ms,
status <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_table import fill  # noqa: E402
from tests.conftest import TideflowProcess  # noqa: E402
from tideflow.io.local.journal import Journal  # noqa: E402

TABLE = "image_classification"


def build(home: Path, rows: int) -> None:
    env = {**os.environ, "TIDEFLOW_HOME": str(home)}
    db_path = home / "image_classification.duckdb"
    if db_path.exists():
        with duckdb.connect(str(db_path)) as connection:
            (have,) = connection.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone() or (0,)
        if have == rows:
            print(f"reusing {home} ({rows:,} rows)")
            return
        raise SystemExit(f"{home} holds {have:,} rows, not {rows:,}: use another --dir")
    subprocess.run(
        [sys.executable, "-m", "tideflow", "--quiet", "apply", "--yes"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    with duckdb.connect(str(db_path)) as connection:
        step = 200_000
        for start in range(0, rows, step):
            fill(connection, min(step, rows - start), start=start)
    # The journal: one object and one done event per row, as the app leaves them.
    journal = home / "journal" / "image-bucket.sqlite3"
    with sqlite3.connect(journal) as db:
        (stream,) = db.execute("SELECT stream_id FROM streams").fetchone()
        now = time.time()
        db.executemany(
            "INSERT INTO objects (key, generation, size, mtime_ns, inode, metadata) "
            "VALUES (?, ?, 1000, 0, 0, '{}')",
            ((f"uploads/{i:08x}.jpg", i + 1) for i in range(rows)),
        )
        db.executemany(
            "INSERT INTO events (stream_id, key, generation, size, event_time, state, attempts, "
            "updated) VALUES (?, ?, ?, 1000, ?, 'done', 1, ?)",
            ((stream, f"uploads/{i:08x}.jpg", i + 1, now, now) for i in range(rows)),
        )
    print(f"built {rows:,} rows and journal events in {time.perf_counter() - started:.0f} s")


def timed(function, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    function()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(samples[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/results_queries.json")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="tideflow-bench-"))
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    build(home, args.rows)

    app = TideflowProcess(project_dir=REPO, home=home, env={"API_TOKEN": "", "COLUMNS": "80"})
    # With its consumer (nothing is pending): the process that runs the consumers answers
    # `tideflow status`.
    app.start("--replicas", "1", timeout=300)
    results: dict[str, dict[str, float]] = {}
    try:
        client = httpx.Client(base_url=app.base_url, timeout=60)
        common = client.get("/api/results", params={"limit": 1}).json()["rows"][0]
        label = common["classifications"][0]["label"]
        deep = max(0, args.rows - 1000)
        queries = {
            "results": ("/api/results", {}),
            "results label": ("/api/results", {"label": label}),
            "results q=cat": ("/api/results", {"q": "cat"}),
            "results q=TERRIER": ("/api/results", {"q": "TERRIER"}),
            "results min_confidence=0.5": ("/api/results", {"min_confidence": "0.5"}),
            "results label+min_confidence": (
                "/api/results",
                {"label": label, "min_confidence": "0.3"},
            ),
            "results q+min_confidence": ("/api/results", {"q": "dog", "min_confidence": "0.4"}),
            "results deep page": ("/api/results", {"offset": deep}),
            "results label deep page": ("/api/results", {"label": label, "offset": 2000}),
            "results page label": ("/image-upload-results", {"label": label}),
            "results page q": ("/image-upload-results", {"q": "cat", "offset": 500}),
            "results.csv rare label": ("/api/results.csv", {"label": "no such label"}),
            "stats page": ("/stats", {}),
        }
        for name, (path, params) in queries.items():

            def get(path: str = path, params: dict[str, object] = params) -> None:
                response = client.get(path, params=params)
                response.raise_for_status()

            results[name] = timed(get, args.runs)
            print(f"{name:32} {results[name]}")
        journal = Journal(home / "journal" / "image-bucket.sqlite3")
        (stream,) = journal._db().execute("SELECT stream_id FROM streams").fetchone()
        results["status journal counts (in-process)"] = timed(
            lambda: journal.counts(stream), args.runs
        )

        def status() -> None:
            done = app.cli("--quiet", "status")
            if done.returncode != 0 or "running" not in done.stdout:
                raise SystemExit(f"tideflow status failed: {done.stdout}{done.stderr}")

        results["tideflow status (command)"] = timed(status, max(3, args.runs // 4))
        for name in list(results)[-2:]:
            print(f"{name:32} {results[name]}")
    finally:
        app.stop()
        app.close()
    sizes = {
        "duckdb_mb": round((home / "image_classification.duckdb").stat().st_size / 1e6, 1),
        "journal_mb": round((home / "journal" / "image-bucket.sqlite3").stat().st_size / 1e6, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"rows": args.rows, "sizes": sizes, "timings": results}, indent=2)
    )
    print(sizes, f"-> {args.out}")


if __name__ == "__main__":
    main()
