"""Runs one live source in a process of its own and reports, as one JSON line on stdout, what it
delivered and how much memory it took: `VmHWM` (peak resident set) against the resident set
before the source started. Used by `test_hostile_servers.py`.

    python tests/hostile_child.py '{"kind": "mastodon", "url": ..., "settings": {...},
                                    "want": N, "timeout": S}'
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.feeds import JetstreamSettings, MastodonSettings
from connectors.jetstream import JetstreamSource
from connectors.mastodon import MastodonSource
from operators.events import DeadLetter, SocialEvent
from sense_respond.metrics import FEED_RECONNECTS, FEED_STALLS


def status_kb(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec["kind"] == "mastodon":
        source = MastodonSource(spec["url"], MastodonSettings(**spec["settings"]), 64)
    else:
        source = JetstreamSource(spec["url"], JetstreamSettings(**spec["settings"]), 64)
    baseline = status_kb("VmRSS")
    part = source.build_part("in", source.part_name, None)
    events: list[str] = []
    dead: list[dict[str, object]] = []
    deadline = time.monotonic() + spec["timeout"]
    while time.monotonic() < deadline and len(events) < spec["want"]:
        try:
            batch = part.next_batch()
        except StopIteration:
            break
        except RuntimeError:
            break  # the reader failed (fatal): reported below
        for item in batch:
            if isinstance(item, SocialEvent):
                events.append(item.id)
            elif isinstance(item, DeadLetter):
                dead.append({"reason": item.reason, "raw_bytes": len(item.raw)})
        if not batch:
            time.sleep(0.002)
    reader = part.reader
    part.close()
    label = {"input": reader.input_label}
    print(
        json.dumps(
            {
                "events": events,
                "dead_letters": dead,
                "baseline_kb": baseline,
                "peak_kb": status_kb("VmHWM"),
                "stalls": reader.metrics.stalls,
                "stalls_metric": FEED_STALLS.labels(**label)._value.get(),
                "reconnects_metric": FEED_RECONNECTS.labels(**label)._value.get(),
                "oversize_lines": reader.metrics.oversize_lines,
                "fatal": None if reader.fatal is None else str(reader.fatal),
            }
        )
    )


if __name__ == "__main__":
    main()
