"""The user simulator: click models follow their configured curves, typed variants are what
they claim, and a simulated day drives the real runtime into valid, reproducible logs that do
not contain the ground truth."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from rapidfuzz.distance import DamerauLevenshtein

from ltrr_core.config import ClickModelConfig
from ltrr_core.simulate import CascadeModel, PositionBasedModel, misspell, partial


def _clicks_by_position(model, grades_rows, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    observed = np.zeros(grades_rows.shape[1])
    expected = np.zeros(grades_rows.shape[1])
    for grades in grades_rows:
        grades = [int(g) for g in grades]
        for event in model.simulate(grades, rng):
            if event.event == "click":
                observed[event.position - 1] += 1
        expected += model.click_probabilities(grades)
    return observed, expected


@pytest.mark.parametrize("model_class", [PositionBasedModel, CascadeModel])
def test_click_through_rate_by_position_follows_the_configured_model(model_class):
    config = ClickModelConfig(eta=1.0)
    rows = np.random.default_rng(0).choice([0, 1, 2], p=[0.7, 0.2, 0.1], size=(20_000, 10))
    observed, expected = _clicks_by_position(model_class(config), rows, seed=1)
    # Each position's click count is a sum of independent Bernoullis: 4 sigma of their variance.
    sigma = np.sqrt(expected)
    assert np.all(np.abs(observed - expected) <= 4 * sigma + 1), (observed, expected)
    assert observed[0] > observed[4] > observed[9]


def test_position_based_examination_is_the_configured_power_law():
    for eta in (0.5, 1.0, 2.0):
        config = ClickModelConfig(eta=eta, attraction={0: 1.0, 1: 1.0, 2: 1.0})
        rows = np.zeros((20_000, 5), dtype=int)
        observed, _ = _clicks_by_position(PositionBasedModel(config), rows, seed=2)
        ctr = observed / len(rows)
        assert ctr[0] == 1.0
        np.testing.assert_allclose(ctr[1:], (1 / np.arange(2, 6)) ** eta, atol=0.015)


def test_cascade_stops_once_satisfied():
    config = ClickModelConfig(
        model="cascade", attraction={0: 0.0, 1: 0.0, 2: 1.0}, stream_given_click={0: 0.0, 1: 0.0, 2: 1.0}
    )
    events = CascadeModel(config).simulate([0, 2, 2, 2], np.random.default_rng(3))
    assert [e.position for e in events if e.event == "click"] == [2]
    assert [e.event for e in events] == ["click", "stream"] or [e.event for e in events] == ["click", "stream", "like"]


def test_streams_and_likes_only_follow_clicks_and_skips_follow_unstreamed_clicks():
    model = PositionBasedModel(ClickModelConfig())
    rng = np.random.default_rng(4)
    for _ in range(500):
        by_position: dict[int, list[str]] = {}
        for event in model.simulate([2, 1, 0, 2, 0], rng):
            by_position.setdefault(event.position, []).append(event.event)
        for events in by_position.values():
            assert events[0] == "click"
            assert events[1] in ("stream", "skip")
            assert "like" not in events or "stream" in events


def test_misspelling_is_one_edit_keeping_the_first_letter():
    rng = np.random.default_rng(5)
    for text in ["taylor swift love story", "deadmau5 ghosts", "metallica", "halo"]:
        for _ in range(50):
            typo = misspell(text, rng)
            assert DamerauLevenshtein.distance(text, typo) <= 1
            assert [w[0] for w in typo.split()] == [w[0] for w in text.split()]
    assert misspell("abc 123", rng) == "abc 123"  # nothing long enough to misspell


def test_partial_title_is_a_proper_prefix():
    rng = np.random.default_rng(6)
    assert partial("Halo", rng) is None
    for _ in range(20):
        cut = partial("Ghosts 'n' Stuff Remix", rng)
        assert "Ghosts 'n' Stuff Remix".startswith(cut) and cut != "Ghosts 'n' Stuff Remix"


@pytest.fixture(scope="module")
def world(built_platform):
    from ltrr_core.catalog.store import CatalogStore
    from ltrr_core.simulate import World

    settings = built_platform[0]
    return World(settings, CatalogStore(settings.data_dir / "catalog").load())


@pytest.mark.slow
def test_world_is_built_from_the_real_data(world, test_settings):
    from ltrr_core.splits import cpcd_part, lastfm_user_part

    assert len(world.users) > 700  # the simulate half of the Last.fm HetRec users
    assert {lastfm_user_part(u.user_id.split(":")[1], test_settings.splits) for u in world.users} == {"simulate"}
    assert all(u.user_id.startswith("lastfm-user:") for u in world.users)
    intent = world.cpcd_intents[0]
    assert intent.kind == "cpcd_query" and set(intent.relevant.values()) == {2}
    assert all(e in world.entities.index for i in world.cpcd_intents for e in i.relevant)
    rock = world.tag_intents["rock"]
    assert 2 in rock.relevant.values() and 1 in rock.relevant.values()
    fan = max(world.users, key=lambda u: len(u.artists))
    similar = world.similar_intent(fan.artists[0])
    assert similar is not None and fan.artists[0] not in similar.relevant
    # train conversations feed the memory index and held-out ones evaluate it: neither is an intent
    conversations = {i.key.split(":")[1] for i in world.cpcd_intents}
    assert {cpcd_part(c, test_settings.splits) for c in conversations} == {"simulate"}


@pytest.fixture(scope="module")
def simulated(q2e_platform, bundle_dir, world, tmp_path_factory):
    """Two simulated days through the real runtime into a fresh log root."""
    from ltrr_core.logs.recorder import InteractionRecorder
    from ltrr_core.runtime import load_service
    from ltrr_core.simulate import Simulator

    settings = q2e_platform[0]
    out = tmp_path_factory.mktemp("sim")
    service = load_service(settings, bundle_dir)
    recorder = InteractionRecorder(out / "logs", settings.runtime)
    simulator = Simulator(settings, world, service, recorder, truth_dir=out / "truth")
    summaries = [simulator.run_day(date(2026, 3, d), 120) for d in (1, 2)]
    recorder.close()
    return settings, out, summaries, simulator


@pytest.mark.slow
def test_simulated_days_are_valid_log_partitions(simulated):
    from ltrr_core.contracts.logs import validate_log_day
    from ltrr_core.logs import read_logs
    from ltrr_core.simulate import read_truth

    settings, out, summaries, simulator = simulated
    log_root = out / "logs"
    policy = simulator.service.policy.probabilities()
    for summary in summaries:
        impressions = read_logs(log_root, "impressions", summary.day)
        feedback = read_logs(log_root, "feedback", summary.day)
        assert len(impressions) == summary.requests == 120 - summary.invalid_queries
        assert all(impressions["propensity"] == impressions["plan"].map(policy))  # the exact probability logged
        assert len(feedback) == summary.clicks + summary.streams + summary.likes + summary.skips > 0
        _, _, report = validate_log_day(log_root, summary.day, impressions, feedback)
        assert report["impressions"]["quarantined"] == 0 and report["feedback"]["quarantined"] == 0
        truth = read_truth(out / "truth", summary.day)
        assert set(truth["request_id"]) == set(impressions["request_id"])
        hours = impressions["timestamp"].dt.hour
        assert (hours.between(2, 5).mean()) < (hours.between(20, 23).mean())  # the OBD traffic curve


@pytest.mark.slow
def test_ground_truth_never_enters_the_logs(simulated):
    from ltrr_core.logs import read_logs
    from ltrr_core.simulate import read_truth

    _, out, _, _ = simulated
    impressions = read_logs(out / "logs", "impressions")
    truth = read_truth(out / "truth").set_index("request_id")
    assert {k for c in impressions["context"] for k in json.loads(c)} == {"hour", "weekday", "profile_top_tags"}
    forbidden = {"intent", "relevant", "grade", "intent_key"}
    assert not forbidden & set(impressions.columns)
    for row in impressions.itertuples():
        record = json.dumps({k: str(v) for k, v in row._asdict().items()})
        assert truth.at[row.request_id, "intent_key"] not in record


@pytest.mark.slow
def test_simulated_ctr_by_position_follows_the_click_model(simulated):
    _, _, summaries, _ = simulated
    n = sum(s.requests for s in summaries)
    observed = sum(np.array(s.ctr_by_position) * s.requests for s in summaries)
    expected = sum(np.array(s.expected_ctr_by_position) * s.requests for s in summaries)
    assert np.all(np.abs(observed - expected) <= 4 * np.sqrt(expected) + 1), (observed, expected)
    assert observed[0] / n > 0.2  # people find what they look for at the top, often


@pytest.mark.slow
def test_a_day_is_reproducible_and_never_logged_twice(simulated, bundle_dir, tmp_path):
    """Re-simulated by a freshly loaded runtime (its own process seed), the day is the same."""
    from ltrr_core.logs import read_logs
    from ltrr_core.logs.recorder import InteractionRecorder
    from ltrr_core.runtime import load_service
    from ltrr_core.simulate import DayAlreadyLogged, Simulator, days_to_simulate

    settings, out, summaries, simulator = simulated
    log_root = out / "logs"
    recorder = InteractionRecorder(tmp_path / "logs", settings.runtime)
    replay = Simulator(
        settings, simulator.world, load_service(settings, bundle_dir), recorder, truth_dir=tmp_path / "truth"
    ).run_day(date(2026, 3, 1), 120)
    recorder.close()
    first = read_logs(log_root, "impressions", "2026-03-01").sort_values("request_id")
    second = read_logs(tmp_path / "logs", "impressions", "2026-03-01").sort_values("request_id")
    assert list(first["request_id"]) == list(second["request_id"])
    assert [list(x) for x in first["shown_ids"]] == [list(x) for x in second["shown_ids"]]
    assert replay.clicks == summaries[0].clicks and replay.likes == summaries[0].likes
    with pytest.raises(DayAlreadyLogged, match="2026-03-02"):
        days_to_simulate(settings, log_root, 2, date(2026, 3, 2))
    assert days_to_simulate(settings, log_root, 1) == [date(2026, 3, 3)]


@pytest.mark.slow
def test_simulated_logs_feed_the_memory_index_engagement(simulated, q2e_platform):
    from ltrr_core.logs import read_logs
    from ltrr_core.memory import observed_statistics
    from ltrr_core.memory.build import load_engagement
    from ltrr_core.memory.engagement import log_engagement

    settings, out, summaries, _ = simulated
    impressions, feedback = read_logs(out / "logs", "impressions"), read_logs(out / "logs", "feedback")
    rows = log_engagement(impressions, feedback)
    assert len(rows) == impressions["shown_ids"].map(len).sum() + len(feedback)
    assert rows.loc[rows["event"] == "impression", "position"].between(1, settings.runtime.max_results).all()
    stats = observed_statistics(rows, settings.memory)
    liked = feedback[feedback["event"] == "like"].iloc[0]
    query = impressions.set_index("request_id").at[liked["request_id"], "normalised_query"]
    pair = stats[(stats["query"] == query) & (stats["entity_id"] == liked["entity_id"])]
    assert len(pair) == 1 and pair["n_engaged"].iloc[0] >= 1.0
    # load_engagement adds every contract-checked logged day to the CPCD bootstrap rows
    with_logs = load_engagement(settings.with_overrides(**{"runtime.log_dir": str(out / "logs")}))
    without = load_engagement(settings.with_overrides(**{"memory.use_runtime_logs": False}))
    assert len(with_logs) == len(without) + len(rows)


@pytest.mark.slow
def test_simulate_command_writes_two_valid_day_partitions(q2e_platform, bundle_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    _, _, config_file = q2e_platform
    config = tmp_path / "simulate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(config_file),
                "runtime": {"log_dir": str(tmp_path / "logs")},
                "simulate": {"out_dir": str(tmp_path / "sim")},
            }
        )
    )
    ltrr = Path(sys.executable).with_name("ltrr")
    out = subprocess.run(
        [
            str(ltrr),
            "--config",
            str(config),
            "simulate",
            "--days",
            "2",
            "--queries-per-day",
            "30",
            "--start-date",
            "2026-05-01",
            "--bundle",
            str(bundle_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    days = json.loads(out.stdout)
    assert [d["day"] for d in days] == ["2026-05-01", "2026-05-02"]
    for day in days:
        assert day["requests"] + day["invalid_queries"] == 30
        assert day["contracts"]["impressions"] == {
            "rows": day["requests"],
            "kept": day["requests"],
            "quarantined": 0,
            "reasons": {},
        }
        assert day["contracts"]["feedback"]["quarantined"] == 0
        assert (tmp_path / "logs" / "impressions" / f"date={day['day']}").is_dir()
    again = subprocess.run(
        [
            str(ltrr),
            "--config",
            str(config),
            "simulate",
            "--days",
            "1",
            "--start-date",
            "2026-05-02",
            "--bundle",
            str(bundle_dir),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 1 and "already have impressions" in again.stderr
