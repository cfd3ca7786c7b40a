"""JSONL file input: one partition per file, resumable by byte offset; or stdin.

`jsonl:PATH` reads a file, every `*.jsonl` file of a directory, or a glob; each file is one
partition, so a multi-process cluster splits partitioned input by file. The run ends (EOF) when
every file is consumed. `jsonl:-` reads standard input (one partition, not resumable).
"""

from __future__ import annotations

import glob
import sys
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
        skipped = 0
        while True:
            chunk = self._stream.readline(1 << 20)
            skipped += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return skipped

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._stream is not sys.stdin.buffer:
            self._stream.close()


class JsonlSource(FixedPartitionedSource[bytes, int]):
    """Bounded JSONL input: raw lines (bytes), parsed and validated by the flow's `parse` step."""

    def __init__(self, spec: str, batch_size: int = 500):
        self.spec = spec
        self.batch_size = batch_size
        self._files = {str(p): p for p in expand_paths(spec)}

    def list_parts(self) -> list[str]:
        return [STDIN] if self.spec == STDIN else list(self._files)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FilePartition:
        if for_part == STDIN:
            return _FilePartition(sys.stdin.buffer, 0, self.batch_size, seekable=False)
        stream = self._files[for_part].open("rb")
        return _FilePartition(stream, resume_state or 0, self.batch_size, seekable=True)
