"""The process-wide stop request: signal handling, and sources ending at a stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import redis_retry, shutdown
from connectors.files import JsonlSource


@pytest.fixture(autouse=True)
def _no_stop_left() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()
    redis_retry._STOPPING.clear()  # the signal also told Redis waits to give up


def test_first_signal_asks_to_stop_second_interrupts_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with shutdown.handle_signals():
        assert not shutdown.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.requested() and shutdown.reason() == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    assert shutdown.reason() == "SIGTERM"  # the CLI reads it after the run


def test_a_jsonl_partition_ends_at_a_stop_and_resumes_from_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(10)))
    source = JsonlSource(str(path), batch_size=4)
    part = source.build_part("in", str(path), None)
    assert len(part.next_batch()) == 4
    shutdown.request("test")
    with pytest.raises(StopIteration):
        part.next_batch()
    offset = part.snapshot()
    part.close()
    shutdown.reset()
    again = source.build_part("in", str(path), offset)
    assert again.next_batch()[0] == b'{"n": 4}\n'
    again.close()
