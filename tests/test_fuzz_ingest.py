"""Property-based fuzzing of ingestion: over 10,000 generated hostile lines through
`parse_event` and through a whole run of the flow (its `parse` step, the real dead-letter sink,
real Redis).

Each generated case knows what it is: a valid event (and which customer it makes), a blank line,
or an invalid line with the reasons it may be dead-lettered for. The oracle is built from the
contract (README "Input contract"), not from the parser: timestamps are range-checked with plain
datetime arithmetic, JSON corruption is injected at known places.

The result must be: no exception anywhere, every invalid line in `{prefix}dlq` with a reason of
its kind, no valid line there, and every valid post's author with a customer view.

The oracle is in `fuzz_oracle.py`, the generators in `fuzz_values.py` (values inside events) and
`fuzz_lines.py` (whole lines).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from bytewax.testing import TestingSource, run_main
from fuzz_lines import fixed_lines, hostile_case
from fuzz_oracle import BRAND, VALID_POST, Case, Expect, as_bytes, check_parsed, reason_group
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from flows.pipeline import build_flow
from operators.events import RAW_EXCERPT_BYTES

MIN_LINES = 10_000
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
"""Examples per round (FUZZ_EXAMPLES=1000 for a longer hunt)."""
BATCH = 60


def test_fuzzed_lines_never_crash_ingestion_and_all_land_where_they_belong(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    lines: list[tuple[bytes | str, Expect]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # No shrinking: a failing batch is reported as is (each assertion names its line), and
        # shrinking batches of hostile lines takes minutes.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(hostile_case, min_size=10, max_size=BATCH))
    def parse_property(cases: list[Case]) -> None:
        for case in cases:
            for raw, expect in case.render(len(lines)):
                check_parsed(raw, expect)
                lines.append((raw, expect))

    # Hypothesis sizes its examples as it goes: run more rounds (new examples each) until the
    # batch holds enough lines.
    for _ in range(5):
        parse_property()
        if len(lines) >= MIN_LINES:
            break
    for raw, expect in fixed_lines():
        check_parsed(raw, expect)
        lines.append((raw, expect))
    assert len(lines) >= MIN_LINES

    s = Settings(listen={"keywords": [BRAND]}).with_redis_url(redis_url)
    s = s.model_copy(update={"redis": s.redis.model_copy(update={"prefix": redis_prefix})})
    run_main(build_flow(s, TestingSource([raw for raw, _ in lines], batch_size=256)))

    # Every invalid line is in the dead-letter stream with a reason of its kind; no other line is.
    expected: dict[bytes, set[str]] = defaultdict(set)
    invalid_lines = 0
    for raw, expect in lines:
        if expect.outcome == "invalid":
            expected[as_bytes(raw)[:RAW_EXCERPT_BYTES]] |= expect.reasons
            invalid_lines += 1
    found: dict[bytes, list[str]] = defaultdict(list)
    for _, fields in redis_client.xrange(f"{redis_prefix}dlq"):
        found[fields[b"raw"]].append(fields[b"reason"].decode())
    assert set(found) == set(expected), "dead letters differ from the invalid lines"
    for excerpt, reasons in found.items():
        assert {reason_group(r) for r in reasons} <= expected[excerpt], (excerpt, reasons)
    dead_letters = sum(len(r) for r in found.values())
    # Identical bad lines may be folded into one dead letter (idempotent dead letters).
    assert len(expected) <= dead_letters <= invalid_lines

    # Every valid post was processed: its author has a customer view.
    customers = sorted({e.customer for _, e in lines if e.customer is not None})
    pipe = redis_client.pipeline(transaction=False)
    for customer in customers:
        pipe.exists(f"{redis_prefix}customer:{customer}")
    missing = [c for c, ok in zip(customers, pipe.execute(), strict=True) if not ok]
    assert not missing, f"{len(missing)} of {len(customers)} customers have no view: {missing[:5]}"
    print(
        f"fuzz: {len(lines)} lines, {invalid_lines} invalid ({len(expected)} distinct, "
        f"{dead_letters} dead letters), {sum(e.outcome == VALID_POST for _, e in lines)} valid, "
        f"{len(customers)} customers with views"
    )
