"""A small flow over a Redis stream for the at-least-once tests: run as a subprocess.

`python stream_flow_child.py URL KEY WRITTEN_SET WORKERS [--idle-exit]`: reads KEY with WORKERS
workers and SADDs every event to WRITTEN_SET in its sink (slowly, so that a kill lands between
reading and writing).
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import bytewax.operators as op
from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config.runtime import RedisSettings
from connectors.redis_client import make_client
from connectors.redis_source import RedisStreamSource, acknowledged_on_success


class _SetPartition(StatelessSinkPartition[bytes]):
    def __init__(self, url: str, key: str) -> None:
        self._client = make_client(url, RedisSettings())
        self._key = key

    def write_batch(self, items: list[bytes]) -> None:
        time.sleep(0.02)
        self._client.sadd(self._key, *items)

    def close(self) -> None:
        self._client.close()


class SetSink(DynamicSink[bytes]):
    def __init__(self, url: str, key: str) -> None:
        self._url, self._key = url, key

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SetPartition:
        return _SetPartition(self._url, self._key)


def main() -> None:
    url, key, written, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    idle = 1.0 if "--idle-exit" in sys.argv else None
    settings = RedisSettings(block_ms=20, read_count=10, input_idle_exit_seconds=idle)
    flow = Dataflow("stream_child")
    source = RedisStreamSource(url, key, settings, partitions=workers)
    items = op.input("inp", flow, source)
    op.output("out", items, SetSink(url, written))
    with acknowledged_on_success():
        cli_main(flow, workers_per_process=workers, epoch_interval=timedelta(seconds=0.1))


if __name__ == "__main__":
    main()
