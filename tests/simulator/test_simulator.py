"""The simulator: determinism, plausible rates, noise as configured, ground truth consistency."""
import csv
import json
import math
import os

import numpy as np
import pytest

from simulator import cli
from simulator.config import SECONDS_PER_DAY, SimConfig
from simulator.dataset import GROUND_TRUTH_FILE, REPORT_FILE, write_dataset
from simulator.report import roc_auc

SMALL = dict(num_users=600, num_items=800, num_categories=30, num_brands=80, days=8,
             users_per_shard=250)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_events(folder):
    rows = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("events"):
            rows += read_csv(os.path.join(folder, name))
    return rows


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sim"))
    config = SimConfig(seed=11, **SMALL)
    report = write_dataset(config, folder, progress=lambda message: None)
    return config, folder, report


def folder_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in sorted(os.listdir(folder))}


def test_deterministic_for_a_seed(tmp_path, small_dataset):
    config, folder, _ = small_dataset
    write_dataset(config, str(tmp_path / "again"), progress=lambda m: None)
    assert folder_bytes(folder) == folder_bytes(str(tmp_path / "again"))
    other = SimConfig(seed=12, **SMALL)
    write_dataset(other, str(tmp_path / "other"), progress=lambda m: None)
    assert (folder_bytes(folder)["events-00000-of-00003.csv"]
            != folder_bytes(str(tmp_path / "other"))["events-00000-of-00003.csv"])


def test_layout_and_sharding(small_dataset):
    _, folder, _ = small_dataset
    names = sorted(os.listdir(folder))
    assert names == ["events-00000-of-00003.csv", "events-00001-of-00003.csv",
                     "events-00002-of-00003.csv", GROUND_TRUTH_FILE, "items.csv",
                     REPORT_FILE, "users.csv"]
    with open(os.path.join(folder, "events-00001-of-00003.csv")) as f:
        assert f.readline().strip() == "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid"


def test_click_rate_in_plausible_band(small_dataset):
    _, _, report = small_dataset
    assert 0.02 <= report.click_rate <= 0.10


def test_explicit_feedback_rarer_than_clicks(small_dataset):
    _, _, report = small_dataset
    counts = report.events_by_feedback
    assert 0 < counts["like"] < counts["click"]
    assert 0 < counts["dislike"] < counts["click"]


def test_oracle_auc_strictly_between_half_and_one(small_dataset):
    _, _, report = small_dataset
    assert 0.5 < report.oracle_auc < 1.0


def test_report_counts_match_the_files(small_dataset):
    config, folder, report = small_dataset
    events = read_events(folder)
    assert len(events) == report.events
    by_feedback = {}
    for row in events:
        by_feedback[row["feedback"]] = by_feedback.get(row["feedback"], 0) + 1
    assert by_feedback == report.events_by_feedback
    assert sum(1 for row in events if row["item_id"] == "") == report.category_level_events
    saved = json.load(open(os.path.join(folder, REPORT_FILE)))
    assert saved["report"]["events"] == report.events
    assert saved["config"]["seed"] == config.seed


def test_ground_truth_matches_impressions(small_dataset):
    config, folder, report = small_dataset
    events = read_events(folder)
    impressions = {(row["user_id"], row["timestamp"], row["item_id"]): row["feedback"]
                   for row in events
                   if row["item_id"] and row["feedback"] in ("click", "unclick")}
    truth = read_csv(os.path.join(folder, GROUND_TRUTH_FILE))
    assert len(truth) == len(impressions) == report.impressions
    for row in truth:
        logged = impressions[(row["user_id"], row["timestamp"], row["item_id"])]
        assert logged == ("click" if row["label"] == "1" else "unclick")
        assert 0.0 < float(row["click_probability"]) < 1.0
        assert row["noise"] in ("", "accidental", "missed")
        if row["noise"] == "accidental":
            assert row["label"] == "1"
        if row["noise"] == "missed":
            assert row["label"] == "0"
    # The oracle AUC is recomputable from the file on the eval split.
    eval_rows = [row for row in truth if int(row["timestamp"]) >= config.eval_start_timestamp]
    auc = roc_auc(np.array([float(row["click_probability"]) for row in eval_rows]),
                  np.array([int(row["label"]) for row in eval_rows]))
    assert auc == pytest.approx(report.oracle_auc, abs=1e-4)


def test_timestamps_in_range_and_strictly_increasing_impressions(small_dataset):
    config, folder, _ = small_dataset
    truth = read_csv(os.path.join(folder, GROUND_TRUTH_FILE))
    by_user = {}
    for row in truth:
        by_user.setdefault(row["user_id"], []).append(int(row["timestamp"]))
    for times in by_user.values():
        assert all(later > earlier for earlier, later in zip(times, times[1:]))
    events = read_events(folder)
    times = np.array([int(row["timestamp"]) for row in events])
    # Only the behaviour log (category-level events) reaches back into the prior days.
    first_day = np.array([int(row["timestamp"]) >= config.start_timestamp for row in events])
    assert all(row["item_id"] == "" for row, later in zip(events, first_day) if not later)
    assert times.min() >= config.start_timestamp - config.prior_days * SECONDS_PER_DAY
    assert (~first_day).any()
    # Sessions end within minutes of their day (a late session may spill past midnight).
    assert times.max() < config.start_timestamp + config.days * SECONDS_PER_DAY + 4 * 3600


def test_likes_follow_a_click_and_dislikes_an_impression(small_dataset):
    _, folder, _ = small_dataset
    events = read_events(folder)
    clicked, unclicked = {}, {}
    for row in events:
        key = (row["user_id"], row["item_id"])
        target = clicked if row["feedback"] == "click" else unclicked
        if row["feedback"] in ("click", "unclick") and row["item_id"]:
            target.setdefault(key, []).append(int(row["timestamp"]))
    for row in events:
        key, ts = (row["user_id"], row["item_id"]), int(row["timestamp"])
        if row["feedback"] == "like" and row["item_id"]:
            assert any(t < ts for t in clicked.get(key, []))
        if row["feedback"] == "like" and not row["item_id"]:  # a need's purchase
            assert row["cate_id"]
        if row["feedback"] == "dislike":  # of an unclicked item, or one clicked by mistake
            assert any(t < ts for t in unclicked.get(key, []) + clicked.get(key, []))


def test_profile_and_catalogue_tables(small_dataset):
    config, folder, _ = small_dataset
    users = read_csv(os.path.join(folder, "users.csv"))
    # About 5% of users have no profile row; some pvalue levels are empty.
    assert 0.85 * config.num_users < len(users) < config.num_users
    assert any(row["pvalue_level"] == "" for row in users)
    items = read_csv(os.path.join(folder, "items.csv"))
    assert len(items) == config.num_items
    assert any(row["brand_id"] == "" for row in items)
    assert all(float(row["price"]) > 0 for row in items)


@pytest.mark.parametrize("accidental,missed", [(0.05, 0.2), (0.0, 0.0)])
def test_configured_noise_rates_are_met(tmp_path, accidental, missed):
    config = SimConfig(seed=3, accidental_click_rate=accidental, missed_click_rate=missed, **SMALL)
    report = write_dataset(config, str(tmp_path), progress=lambda m: None)
    for observed, expected, n in [
            (report.accidental_click_rate, accidental, report.impressions_without_intent),
            (report.missed_click_rate, missed, report.intended_clicks)]:
        sigma = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
        assert abs(observed - expected) <= 4 * sigma + 1e-12


def test_more_noise_lowers_the_oracle_auc(tmp_path):
    clean = write_dataset(SimConfig(seed=5, accidental_click_rate=0.0, missed_click_rate=0.0,
                                    **SMALL), str(tmp_path / "clean"), progress=lambda m: None)
    noisy = write_dataset(SimConfig(seed=5, accidental_click_rate=0.08, missed_click_rate=0.4,
                                    **SMALL), str(tmp_path / "noisy"), progress=lambda m: None)
    assert noisy.oracle_auc < clean.oracle_auc


def test_refuses_to_mix_with_existing_events(small_dataset):
    config, folder, _ = small_dataset
    with pytest.raises(FileExistsError, match="already holds event files"):
        write_dataset(config, folder, progress=lambda m: None)


def test_roc_auc_hand_computed():
    # Pairs (pos, neg): (0.8,0.1) win, (0.8,0.4) win, (0.4,0.1) win, (0.4,0.4) tie -> 3.5/4.
    assert roc_auc(np.array([0.8, 0.4, 0.1, 0.4]), np.array([1, 1, 0, 0])) == pytest.approx(0.875)
    assert roc_auc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    assert math.isnan(roc_auc(np.array([0.1, 0.9]), np.array([1, 1])))


def test_config_validation():
    with pytest.raises(ValueError, match="eval_days"):
        SimConfig(days=2, eval_days=2)
    with pytest.raises(ValueError, match="missed_click_rate"):
        SimConfig(missed_click_rate=1.5)
    with pytest.raises(ValueError, match="unknown simulator settings: colour"):
        SimConfig.from_dict({"colour": 1})


def test_cli_writes_and_reports(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert cli.main(["--out", out, "--report", "--quiet", "--num-users", "200",
                     "--num-items", "300", "--num-categories", "20", "--num-brands", "40"]) == 0
    printed = capsys.readouterr().out
    for word in ("click", "unclick", "like", "dislike", "users", "items", "click rate",
                 "oracle AUC"):
        assert word in printed
    assert cli.main(["--show-report", out]) == 0
    assert "oracle AUC" in capsys.readouterr().out


def test_cli_rejects_bad_settings(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "--days", "1", "--eval-days", "1", "--quiet"]) == 2
    assert "eval_days" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])


def _share_in_earlier_clicked_categories(config):
    """Share of impressions, of users with an earlier item click, shown in a category she
    clicked before (clicks of earlier sessions or earlier in the session alike)."""
    from simulator.generate import CLICK, UNCLICK, build_world, iterate_shards
    world = build_world(config)
    inside, total = 0, 0
    for _, events, _ in iterate_shards(config, world):
        clicked = {}
        for user, item, category, feedback in zip(events.user, events.item, events.category,
                                                  events.feedback):
            if item < 0 or feedback not in (CLICK, UNCLICK):
                continue
            seen = clicked.get(user)
            if seen:
                total += 1
                inside += category in seen
            if feedback == CLICK:
                clicked.setdefault(user, set()).add(category)
    return inside / total


def test_retargeting_shows_the_categories_of_earlier_clicks():
    base = dict(SMALL, num_users=300, seed=4)
    without = _share_in_earlier_clicked_categories(SimConfig(retarget_share=0.0, **base))
    with_half = _share_in_earlier_clicked_categories(SimConfig(retarget_share=0.5, **base))
    # Half the impressions come from earlier clicks' categories (less the users' first
    # sessions, which have none), on top of what interest already puts there.
    assert with_half >= without + 0.5 * (1 - without) * 0.6
    with pytest.raises(ValueError, match="popularity_share \\+ retarget_share"):
        SimConfig(popularity_share=0.6, retarget_share=0.5)


def test_retargeting_off_leaves_the_other_draws_alone():
    """retarget_share draws from its own stream: the impressions it does not move keep their
    items, and every other feedback follows the same uniform draws."""
    from simulator.generate import build_world, iterate_shards
    base = SimConfig(seed=9, **SMALL)
    moved = SimConfig(seed=9, retarget_share=0.2, **SMALL)
    for (_, _, truth_a), (_, _, truth_b) in zip(iterate_shards(base, build_world(base)),
                                                iterate_shards(moved, build_world(moved))):
        assert np.array_equal(truth_a.timestamp, truth_b.timestamp)
        same = truth_a.item == truth_b.item
        assert 0.6 < same.mean() < 0.95
        # The truth is a function of the session's interest and the item alone.
        assert np.allclose(truth_a.click_probability[same], truth_b.click_probability[same])


def _all_shards(config):
    from simulator.generate import build_world, iterate_shards
    world = build_world(config)
    shards = list(iterate_shards(config, world))
    events = {name: np.concatenate([getattr(e, name) for _, e, _ in shards])
              for name in ("user", "item", "category", "brand", "timestamp", "feedback", "pid")}
    truth = {name: np.concatenate([getattr(t, name) for _, _, t in shards])
             for name in ("user", "item", "timestamp", "click_probability", "label")}
    return world, events, truth


def test_prior_browsing_is_category_level_history_before_the_first_day():
    """prior_days adds category-level clicks (the behaviour log) before the first impression
    day, as many as sessions x clicks per session, and leaves the impression days alone."""
    from simulator.generate import CLICK
    base = SimConfig(seed=5, prior_days=0, need_categories_per_segment=0, **SMALL)
    prior = SimConfig(seed=5, prior_days=10, prior_clicks_per_session=6.0,
                      need_categories_per_segment=0, **SMALL)
    _, events_a, truth_a = _all_shards(base)
    _, events_b, truth_b = _all_shards(prior)
    for name in truth_a:  # the same impressions and truth
        assert np.array_equal(truth_a[name], truth_b[name])
    early = events_b["timestamp"] < prior.start_timestamp
    assert early.sum() == len(events_b["user"]) - len(events_a["user"])
    assert (events_b["timestamp"][early]
            >= prior.start_timestamp - 10 * SECONDS_PER_DAY).all()
    assert (events_b["feedback"][early] == CLICK).all()
    assert (events_b["item"][early] == -1).all() and (events_b["category"][early] >= 0).all()
    expected = SMALL["num_users"] * 10 * prior.sessions_per_day * 6.0
    assert abs(early.sum() - expected) < 0.05 * expected
    # Each shard stays time-ordered, and prior clicks are drawn from interest: a user's
    # concentrate on fewer categories than uniform draws would.
    from simulator.generate import build_world, iterate_shards
    for _, shard, _ in iterate_shards(prior, build_world(prior)):
        assert (np.diff(shard.timestamp) >= 0).all()
    per_user = {}
    for user, category in zip(events_b["user"][early], events_b["category"][early]):
        per_user.setdefault(user, []).append(category)
    top_share = np.mean([np.bincount(c).max() / len(c) for c in per_user.values() if len(c) >= 30])
    assert top_share > 3.0 / SMALL["num_categories"]


def test_periodic_needs_are_bought_at_intervals_and_clicked_when_shown():
    """A need (the paper's cat food) is bought every need_interval_days on average, as
    category-level clicks and a like, by the users who have it only; its impressions reach
    the whole segment, and the users with the need click them far more often."""
    from simulator.generate import CLICK, LIKE, UNCLICK
    config = SimConfig(seed=6, num_users=1500, num_items=800, num_categories=30, num_brands=80,
                       days=8, prior_days=20, prior_clicks_per_session=2.0, need_categories_per_segment=2, need_rate=0.4,
                       need_interval_days=6.0, need_impression_share=0.2, users_per_shard=500)
    world, events, truth = _all_shards(config)
    assert 0.3 < world.user_needs.mean() < 0.5
    likes = (events["feedback"] == LIKE) & (events["item"] < 0)
    need_like = world.need_of(events["user"][likes], events["category"][likes])
    assert need_like.all()  # category-level likes are purchases of a need, of its owner
    gaps = []
    by_key = {}
    for user, category, time in zip(events["user"][likes], events["category"][likes],
                                    events["timestamp"][likes]):
        by_key.setdefault((user, category), []).append(time)
    for times in by_key.values():
        gaps += list(np.diff(sorted(times)) / SECONDS_PER_DAY)
    assert abs(np.mean(gaps) - 6.0) < 0.6
    span = config.prior_days + config.days
    assert abs(len(by_key) - world.user_needs.sum()) <= 0.02 * world.user_needs.sum()
    assert abs(np.mean([len(t) for t in by_key.values()]) - span / 6.0) < 1.0
    # Demographic targeting: at least the configured share of impressions shows a category
    # of the user's segment's pool, whether the user has that need or not.
    category = world.item_category[truth["item"]]
    pool = world.segment_need_categories[world.user_segment[truth["user"]]]
    in_pool = (pool == category[:, None]).any(axis=1)
    assert in_pool.mean() >= 0.2
    need = world.need_of(truth["user"], category)
    assert 0 < need.sum() < in_pool.sum()
    click_need = truth["label"][need].mean()
    click_other_pool = truth["label"][in_pool & ~need].mean()
    assert click_need > 3 * click_other_pool
    assert (events["feedback"] != UNCLICK).any() and (events["feedback"] == CLICK).any()


def test_needs_and_prior_days_off_leave_the_world_alone():
    """Both draw from their own streams: with them off, the world and events are those of a
    configuration without the settings at all (the built-in dataset does not move)."""
    from simulator.generate import build_world
    none = dict(prior_days=0, need_categories_per_segment=0)
    base = SimConfig(seed=3, **none, **SMALL)
    off = SimConfig(seed=3, need_rate=0.9, need_interval_days=3.0, prior_clicks_per_session=2.0,
                    **none, **SMALL)
    with_needs = SimConfig(seed=3, prior_days=0, need_categories_per_segment=2, **SMALL)
    world_a, world_b = build_world(base), build_world(with_needs)
    for name in ("category_vectors", "item_category", "user_interest", "user_profile"):
        assert np.array_equal(getattr(world_a, name), getattr(world_b, name))
    _, events_a, truth_a = _all_shards(base)
    _, events_off, truth_off = _all_shards(off)
    for name in events_a:
        assert np.array_equal(events_a[name], events_off[name])
    with pytest.raises(ValueError, match="need_categories_per_segment"):
        SimConfig(need_categories_per_segment=200, num_categories=120)
    with pytest.raises(ValueError, match="prior_days"):
        SimConfig(prior_days=-1)
