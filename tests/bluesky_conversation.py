"""A Bluesky conversation as Jetstream frames, for the live-feed end-to-end and crash tests: an
influential account (`VIP`, central to a crowd of fans) turns negative; `GRUMPY` is unhappy, but
nobody listens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jetstream_server import jetstream_commit

POST = "app.bsky.feed.post"
VIP = "did:plc:vipvipvipvipvipvipvipvipv"
GRUMPY = "did:plc:grumpygrumpygrumpygrumpy"  # unhappy, but nobody listens
HAPPY = "Great point, thanks for sharing"
ANGRY = [
    "I hate everything about this company. Scam.",
    "This is the worst service ever. I am furious and disgusted with Acme.",
    "Acme lost my order again. Terrible, awful, horrible support. Never again!",
]


def fan(i: int) -> str:
    return f"did:plc:fan{i:021d}"


def conversation(t0_us: int) -> tuple[list[bytes], dict[str, str]]:
    """The frames, and the ids of the posts the assertions name."""
    frames: list[bytes] = []
    clock = [t0_us]

    def at() -> tuple[int, str]:
        clock[0] += 1_000_000  # one second apart
        created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=clock[0])
        return clock[0], created.isoformat().replace("+00:00", "Z")

    def post(did: str, rkey: str, text: str, **record: Any) -> str:
        t, created = at()
        frames.append(
            jetstream_commit(did, t, POST, rkey, {"createdAt": created, "text": text, **record})
        )
        return f"at://{did}/{POST}/{rkey}"

    ids: dict[str, str] = {}
    # the account's first post is angry, and deleted at once: it must never count
    ids["deleted"] = post(VIP, "vip0", ANGRY[0])
    t, _ = at()
    frames.append(jetstream_commit(VIP, t, POST, "vip0", operation="delete"))
    ids["calm"] = post(VIP, "vip1", "Heading to the Acme store to pick up my order.")
    calm_ref = {"uri": ids["calm"], "cid": "bafyreivip1"}
    # a crowd replies, reposts, likes and mentions: the account is central
    for i in range(40):
        post(fan(i), f"r{i}", HAPPY, reply={"parent": calm_ref, "root": calm_ref})
        t, created = at()
        kind = "app.bsky.feed.repost" if i % 2 else "app.bsky.feed.like"
        frames.append(
            jetstream_commit(fan(i), t, kind, f"x{i}", {"createdAt": created, "subject": calm_ref})
        )
    post(GRUMPY, "g1", ANGRY[1])
    post(GRUMPY, "g2", ANGRY[2])
    # with the deleted post withdrawn, this is the post that makes the rule true (calm + angry);
    # had the delete been missed, the calm post itself would have fired it (deleted + calm)
    ids["trigger"] = post(VIP, "vip2", ANGRY[1])
    ids["later"] = post(VIP, "vip3", ANGRY[2])  # within the cooldown: no second alert
    return frames, ids
