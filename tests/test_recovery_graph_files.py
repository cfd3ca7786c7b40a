"""The graph's snapshot is files in the recovery directory (bases and journal segments, named by
a small manifest): a crashed Bytewax run resumes from them, and a resume whose files are gone
fails with one line naming the file."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from bytewax.testing import TestingSource, run_main
from recovery_helpers import TIMEOUT, clean_env, run_command, run_to_end, stream_ids

from config.settings import Settings
from connectors.graph_store import GRAPH_DIR, GraphManifest, JournalPolicy
from flows.pipeline import build_flow
from sense_respond import recovery
from sense_respond.recovery import RecoveryOptions
from sense_respond.scenario import generate

pytestmark = pytest.mark.usefixtures("recovery_clean_run_started")
"""When end-to-end recovery tests are selected too, their clean run (a session fixture of
`conftest.py`) runs on the other core while this module's tests do."""


def _prefixed(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": prefix})}
    )


def test_an_aborted_flow_resumes_the_graph_from_its_files(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """Real Bytewax, real files: the graph's snapshot is a small manifest of files in the
    recovery directory (bases and journal segments, rebased on the way); a resume from them
    delivers the alerts of an uninterrupted run, each once."""
    sc = generate(seed=11, background=1500)
    lines = sc.jsonl_bytes().splitlines()
    settings = Settings(brand_accounts=sc.brand_accounts, listen=sc.listen).with_redis_url(
        redis_url
    )
    clean = f"{redis_prefix}clean:"
    run_main(build_flow(_prefixed(settings, clean), TestingSource(lines, batch_size=50)))
    expected = stream_ids(redis_client, clean)
    assert expected

    crash_at = len(lines) * 2 // 3
    paced: list[Any] = []
    for start in range(0, len(lines), 100):  # a pause every 100 lines: an epoch each
        paced += [*lines[start : start + 100], TestingSource.PAUSE(timedelta(seconds=0.03))]
        if start + 100 >= crash_at and TestingSource.ABORT not in map(type, paced):
            paced.append(TestingSource.ABORT())
    db_dir = tmp_path / "recovery"
    recovery.prepare(db_dir, 1)
    journal = JournalPolicy(keep_manifests=3, rebase_floor_bytes=30_000, min_segments=2)
    flow = build_flow(
        _prefixed(settings, redis_prefix),
        TestingSource(paced, batch_size=50),
        recovery_dir=db_dir,
        journal_policy=journal,
    )
    config = RecoveryOptions(db_dir).config()
    epoch = timedelta(seconds=0.01)
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # stops at the ABORT
    state = recovery.inspect(db_dir)
    assert state.resume_epoch is not None and state.resume_epoch > 3
    files = sorted(p.name for p in (db_dir / GRAPH_DIR).iterdir())
    assert any(f.startswith("base-") for f in files) and any(f.startswith("seg-") for f in files)
    manifests = graph_snapshots(db_dir)
    assert manifests and all(size < 10_000 for size, _ in manifests)
    assert max(m.generation for _, m in manifests) >= 2  # rebased during the run
    assert len(stream_ids(redis_client, redis_prefix)) < len(expected)

    run_main(flow, epoch_interval=epoch, recovery_config=config)  # the ABORT fires only once
    ids = stream_ids(redis_client, redis_prefix)
    assert sorted(ids) == sorted(expected)  # every alert of the clean run, none twice


def test_a_resume_without_its_graph_files_fails_with_one_line(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    sc = generate(seed=5, background=400)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(sc.jsonl_bytes())
    config = tmp_path / "sense-respond.toml"
    config.write_text(sc.config_toml())
    db_dir = tmp_path / "recovery"
    cmd = run_command((feed, config), redis_url, redis_prefix, "--recovery-dir", str(db_dir))
    run_to_end(cmd)
    graph_files = sorted((db_dir / GRAPH_DIR).iterdir())
    assert graph_files
    for path in graph_files:
        path.unlink()
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, env=clean_env(), check=False)
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("sense-respond: error: recovery file ")
    assert "is missing" in last and str(db_dir / GRAPH_DIR) in last
    assert "panicked" not in err and "Traceback" not in err


def graph_snapshots(db_dir: Path) -> list[tuple[int, GraphManifest]]:
    """The graph stage's snapshots Bytewax holds: (pickled bytes, manifest)."""
    out = []
    for path in recovery.partition_files(db_dir):
        con = sqlite3.connect(path)
        try:
            rows = con.execute(
                "SELECT ser_change FROM snaps WHERE step_id LIKE ? AND ser_change IS NOT NULL",
                ("%influence%",),
            ).fetchall()
        finally:
            con.close()
        out += [(len(blob), pickle.loads(blob)) for (blob,) in rows]
    return out
