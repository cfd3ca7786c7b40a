"""The small on-call tools: `alerts tail`, `score [--explain]` and `replay`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from config.settings import load_settings
from sense_respond.alert_printing import format_alert
from sense_respond.command_redis import open_client, say, settings_from_args


def cmd_alerts_tail(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from connectors.redis_client import redacted_url
    from connectors.redis_source import AlertReader

    settings = settings_from_args(args)
    if settings.redis.url is None:
        say("alerts tail needs --redis-url (or SR_REDIS__URL): the Redis the pipeline writes to")
        return 2
    client = open_client(settings)
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        reader = AlertReader(
            client,
            settings.redis.prefix,
            group=args.group,
            consumer=args.consumer,
            block_ms=1000,
            start_id="0" if args.from_start else "$",
        )
        while deadline is None or time.monotonic() < deadline:
            batch = reader.read(count=100)
            for entry_id, alert in batch:
                print(format_alert(alert), flush=True)
                reader.ack([entry_id])
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    except KeyboardInterrupt:
        pass
    except RedisError as exc:  # one line, the password masked, no traceback
        assert settings.redis.url is not None
        say(f"sense-respond: Redis at {redacted_url(settings.redis.url.get_secret_value())}: {exc}")
        return 1
    finally:
        client.close()
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """VADER scores of texts; with `--explain`, also whether each is about the business, why,
    and what was scored, all under the settings of `--config` (listening rules, lexicon)."""
    from flows.pipeline import listening
    from sense_respond.terminal import terminal_json

    settings = load_settings(args.config)
    listener, scorer = listening(settings) if args.explain else (None, None)
    if scorer is None:
        from config.listen import load_lexicon
        from operators.scoring import Scorer

        scorer = Scorer(load_lexicon(settings.sentiment))
    texts: Sequence[str] = args.texts or [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        if not text.strip():
            continue
        if listener is None:
            s = scorer.score(text)
            row = {"compound": s.compound, "pos": s.pos, "neu": s.neu, "neg": s.neg, "text": text}
        else:
            row = explain(text, listener, scorer, args.lang)
        print(terminal_json(row))  # the same JSON, with what a terminal acts on escaped
    return 0


def explain(text: str, listener: Any, scorer: Any, lang: str | None = None) -> dict[str, Any]:
    """What the pipeline makes of one post with this text: relevance, matched terms, scores."""
    from datetime import UTC, datetime

    from operators.events import SocialEvent
    from operators.scoring import score_text

    event = SocialEvent(
        id="explain",
        kind="post",
        created_at=datetime.now(UTC),
        author={"id": "explain"},
        text=text,
        lang=lang,
    )
    found = listener.relevance(event)
    row: dict[str, Any] = {
        "text": text,
        "relevant": found.relevant,
        "matched": list(found.matched),
        "excluded": list(found.excluded),
        "reason": found.reason or ("about the business" if found.relevant else ""),
        "listening": listener.active,
        "scope": listener.scope,
    }
    if not found.relevant:
        row["scored"] = False  # the pipeline would not score it (no VADER call)
    elif not found.scorable:
        row["scored"] = False
        row["sentiment"] = None
    else:
        scored_text = listener.text_to_score(text)
        s = scorer.score(scored_text)
        row["scored"] = True
        row["scored_text"] = scored_text
        row["sentiment"] = {"compound": s.compound, "pos": s.pos, "neu": s.neu, "neg": s.neg}
    # For comparison: the reference VADER score of the whole text, as `score` without config.
    row["reference_compound"] = score_text(text).compound
    row["lexicon_entries"] = len(scorer.lexicon)
    return row


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.inputs import split_spec
    from connectors.redis_source import push_jsonl

    scheme, key = split_spec(args.to)
    if scheme != "redis":
        say("replay --to must be redis:STREAM_KEY")
        return 2
    settings = settings_from_args(args)
    if settings.redis.url is None:
        say("replay needs --redis-url (or SR_REDIS__URL): the Redis the pipeline reads from")
        return 2
    client = open_client(settings)
    try:
        with open(args.file, "rb") as fh:
            sent = push_jsonl(client, key, fh, rate=args.rate)
    finally:
        client.close()
    say(f"replayed {sent} lines into {key}")
    return 0
