"""JSONL file input: one partition per file, resumable by byte offset; or stdin.

`jsonl:PATH` reads a file, every `*.jsonl` file of a directory, or a glob; each file is one
partition, so a multi-process cluster splits partitioned input by file. The run ends (EOF) when
every file is consumed. `jsonl:-` reads standard input (one partition, not resumable).
"""

from __future__ import annotations

import glob
import queue
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors import shutdown
from operators.events import MAX_LINE_BYTES

STDIN = "-"


def expand_paths(spec: str) -> list[Path]:
    """The files named by a path, a directory (its *.jsonl files) or a glob, sorted."""
    if spec == STDIN:
        return []
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec))
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"no JSONL input at {spec!r}")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"JSONL input not found: {f}")
    return files


class _FilePartition(StatefulSourcePartition[bytes, int]):
    """Reads raw lines from a byte offset; the offset is the recovered state."""

    def __init__(self, stream: BinaryIO, offset: int, batch_size: int, seekable: bool):
        self._stream = stream
        self._batch_size = batch_size
        self._seekable = seekable
        if seekable and offset:
            stream.seek(offset)
        self._offset = offset

    def next_batch(self) -> list[bytes]:
        if shutdown.requested():
            raise StopIteration  # SIGTERM/SIGINT: the offset snapshot resumes after this point
        readline = self._stream.readline
        batch = []
        for _ in range(self._batch_size):
            # Bounded read: an oversized line is cut here (and dead-lettered by the parser), and
            # the rest of it skipped, so one bad line can never exhaust memory.
            line = readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            self._offset += len(line)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                self._offset += self._skip_rest_of_line()
            batch.append(line)
        if not batch:
            raise StopIteration
        return batch

    def _skip_rest_of_line(self) -> int:
        return _skip_rest_of_line(self._stream)

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._stream is not sys.stdin.buffer:
            self._stream.close()


STREAM_WAIT_SECONDS = 0.2
"""How long a batch of a pipe waits for its first line: a quiet pipe hands on what it has (and
a stop request is seen) this often, instead of waiting for a full batch or the end of input."""

CHUNK_BYTES = 1 << 16
"""What the pipe's reader takes at a time: whatever has arrived, up to this."""


class _StreamPartition(StatefulSourcePartition[bytes, int]):
    """Lines of a pipe (standard input), read by a thread of their own: a batch is what has
    arrived, so an event piped in alone goes on at once, and a stop request (SIGTERM) is seen
    within `STREAM_WAIT_SECONDS` even while nothing comes. Not resumable (the state is the
    count of bytes read, for symmetry with files).

    The reader hands over whole chunks of lines (a line at a time through a queue would cost
    more than parsing it); lines are cut as `readline` cuts them, an oversized one at
    `MAX_LINE_BYTES` (dead-lettered by the parser) and the rest of it skipped.
    """

    def __init__(self, stream: BinaryIO, batch_size: int) -> None:
        self._batch_size = batch_size
        self._offset = 0
        self._carry: list[bytes] = []
        # Bounded: a reader far ahead of the flow waits (the pipe then fills, and its writer).
        self._chunks: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=8)
        self._done = False
        reader = threading.Thread(
            target=self._read, args=(stream,), name="jsonl-stdin", daemon=True
        )
        reader.start()

    def _read(self, stream: BinaryIO) -> None:
        put = self._chunks.put
        read = getattr(stream, "read1", stream.read)  # what has arrived, not a full chunk
        pending = b""
        skipping = False
        try:
            while chunk := read(CHUNK_BYTES):
                if skipping:
                    end = chunk.find(b"\n")
                    if end < 0:
                        continue
                    chunk, skipping = chunk[end + 1 :], False
                *lines, pending = (pending + chunk).split(b"\n")
                # As `readline(MAX_LINE_BYTES + 1)` gives them: whole, or cut with no newline.
                out = [
                    line + b"\n" if len(line) <= MAX_LINE_BYTES else line[: MAX_LINE_BYTES + 1]
                    for line in lines
                ]
                if len(pending) > MAX_LINE_BYTES:
                    out.append(pending[: MAX_LINE_BYTES + 1])
                    pending, skipping = b"", True
                if out:
                    put(out)
        except (OSError, ValueError):
            pass  # the pipe broke or was closed: its end
        if pending:
            put([pending])  # a last line without its newline
        put(None)

    def next_batch(self) -> list[bytes]:
        if shutdown.requested() or (self._done and not self._carry):
            raise StopIteration
        batch, self._carry = self._carry, []
        try:
            if not batch:
                self._take(self._chunks.get(timeout=STREAM_WAIT_SECONDS), batch)
            while len(batch) < self._batch_size and not self._done:
                self._take(self._chunks.get_nowait(), batch)
        except queue.Empty:
            pass
        if len(batch) > self._batch_size:
            batch, self._carry = batch[: self._batch_size], batch[self._batch_size :]
        if not batch and self._done:
            raise StopIteration
        self._offset += sum(map(len, batch))
        return batch

    def _take(self, lines: list[bytes] | None, batch: list[bytes]) -> None:
        if lines is None:
            self._done = True
        else:
            batch.extend(lines)

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        pass  # standard input is the process's


def _skip_rest_of_line(stream: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = stream.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


class JsonlSource(FixedPartitionedSource[bytes, int]):
    """Bounded JSONL input: raw lines (bytes), parsed and validated by the flow's `parse` step."""

    def __init__(self, spec: str, batch_size: int = 500):
        self.spec = spec
        self.batch_size = batch_size
        self._files = {str(p): p for p in expand_paths(spec)}

    def list_parts(self) -> list[str]:
        return [STDIN] if self.spec == STDIN else list(self._files)

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[bytes, int]:
        if for_part == STDIN:
            return _StreamPartition(sys.stdin.buffer, self.batch_size)
        stream = self._files[for_part].open("rb")
        return _FilePartition(stream, resume_state or 0, self.batch_size, seekable=True)
