"""The synthetic scenario: deterministic, valid SocialEvent v1, and its planted truth holds.

The truth is checked here against the rule as documented (real VADER, a plain sliding window, a
plain networkx PageRank) - not against the product's operators - so that a product bug cannot make
this generator's truth drift along with it. The end-to-end test through the real pipeline lives
elsewhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import networkx as nx
import orjson
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from operators.events import SocialEvent, parse_event
from sense_respond import scenario as sc
from sense_respond import scenario_model as model
from sense_respond import scenario_vocabulary as vocab
from sense_respond.scenario_background import BACKGROUND_INBOUND_CAP

DATA = Path(sc.__file__).with_name("data")
WINDOW = timedelta(hours=6)
RECEIVED = datetime(2026, 11, 26, tzinfo=UTC)  # after every generated event (no future events)
KIND_WEIGHTS = {"reply": 1.0, "quote": 1.5, "repost": 1.5, "like": 0.5, "follow": 1.0}
MENTION_WEIGHT = 1.0


@pytest.fixture(scope="module")
def vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


@pytest.fixture(scope="module")
def scen() -> sc.Scenario:
    return sc.generate()


@pytest.fixture(scope="module")
def parsed(scen: sc.Scenario) -> list[SocialEvent]:
    out = []
    for event in scen.events:
        result = parse_event(orjson.dumps(event), RECEIVED)
        assert isinstance(result, SocialEvent), result
        out.append(result)
    return out


@pytest.fixture(scope="module")
def unique(parsed: list[SocialEvent]) -> list[SocialEvent]:
    """Deduplicated by id, in event-time order (what a correct pipeline effectively sees)."""
    seen: dict[str, SocialEvent] = {}
    for e in parsed:
        seen.setdefault(e.dedupe_key, e)
    return sorted(seen.values(), key=lambda e: (e.created_at, e.id))


@pytest.fixture(scope="module")
def compounds(scen: sc.Scenario, vader: SentimentIntensityAnalyzer) -> dict[str, float]:
    return {
        e["id"]: vader.polarity_scores(e["text"])["compound"] for e in scen.events if "text" in e
    }


def brand_cids(scen: sc.Scenario) -> set[str]:
    return {cid for cid, cat in scen.planted.items() if cat == model.CAT_BRAND}


def of_category(scen: sc.Scenario, category: str) -> list[str]:
    return sorted(cid for cid, cat in scen.planted.items() if cat == category)


def interactions(
    events: list[SocialEvent], brands: set[str]
) -> list[tuple[str, str, str, datetime]]:
    """(src, dst, kind, at) edges as documented: brand-authored and self-loops don't count."""
    out = []
    for e in events:
        src = e.customer_id
        if src in brands:
            continue
        if e.target is not None:
            dst = e.account_id(e.target.id)
            if dst != src:
                out.append((src, dst, e.kind, e.created_at))
        for m in e.mentions:
            dst = e.account_id(m.id)
            if dst != src and (e.target is None or m.id != e.target.id):
                out.append((src, dst, "mention", e.created_at))
    return out


def windows(events: list[SocialEvent], compounds: dict[str, float], length: timedelta = WINDOW):
    """Per customer, at each scored post: (event id, posts in window, mean compound)."""
    by_customer: dict[str, list[SocialEvent]] = defaultdict(list)
    for e in events:
        if e.kind in ("post", "reply", "quote"):
            by_customer[e.customer_id].append(e)
    out: dict[str, list[tuple[str, int, float]]] = {}
    for cid, posts in by_customer.items():
        rows = []
        for i, post in enumerate(posts):
            inside = [p for p in posts[: i + 1] if post.created_at - p.created_at < length]
            mean = sum(compounds[p.id] for p in inside) / len(inside)
            rows.append((post.id, len(inside), mean))
        out[cid] = rows
    return out


# -------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_jsonl(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sc.generate(seed=11, background=600).write_jsonl(a)
    sc.generate(seed=11, background=600).write_jsonl(b)
    assert a.read_bytes() == b.read_bytes()
    assert sc.generate(seed=12, background=600).jsonl_bytes() != a.read_bytes()


def test_bundled_demo_feed_is_the_default_output(scen: sc.Scenario) -> None:
    assert (DATA / "demo_feed.jsonl").read_bytes() == scen.jsonl_bytes()
    truth = orjson.loads((DATA / "demo_truth.json").read_bytes())
    assert truth == orjson.loads(orjson.dumps(scen.truth_dict()))
    assert (DATA / "demo_config.toml").read_text() == scen.config_toml()


def test_planted_texts_follow_the_listening_rules(scen: sc.Scenario) -> None:
    """Under the demo's rules every planted complaint is about a brand and no unrelated one is."""
    from config.settings import Settings
    from operators.brands import BrandAccounts
    from operators.listen import Listener

    settings = Settings(brand_accounts=scen.brand_accounts, listen=scen.listen)
    listener = Listener(settings.listen, BrandAccounts.parse(settings.brand_accounts))
    by_id = {e["id"]: e for e in scen.events}
    for cid, ids in scen.negatives.items():
        about = [
            listener.relevance(SocialEvent.model_validate(by_id[i])).relevant
            for i in ids
            if i in by_id
        ]
        if scen.planted[cid] == model.CAT_UNRELATED:
            assert not any(about), cid
        else:
            assert all(about), cid


def test_main_writes_feed_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "f.jsonl", tmp_path / "t.json"
    assert (
        sc.main(["--out", str(out), "--truth", str(truth), "--seed", "3", "--background", "500"])
        == 0
    )
    expected = sc.generate(seed=3, background=500)
    assert out.read_bytes() == expected.jsonl_bytes()
    assert orjson.loads(truth.read_bytes())["expected_alerts"] == sorted(expected.expected_alerts)


def test_main_names_a_path_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder" / "f.jsonl"
    assert sc.main(["--out", str(missing), "--background", "500"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"scenario: cannot write {missing}: No such file or directory"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"hours": 8}, {"hours": 16.5}, {"background": 50}, {"start": datetime(2026, 3, 2, 8)}],
)
def test_rejects_arguments_it_cannot_honour(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sc.generate(**kwargs)


# ------------------------------------------------------------------------------ validity


def test_every_event_is_valid_socialevent_v1(scen: sc.Scenario, parsed: list[SocialEvent]) -> None:
    assert len(parsed) == len(scen.events)
    kinds = {e.kind for e in parsed}
    assert kinds == {"post", "reply", "quote", "repost", "like", "follow"}
    assert {e.platform for e in parsed} == {"twitter", "mastodon"}
    for e in parsed:
        if e.in_reply_to is not None:
            assert e.kind == "reply"
        for m in e.mentions:
            assert e.target is None or m.id != e.target.id  # a reply's target is not re-mentioned


def test_size_and_volume_are_realistic(scen: sc.Scenario) -> None:
    data = scen.jsonl_bytes()
    assert 4_000 <= len(scen.events) <= 12_000
    assert len(data) < 3_000_000
    start, end = scen.start, scen.start + timedelta(hours=scen.hours)
    times = [datetime.fromisoformat(e["created_at"]) for e in scen.events]
    assert start <= min(times) and max(times) < end


def test_delivery_is_time_ordered_with_at_most_60s_disorder(scen: sc.Scenario) -> None:
    newest = scen.start
    late = 0
    for e in scen.events:
        ts = datetime.fromisoformat(e["created_at"])
        assert ts >= newest - timedelta(seconds=60)
        late += ts < newest
        newest = max(newest, ts)
    assert late == scen.out_of_order
    assert 0.002 * len(scen.events) < late < 0.05 * len(scen.events)


def test_duplicates_are_exact_and_cover_the_dedupe_traps(scen: sc.Scenario) -> None:
    by_id: dict[str, list[dict]] = defaultdict(list)
    for e in scen.events:
        by_id[e["id"]].append(e)
    dups = {i for i, es in by_id.items() if len(es) > 1}
    assert dups == set(scen.duplicate_ids)
    assert 5 <= len(dups) <= 30
    for i in dups:
        first, *rest = by_id[i]
        assert all(orjson.dumps(r) == orjson.dumps(first) for r in rest)
    # The single negative post of each one_bad_then_good customer, one of each far-apart one.
    for cid in of_category(scen, model.CAT_BAD_THEN_GOOD) + of_category(scen, model.CAT_FAR_APART):
        assert scen.negatives[cid][0] in dups


# -------------------------------------------------------------------------- sentiment


def test_name_parts_are_not_sentiment_words(vader: SentimentIntensityAnalyzer) -> None:
    words = vocab.FIRST_NAMES + vocab.LAST_NAMES + vocab.HANDLE_TAGS
    assert [w for w in words if w in vader.lexicon] == []


@pytest.mark.parametrize("cls", sorted(vocab.TEMPLATES))
def test_every_template_rendering_is_in_its_band(
    cls: str, vader: SentimentIntensityAnalyzer
) -> None:
    lo, hi = vocab.SENTIMENT_BANDS[cls]
    renderings = [r for r in vocab.template_renderings() if r[0] == cls]
    assert len({r[2] for r in renderings}) >= 10  # varied templates
    off = [
        (round(c, 4), text)
        for _, _, _, text in renderings
        if not lo <= (c := vader.polarity_scores(text)["compound"]) <= hi
    ]
    assert off == []


def test_bands_match_the_brief() -> None:
    assert vocab.SENTIMENT_BANDS["negative"][1] <= -0.5
    assert vocab.SENTIMENT_BANDS["positive"][0] >= 0.4
    assert vocab.SENTIMENT_BANDS["strong_positive"][0] >= 0.4
    lo, hi = vocab.SENTIMENT_BANDS["neutral"]
    assert lo > -0.2 and hi < 0.2


def test_every_generated_text_is_in_its_class_band(
    scen: sc.Scenario, compounds: dict[str, float]
) -> None:
    text_ids = {e["id"] for e in scen.events if "text" in e}
    assert set(scen.text_classes) == text_ids
    off = []
    for event_id, cls in scen.text_classes.items():
        lo, hi = vocab.SENTIMENT_BANDS[cls]
        if not lo <= compounds[event_id] <= hi:
            off.append((cls, compounds[event_id], event_id))
    assert off == []
    classes = set(scen.text_classes.values())
    assert classes == {"negative", "positive", "strong_positive", "neutral", "apology"}


# ---------------------------------------------------------------------------- the truth


def test_categories_and_expected_alerts(scen: sc.Scenario) -> None:
    counts = defaultdict(int)
    for cat in scen.planted.values():
        counts[cat] += 1
    assert set(counts) == set(model.CATEGORIES)
    assert all(3 <= n <= 4 for n in counts.values())
    expected = {cid for cid, cat in scen.planted.items() if cat in model.ALERT_CATEGORIES}
    assert scen.expected_alerts == expected
    assert sorted(scen.brand_accounts) == sorted(
        scen.handles[cid] for cid in scen.planted if scen.planted[cid] == model.CAT_BRAND
    )
    assert len(scen.brand_accounts) >= 3


def test_truth_dict_is_consistent_with_the_feed(scen: sc.Scenario) -> None:
    truth = orjson.loads(orjson.dumps(scen.truth_dict()))
    by_id = {e["id"]: e for e in scen.events}
    assert truth["expected_alerts"] == sorted(scen.expected_alerts)
    assert set(truth["alerts"]) == scen.expected_alerts
    assert truth["brand_accounts"] == scen.brand_accounts
    for cid, info in truth["alerts"].items():
        negs = info["negative_event_ids"]
        assert len(negs) >= 3 and info["must_fire_by_event_id"] == negs[2]
        times = [datetime.fromisoformat(by_id[i]["created_at"]) for i in negs]
        gaps = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(times)]
        assert all(5 <= g <= 30 for g in gaps), gaps
        assert all(f"{by_id[i]['platform']}:{by_id[i]['author']['id']}" == cid for i in negs)
    assert truth["counts"]["lines"] == len(scen.events)
    assert sum(truth["counts"]["by_kind"].values()) == len(scen.events)


def test_follower_distributions(scen: sc.Scenario, parsed: list[SocialEvent]) -> None:
    followers = {e.customer_id: e.author.followers for e in parsed}
    planted = set(scen.planted)
    background = [f for cid, f in followers.items() if cid not in planted]
    assert len(background) == scen.background_accounts  # every one of them authors something
    assert 120 <= statistics.median(background) <= 320
    assert sum(f < 5_000 for f in background) / len(background) > 0.97
    assert max(background) < 10_000
    for cid, cat in scen.planted.items():
        basis = scen.influence_basis[cid]
        if basis == "followers":
            assert scen.followers[cid] >= 25_000, cid
        elif basis == "graph":
            assert 200 <= scen.followers[cid] <= 500, cid
        else:
            assert cat == model.CAT_NO_REACH and scen.followers[cid] <= 60


def test_inbound_structure(scen: sc.Scenario, unique: list[SocialEvent]) -> None:
    brands = brand_cids(scen)
    edges = interactions(unique, brands)
    first_negative = {}
    at = {e.id: e.created_at for e in unique}
    for cid in of_category(scen, model.CAT_GRAPH):
        first_negative[cid] = at[scen.negatives[cid][0]]
    inbound: dict[str, set[str]] = defaultdict(set)
    inbound_before: dict[str, set[str]] = defaultdict(set)
    for src, dst, _, ts in edges:
        inbound[dst].add(src)
        if dst in first_negative and ts < first_negative[dst] - timedelta(hours=1):
            inbound_before[dst].add(src)
    # Graph influencers: >= 60 distinct accounts, all more than an hour before the complaints.
    for cid in of_category(scen, model.CAT_GRAPH):
        assert len(inbound_before[cid]) >= 60, cid
    hubs = [cid for cid, b in scen.influence_basis.items() if b == "graph"]
    assert len(hubs) >= 6
    assert all(len(inbound[cid]) >= 60 for cid in hubs)
    # Nobody in the background comes anywhere near that.
    planted = set(scen.planted)
    busiest = max(len(s) for cid, s in inbound.items() if cid not in planted)
    assert busiest <= BACKGROUND_INBOUND_CAP <= 20
    # No reach: nobody but the brand ever interacts with them ...
    for cid in of_category(scen, model.CAT_NO_REACH):
        assert inbound[cid] == set(), cid
    # ... while the brand does reply to, like and follow them (interactions that must not count).
    brand_kinds = defaultdict(set)
    brand_targets = set()
    for e in unique:
        if e.customer_id in brands and e.target is not None:
            brand_targets.add(e.account_id(e.target.id))
            brand_kinds[e.account_id(e.target.id)].add(e.kind)
    for cid in of_category(scen, model.CAT_NO_REACH):
        assert {"reply", "follow"} <= brand_kinds[cid], cid
    assert len(brand_targets) >= 20


def _influence_percentiles(
    unique: list[SocialEvent], brands: set[str], at: datetime
) -> dict[str, float]:
    """The documented influence percentile of every account seen before `at`."""
    followers: dict[str, int] = {}
    graph = nx.DiGraph()
    before = [e for e in unique if e.created_at < at]
    for e in before:
        followers[e.customer_id] = e.author.followers or 0
        if e.target is not None:
            followers.setdefault(e.account_id(e.target.id), e.target.followers or 0)
    for src, dst, kind, _ in interactions(before, brands):
        w = MENTION_WEIGHT if kind == "mention" else KIND_WEIGHTS[kind]
        prev = graph.get_edge_data(src, dst, {"weight": 0.0})["weight"]
        graph.add_edge(src, dst, weight=prev + w)
    graph.add_nodes_from(followers)
    pr = nx.pagerank(graph, alpha=0.85, weight="weight")
    ids = sorted(followers)

    def pct(values: dict[str, float]) -> dict[str, float]:
        ordered = sorted(values.values())
        from bisect import bisect_left

        return {k: bisect_left(ordered, v) / len(ordered) for k, v in values.items()}

    fp = pct({i: float(followers[i]) for i in ids})
    pp = pct({i: pr.get(i, 0.0) for i in ids})
    return pct({i: max(fp[i], pp[i]) for i in ids})


def test_influence_under_the_documented_rule(scen: sc.Scenario, unique: list[SocialEvent]) -> None:
    brands = brand_cids(scen)
    at = {e.id: e.created_at for e in unique}
    for cid in of_category(scen, model.CAT_GRAPH):
        percentiles = _influence_percentiles(unique, brands, at[scen.negatives[cid][1]])
        assert percentiles[cid] >= 0.95, (cid, percentiles[cid])
        assert scen.followers[cid] < 10_000
    for cid in of_category(scen, model.CAT_NO_REACH):
        percentiles = _influence_percentiles(unique, brands, at[scen.negatives[cid][-1]])
        assert percentiles[cid] < 0.5, (cid, percentiles[cid])


def test_unhappiness_under_the_documented_rule(
    scen: sc.Scenario, unique: list[SocialEvent], compounds: dict[str, float]
) -> None:
    rows = windows(unique, compounds)
    brands = brand_cids(scen)
    # Planted alerts: unhappy by the 2nd negative post already (nothing else in the window).
    for cid in scen.expected_alerts:
        negs = scen.negatives[cid]
        by_id = {eid: (n, mean) for eid, n, mean in rows[cid]}
        n, mean = by_id[negs[1]]
        assert n == 2 and mean <= -0.5, (cid, n, mean)
        n, mean = by_id[negs[2]]
        assert n == 3 and mean <= -0.5, (cid, n, mean)
    for cid in of_category(scen, model.CAT_NO_REACH):
        assert any(n >= 2 and mean <= -0.5 for _, n, mean in rows[cid])
    # Everybody else never is (with a margin), even in a 6.5 h window.
    wide = windows(unique, compounds, length=timedelta(hours=6.5))
    never_unhappy = set(wide) - scen.expected_alerts - set(of_category(scen, model.CAT_NO_REACH))
    never_unhappy -= brands | set(of_category(scen, model.CAT_UNRELATED))
    assert len(never_unhappy) > 0.5 * scen.background_accounts
    for cid in never_unhappy:
        worst = min((mean for _, n, mean in wide[cid] if n >= 2), default=0.0)
        assert worst > -0.3, (cid, scen.planted.get(cid), worst)
    # The brand accounts would be unhappy (and they are influential): only the exclusion saves them.
    for cid in brands:
        assert any(n >= 2 and mean <= -0.4 for _, n, mean in rows[cid]), cid
    # So would the influential accounts unhappy about other things: only listening saves them.
    for cid in of_category(scen, model.CAT_UNRELATED):
        assert any(n >= 3 and mean <= -0.5 for _, n, mean in rows[cid]), cid


def test_counting_duplicates_twice_would_cause_false_alerts(
    scen: sc.Scenario, parsed: list[SocialEvent], compounds: dict[str, float]
) -> None:
    """The dedupe trap works: without de-duplication these influential customers look unhappy."""
    raw = sorted(parsed, key=lambda e: e.created_at)
    # Duplicates share an id; give the copies distinct ids so the window counts them both.
    seen: dict[str, int] = defaultdict(int)
    copies = []
    for e in raw:
        seen[e.id] += 1
        copies.append(dataclasses.replace(e, id=f"{e.id}#{seen[e.id]}"))
    compounds2 = {c.id: compounds[c.id.split("#")[0]] for c in copies if c.text is not None}
    rows = windows(copies, compounds2)
    for cid in of_category(scen, model.CAT_BAD_THEN_GOOD) + of_category(scen, model.CAT_FAR_APART):
        assert any(n >= 2 and mean <= -0.35 for _, n, mean in rows[cid]), cid


@pytest.mark.parametrize(("seed", "background", "hours"), [(1, 800, 17.0), (2, 1500, 24.0)])
def test_truth_holds_for_other_seeds(
    seed: int, background: int, hours: float, vader: SentimentIntensityAnalyzer
) -> None:
    """The invariants are structural, not luck of the default seed."""
    other = sc.generate(seed=seed, background=background, hours=hours)
    parsed_other = [parse_event(orjson.dumps(e), RECEIVED) for e in other.events]
    assert all(isinstance(e, SocialEvent) for e in parsed_other)
    seen: dict[str, SocialEvent] = {}
    for e in parsed_other:
        seen.setdefault(e.dedupe_key, e)
    unique_other = sorted(seen.values(), key=lambda e: (e.created_at, e.id))
    comp = {
        e["id"]: vader.polarity_scores(e["text"])["compound"] for e in other.events if "text" in e
    }
    test_categories_and_expected_alerts(other)
    test_truth_dict_is_consistent_with_the_feed(other)
    test_duplicates_are_exact_and_cover_the_dedupe_traps(other)
    test_every_generated_text_is_in_its_class_band(other, comp)
    test_inbound_structure(other, unique_other)
    test_influence_under_the_documented_rule(other, unique_other)
    test_unhappiness_under_the_documented_rule(other, unique_other, comp)
    test_counting_duplicates_twice_would_cause_false_alerts(other, parsed_other, comp)
