"""The process-wide stop request: signal handling, and sources ending at a stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import redis_retry, shutdown
from connectors.files import JsonlSource, _StreamPartition
from operators.events import MAX_LINE_BYTES


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


def test_a_pipe_hands_on_what_has_arrived_and_sees_a_stop_while_quiet() -> None:
    """`jsonl:-`: a line piped in alone goes on without waiting for a full batch or the end of
    the input, and a stop request is seen while the pipe is quiet."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reading, os.fdopen(write_end, "wb") as writing:
        part = _StreamPartition(reading, batch_size=500)
        writing.write(b'{"n": 1}\n{"n": 2}\n')
        writing.flush()
        got: list[bytes] = []
        for _ in range(50):  # each call waits at most STREAM_WAIT_SECONDS
            got += part.next_batch()
            if len(got) == 2:
                break
        assert got == [b'{"n": 1}\n', b'{"n": 2}\n']
        assert part.next_batch() == []  # quiet: an empty batch, not a wait for more
        shutdown.request("test")
        with pytest.raises(StopIteration):
            part.next_batch()
        assert part.snapshot() == len(b'{"n": 1}\n{"n": 2}\n')


def test_a_pipe_ends_when_its_writer_closes_it() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reading:
        with os.fdopen(write_end, "wb") as writing:
            part = _StreamPartition(reading, batch_size=2)
            writing.write(b"a\nb\nc\n")
        batches = []
        with pytest.raises(StopIteration):
            for _ in range(50):
                batches.append(part.next_batch())
        assert [line for batch in batches for line in batch] == [b"a\n", b"b\n", b"c\n"]
        assert all(len(batch) <= 2 for batch in batches)


def test_a_pipe_cuts_lines_as_a_file_does(tmp_path: Path) -> None:
    """An oversized line is cut at MAX_LINE_BYTES + 1 (the parser dead-letters it) and the rest
    of it skipped; a last line without its newline still counts."""
    data = (
        b"x" * (MAX_LINE_BYTES + 70_000)  # its newline comes in a later chunk
        + b'\n{"n": 1}\n'
        + b"y" * (MAX_LINE_BYTES + 5)  # its newline comes in the chunk that makes it too long
        + b"\n"
        + b"z" * MAX_LINE_BYTES  # exactly the most a line may hold
        + b'\n{"n": 2}'
    )
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    from_file = JsonlSource(str(path)).build_part("in", str(path), None).next_batch()
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reading:
        with os.fdopen(write_end, "wb") as writing:
            part = _StreamPartition(reading, batch_size=500)
            writing.write(data)
        piped: list[bytes] = []
        with pytest.raises(StopIteration):
            for _ in range(50):
                piped += part.next_batch()
    assert piped == from_file
    assert [len(line) for line in piped] == [
        MAX_LINE_BYTES + 1,
        9,
        MAX_LINE_BYTES + 1,
        MAX_LINE_BYTES + 1,
        8,
    ]
