"""Where the graph stage runs in a cluster, and that its process reads no input there."""

from __future__ import annotations

import threading
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main

from connectors.files import JsonlSource
from connectors.placement import ClusterPlace, ReadElsewhere, bytewax_worker_of, placed
from flows.stateless_steps import GRAPH_KEY

KEYS = [GRAPH_KEY, "", "a", "twitter:223789", "bluesky:did:plc:abc", "ü-ñ", "x" * 7, "y" * 8]
KEYS += [f"mastodon:{n}@example.social" for n in range(24)]


def routed_workers(keys: list[str], workers: int) -> dict[str, int]:
    """The worker each key's state lives on in a real Bytewax run of `workers` workers."""
    seen: dict[str, int] = {}
    lock = threading.Lock()
    flow = Dataflow("placement")
    keyed = op.input("in", flow, TestingSource([(k, 1) for k in keys]))
    state = op.stateful_map("state", keyed, lambda s, v: (s, v))

    def note(_step: str, item: tuple[str, Any], _epoch: int, worker: int) -> None:
        with lock:
            seen[item[0]] = worker

    op.inspect_debug("where", state, note)
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return seen


@pytest.mark.parametrize("workers", [2, 3, 4, 5, 7])
def test_the_routing_is_bytewaxs(workers: int) -> None:
    expected = routed_workers(KEYS, workers)
    assert expected.keys() == set(KEYS)
    assert {k: bytewax_worker_of(k, workers) for k in KEYS} == expected


@pytest.mark.parametrize(
    ("argv", "env", "place"),
    [
        ([], {}, ClusterPlace(0, 1, 1)),
        (["-w", "3"], {}, ClusterPlace(0, 1, 3)),
        (["-i", "1", "-a", "h:1;h:2"], {}, ClusterPlace(1, 2, 1)),
        (["-i2", "-a", "h:1;h:2;h:3", "-w2"], {}, ClusterPlace(2, 3, 2)),
        (
            [],
            {
                "BYTEWAX_PROCESS_ID": "1",
                "BYTEWAX_ADDRESSES": "h:1;h:2",
                "BYTEWAX_WORKERS_PER_PROCESS": "4",
            },
            ClusterPlace(1, 2, 4),
        ),
        (["flows.pipeline:flow", "-r", "dir"], {}, ClusterPlace(0, 1, 1)),
    ],
)
def test_the_place_bytewax_run_gives(
    argv: list[str], env: dict[str, str], place: ClusterPlace
) -> None:
    assert ClusterPlace.from_bytewax_args(argv, env) == place


def test_the_place_bytewaxs_helm_chart_gives(tmp_path: Any) -> None:
    """As Bytewax's runner reads it: the pod's ordinal, the addresses from the host file."""
    hosts = tmp_path / "hosts"
    hosts.write_text("flow-0.flow:2101\n\nflow-1.flow:2101\nflow-2.flow:2101\n")
    env = {
        "BYTEWAX_POD_NAME": "flow-2",
        "BYTEWAX_STATEFULSET_NAME": "flow",
        "BYTEWAX_HOSTFILE_PATH": str(hosts),
    }
    assert ClusterPlace.from_bytewax_args([], env) == ClusterPlace(2, 3, 1)
    assert ClusterPlace.from_bytewax_args(["-i", "1"], env) == ClusterPlace(1, 3, 1)
    assert ClusterPlace.from_bytewax_args(["-a", "h:1;h:2"], env) == ClusterPlace(2, 2, 1)


def graph_process(processes: int, per_process: int) -> int:
    return bytewax_worker_of(GRAPH_KEY, processes * per_process) // per_process


@pytest.mark.parametrize(
    ("processes", "per_process"), [(1, 1), (1, 4), (2, 1), (2, 2), (3, 1), (4, 2)]
)
def test_only_the_graphs_process_reads_nothing_and_only_in_a_cluster(
    processes: int, per_process: int
) -> None:
    reading = [
        ClusterPlace(i, processes, per_process).reads_input(GRAPH_KEY) for i in range(processes)
    ]
    if processes == 1:
        assert reading == [True]
    else:
        assert reading.count(False) == 1
        assert reading.index(False) == graph_process(processes, per_process)


def test_a_partitioned_source_is_kept_off_the_graphs_process(tmp_path: Any) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"{}\n")
    source = JsonlSource(str(tmp_path))
    host = graph_process(2, 1)
    kept_off = placed(source, ClusterPlace(host, 2, 1), GRAPH_KEY)
    assert isinstance(kept_off, ReadElsewhere) and kept_off.list_parts() == []
    assert placed(source, ClusterPlace(1 - host, 2, 1), GRAPH_KEY) is source
    assert placed(source, ClusterPlace(0, 1, 2), GRAPH_KEY) is source


def test_a_dynamic_source_runs_everywhere() -> None:
    from bytewax.inputs import DynamicSource

    class Everywhere(DynamicSource[int]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Any:
            raise NotImplementedError

    source = Everywhere()
    assert placed(source, ClusterPlace(graph_process(2, 1), 2, 1), GRAPH_KEY) is source


@pytest.mark.parametrize(("reads_input", "ready"), [(True, False), (False, True)])
def test_the_graphs_process_is_ready_without_a_feed_session(reads_input: bool, ready: bool) -> None:
    """A live feed's readiness is its sessions' (none built yet: not ready); the process that
    reads no input has none to wait for, and is ready when Redis is."""
    from config.feeds import JetstreamSettings
    from connectors.jetstream import JetstreamSource
    from sense_respond.run_cli import _source_connected

    source = JetstreamSource("ws://127.0.0.1:9/subscribe", JetstreamSettings(), batch_size=8)
    assert _source_connected(source, reads_input) is ready


@pytest.mark.parametrize(
    ("spec", "shared_files", "kept_off"),
    [
        ("redis:events", False, True),
        ("jetstream:wss://jetstream.example/subscribe", False, True),
        ("mastodon:https://mastodon.example", False, True),
        ("jsonl:feeds/", False, False),  # a host's own files would go unread
        ("feeds/day1.jsonl", False, False),  # a bare path is a JSONL input
        ("jsonl:feeds/", True, True),
        ("jsonl:-", False, False),
    ],
)
def test_only_inputs_every_process_reaches_are_kept_off_the_graphs_process(
    spec: str, shared_files: bool, kept_off: bool
) -> None:
    from config.settings import Settings
    from flows.pipeline import keep_off_graph_process

    settings = Settings(input=spec, flow={"shared_files": shared_files})
    assert keep_off_graph_process(settings) is kept_off
