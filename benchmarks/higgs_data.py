"""The SNAP Higgs activity stream for the influence benchmark (`influence_higgs.py`): its rows,
turned into SocialEvent v1 lines for `sense-respond run` and into the graph stage's `Touch`
records, at 1x or as a synthetic stream of `scale` disjoint copies of the accounts.

Data: ../shared/data/higgs_twitter/higgs-activity_time.txt.gz ("userA userB unix_ts type",
time-sorted; RT/MT/RE = A retweeted / mentioned / replied to B, so the edge is A -> B; see
PROVENANCE.txt there). RT -> repost, RE -> reply (text "@B"), MT -> a post mentioning B (text
"@B").

Imported by the benchmark after it puts the repository on `sys.path`.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import orjson

from operators.influence import Touch

ROOT = Path(__file__).resolve().parents[1]
ACTIVITY = ROOT.parent / "shared" / "data" / "higgs_twitter" / "higgs-activity_time.txt.gz"
KINDS = {"RT": "repost", "RE": "reply", "MT": "post"}

Activity = tuple[str, str, int, str]
"""One activity line: (userA, userB, unix_ts, type)."""


def read_activity(path: Path, limit: int | None) -> list[Activity]:
    """The activity lines as (userA, userB, unix_ts, type)."""
    rows = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            a, b, ts, kind = line.split()
            rows.append((a, b, int(ts), kind))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def jsonl_line(n: int, row: Activity, copy: int = 0) -> bytes:
    """One activity row as a SocialEvent v1 line (copy k of the accounts for --scale)."""
    a, b, ts, code = row
    if copy:
        a, b = f"{a}x{copy}", f"{b}x{copy}"
    obj: dict[str, object] = {
        "id": f"{n}x{copy}" if copy else str(n),
        "platform": "twitter",
        "kind": KINDS[code],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        "author": {"id": a},
    }
    if code == "MT":
        obj["text"] = f"@{b}"
        obj["mentions"] = [{"id": b}]
    else:
        obj["target"] = {"id": b}
        if code == "RE":
            obj["text"] = f"@{b}"
    return orjson.dumps(obj)


def write_jsonl(rows: list[Activity], path: Path, scale: int) -> int:
    """The stream (scale copies merged by time) as JSONL; returns the number of lines."""
    count = 0
    with path.open("wb") as out:
        for n, row in enumerate(rows):  # time-sorted: the copies of each row side by side
            for k in range(scale):
                out.write(jsonl_line(n, row, k) + b"\n")
                count += 1
    return count


def touches_of(rows: list[Activity], scale: int = 1) -> list[Touch]:
    """The rows as the graph stage's records (copy k of the accounts for a scale, as in
    `jsonl_line`; copies side by side in time)."""
    touches = []
    for n, (a, b, ts, code) in enumerate(rows):
        mention = code == "MT"
        for k in range(scale):
            tag = f"x{k}" if k else ""
            src, dst = f"twitter:{a}{tag}", f"twitter:{b}{tag}"
            touches.append(
                Touch(
                    key=f"twitter:{n}{tag}",
                    event_id=f"{n}{tag}",
                    ts=float(ts),
                    kind=KINDS[code],
                    author=src,
                    handle=None,
                    followers=None,
                    target=None if mention else dst,
                    mentions=(dst,) if mention else (),
                )
            )
    return touches
