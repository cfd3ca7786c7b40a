"""Which Bytewax worker this thread is: the lane its graph records take in the watermark."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

_worker_of_thread: dict[int, int | str] = {}
"""Worker tags by native thread id. Not a `threading.local`: Bytewax's worker threads are
Rust threads whose Python thread state (and with it a thread-local) is new at every entry."""


def worker_tag() -> int | str:
    """The name of this thread's worker in the graph stage's watermark (its lane).

    Its Bytewax worker index, noted when the worker built its sinks (`WorkerNaming`), which
    Bytewax does with the dataflow, before anything flows: stable across a resume with the same
    workers, so a resumed worker carries on in its lane. Elsewhere (a caller outside a flow)
    host, process and thread. The tag travels in the values the graph stage records, so a
    replay of its journal gives each list the lane it had."""
    thread = threading.get_native_id()
    tag = _worker_of_thread.get(thread)
    if tag is None:
        tag = _worker_of_thread[thread] = f"{socket.gethostname()}/{os.getpid()}/{thread}"
    return tag


class WorkerNaming(DynamicSink[Any]):
    """`sink`, noting the index of the worker that builds it for `worker_tag` (Bytewax builds a
    dynamic sink in each worker's thread)."""

    def __init__(self, sink: DynamicSink[Any]) -> None:
        self.sink = sink

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Any]:
        _worker_of_thread[threading.get_native_id()] = worker_index
        return self.sink.build(step_id, worker_index, worker_count)
