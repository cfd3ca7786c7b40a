"""Where the graph stage runs in a cluster, and keeping the input off that process.

The graph stage is one key (`GRAPH_KEY`), so one worker does all of it, and workers of one
process share the GIL: whatever else that process does waits for the graph, and the graph waits
for it. On the Higgs stream, two processes of one worker each ran only 1.08x faster than one
process while the graph's process also read half the input. With the graph's process reading
no input, the two spend 4.7 and 5.0 s of CPU (`make bench-influence`: the graph on one side,
parsing and listening on the other), and the cluster runs 1.25-1.62x faster.

Bytewax routes a stateful step's key to the worker `hash(key) % workers`, where the hash is
Rust's `DefaultHasher` (SipHash-1-3 with zero keys) over the key's `Hash`: its UTF-8 bytes and
a 0xFF terminator. `bytewax_worker_of` computes the same; `tests/test_placement.py` checks it
against real multi-worker Bytewax runs, so an upgrade of Bytewax that routes otherwise fails
there rather than silently putting the input back beside the graph.

Only an input that every process can reach may be kept off: the flow decides which
(`flows.pipeline.keep_off_graph_process`: network inputs, and JSONL files with
`flow.shared_files`), since a host's own files listed nowhere else would go unread.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bytewax.inputs import FixedPartitionedSource, Source, StatefulSourcePartition

_M64 = (1 << 64) - 1


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _M64


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of `data` (64 bits): one compression round per word, three to finish."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _M64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _M64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _M64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _M64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for i in range(0, whole, 8):
        word = int.from_bytes(data[i : i + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def bytewax_worker_of(key: str, workers: int) -> int:
    """The worker (0-based, in the whole cluster) that Bytewax 0.21 gives a stateful key."""
    return siphash13(key.encode() + b"\xff") % workers


@dataclass(frozen=True, slots=True)
class ClusterPlace:
    """This process's place in the run: `-i`, the number of `-a` addresses, and `-w`."""

    process_id: int = 0
    processes: int = 1
    workers_per_process: int = 1

    @property
    def workers(self) -> int:
        """Workers in the whole run."""
        return self.processes * self.workers_per_process

    def process_of(self, key: str) -> int:
        """The process whose workers include the one that holds `key`'s state."""
        return bytewax_worker_of(key, self.workers) // self.workers_per_process

    def reads_input(self, busy_key: str) -> bool:
        """Whether this process should read input, when `busy_key`'s stage is the bottleneck:
        not when it hosts that stage and another process can read instead."""
        return self.processes == 1 or self.process_of(busy_key) != self.process_id

    @classmethod
    def from_bytewax_args(
        cls, argv: list[str], env: Mapping[str, str] | None = None
    ) -> ClusterPlace:
        """The place `python -m bytewax.run ARGS` gives this process: `-i`, `-a`, `-w`, their
        `BYTEWAX_` variables, and as Bytewax's runner does for its Helm chart, the process id
        from `BYTEWAX_POD_NAME` less `BYTEWAX_STATEFULSET_NAME-` and the addresses from the
        lines of `BYTEWAX_HOSTFILE_PATH`. (Every process must find its own place: were they all
        to take themselves for the graph's, none would read.)"""
        env = os.environ if env is None else env
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(
            "-w", "--workers-per-process", type=int,
            default=int(env.get("BYTEWAX_WORKERS_PER_PROCESS") or 1),
        )  # fmt: skip
        parser.add_argument("-i", "--process-id", type=int, default=env.get("BYTEWAX_PROCESS_ID"))
        parser.add_argument("-a", "--addresses", default=env.get("BYTEWAX_ADDRESSES"))
        known, _ = parser.parse_known_args(argv)
        process_id = None if known.process_id is None else int(known.process_id)
        addresses = known.addresses
        if process_id is None and "BYTEWAX_POD_NAME" in env and "BYTEWAX_STATEFULSET_NAME" in env:
            pod, statefulset = env["BYTEWAX_POD_NAME"], env["BYTEWAX_STATEFULSET_NAME"]
            process_id = int(pod.replace(statefulset + "-", ""))
        if process_id is not None and addresses is None and "BYTEWAX_HOSTFILE_PATH" in env:
            with open(env["BYTEWAX_HOSTFILE_PATH"]) as hostfile:
                addresses = ";".join(line.strip() for line in hostfile if line.strip())
        return cls.of(process_id, addresses, known.workers_per_process)

    @classmethod
    def of(
        cls, process_id: int | None, addresses: str | None, workers_per_process: int
    ) -> ClusterPlace:
        """The place of process `process_id` in a cluster of `addresses` (`;`-separated; None:
        a single process) with `workers_per_process` workers each."""
        processes = len(addresses.split(";")) if addresses else 1
        return cls(process_id or 0, processes, max(1, workers_per_process or 1))


class ReadElsewhere(FixedPartitionedSource[Any, Any]):
    """A source that lists no partitions in this process: Bytewax gives each partition to a
    worker that lists it, so the other processes' copies of the source read all of it."""

    def list_parts(self) -> list[str]:
        return []

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any | None
    ) -> StatefulSourcePartition[Any, Any]:  # pragma: no cover - Bytewax never asks
        raise RuntimeError(f"partition {for_part!r} is read by another process")


def placed(source: Source, place: ClusterPlace, busy_key: str) -> Source:
    """`source` as this process should run it: kept off the process of `busy_key`'s stage in a
    cluster (a partitioned source only; a dynamic one runs on every worker by design)."""
    if isinstance(source, FixedPartitionedSource) and not place.reads_input(busy_key):
        return ReadElsewhere()
    return source
