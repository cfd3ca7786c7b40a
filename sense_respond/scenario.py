"""A deterministic synthetic social feed with planted ground truth (demo and end-to-end test).

`generate()` builds SocialEvent v1 dicts for a day of customer-service chatter about three
fictional brands (an airline, a telco, a retailer): a few thousand ordinary background accounts
posting, replying, quoting, reposting, liking, following and mentioning each other, plus planted
customers whose outcome under the default rule is known in advance:

  unhappy_influential_followers  >= 10k followers, 3+ clearly negative posts 5-30 min apart: ALERT
  unhappy_influential_graph      ~300 followers, but >= 60 distinct accounts replied to, reposted,
                                 quoted, liked, followed or mentioned them hours earlier: ALERT
  unhappy_no_reach               a negative burst from an account nobody listens to: no alert
  happy_influential              influential, only positive posts: no alert
  one_bad_then_good              influential, one negative post then strongly positive ones: no
  negatives_far_apart            influential, negative posts > 6 h apart (never 2 in one window)
  unhappy_influential_unrelated  influential, 3+ clearly negative posts 5-30 min apart about other
                                 things (a dead phone, a football match, an air freshener called
                                 "Acme Air Freshener", a #TelcoCareers fair): no alert, because
                                 none of it is about a brand under the listening rules
  brand                          the brand's own accounts apologising to everyone: never alerted

Every post a planted customer makes about a brand mentions it: an @mention of a brand account on
Twitter, the brand's name (a listening keyword) on Mastodon. `scenario_vocabulary.LISTEN` is the
demo's `[listen]` section and `Scenario.config_toml()` its whole config
(`sense_respond/data/demo_config.toml`).

The truth is kept unambiguous by construction (and checked by tests/test_scenario.py with the
real VADER): template texts fall in fixed compound bands; a background account only ever posts a
negative text when it has no other scored post within 7 h of it, so no background window is ever
unhappy; the planted alert customers have nothing but negative posts in their window when the
second and third negative posts land; the graph influencers' inbound interactions all precede
their negative posts by more than an hour (the ranking refreshes every 10 min of event time).

Delivery is realistic: ~1.5 % of events arrive up to 60 s after newer ones, and a few events are
delivered twice (same id). The duplicated events include the single negative post of every
`one_bad_then_good` customer and one negative post of every `negatives_far_apart` customer: if
duplicates were counted twice, those influential customers would (wrongly) alert.

The brand accounts are traps too: their apologies score negative and they have huge audiences,
so without `brand_accounts` they would alert; and they reply to, like and follow the
`unhappy_no_reach` customers, so if brand-authored interactions counted as reach, most of those
would alert as well.

Run `python -m sense_respond.scenario --out FEED.jsonl --truth TRUTH.json --config CONFIG.toml
[--seed N]` to write a feed; the bundled `sense_respond/data/demo_feed.jsonl` (with
`demo_truth.json` and `demo_config.toml`) is the default `generate()` output.

The generator's parts: `scenario_vocabulary` (brands, listening rules, templates, name parts),
`scenario_model` (`Account`, `Scenario` and the categories), `scenario_draft` (the feed under
construction and its primitives), `scenario_background`, `scenario_planted` and
`scenario_delivery` (the steps `generate()` runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import orjson

from sense_respond.scenario_background import (
    add_background_accounts,
    add_background_activity,
    settle_background_texts,
)
from sense_respond.scenario_delivery import deliver
from sense_respond.scenario_draft import FeedDraft
from sense_respond.scenario_model import (
    DEFAULT_BACKGROUND,
    DEFAULT_HOURS,
    DEFAULT_SEED,
    DEFAULT_START,
    Scenario,
)
from sense_respond.scenario_planted import plant_customers


def generate(
    seed: int = DEFAULT_SEED,
    background: int = DEFAULT_BACKGROUND,
    start: datetime = DEFAULT_START,
    hours: float = DEFAULT_HOURS,
) -> Scenario:
    """Generate the scenario for `seed`: same arguments, byte-identical feed."""
    draft = FeedDraft(seed, background, start, hours)
    # The order of these steps is the order of the random draws: changing it changes the feed.
    add_background_accounts(draft)
    add_background_activity(draft)
    truth = plant_customers(draft)
    settle_background_texts(draft)
    return deliver(draft, truth)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sense_respond.scenario --out FEED.jsonl [--truth TRUTH.json] [--seed N] ...`"""
    parser = argparse.ArgumentParser(
        prog="python -m sense_respond.scenario",
        description="Write a synthetic SocialEvent v1 feed with planted unhappy influential "
        "customers and its ground truth.",
    )
    parser.add_argument("--out", required=True, help="JSONL feed to write ('-' for stdout)")
    parser.add_argument("--truth", help="JSON ground truth to write")
    parser.add_argument("--config", help="TOML settings to write (brand accounts, [listen])")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--background", type=int, default=DEFAULT_BACKGROUND,
                        help="number of background accounts")  # fmt: skip
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    args = parser.parse_args(argv)
    try:
        scenario = generate(seed=args.seed, background=args.background, hours=args.hours)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        if args.out == "-":
            sys.stdout.buffer.write(scenario.jsonl_bytes())
        else:
            scenario.write_jsonl(args.out)
        if args.truth:
            truth = orjson.dumps(scenario.truth_dict(), option=orjson.OPT_INDENT_2) + b"\n"
            Path(args.truth).write_bytes(truth)
        if args.config:
            Path(args.config).write_text(scenario.config_toml())
    except OSError as exc:  # e.g. a folder that does not exist: one line, exit 2
        print(f"scenario: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    counts = scenario.truth_dict()["counts"]
    print(orjson.dumps(counts).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
