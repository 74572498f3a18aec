"""Golden tests of FeedbackExampleGen's executor on tiny hand-made logs of both layouts."""
import glob
import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.feedback_example_gen import beam_steps
from components.feedback_example_gen.component import FeedbackExampleGen, FeedbackLogReport
from components.feedback_example_gen.executor import (BadRowsError, Executor, UnusableOutputError,
                                                    check_summary)
from models import features as F

DAY = 86400
T0 = 1494000000  # 2017-05-06 00:00 Beijing


def write(folder, name, text):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())


def run_executor(input_base, out, **overrides):
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(out, "examples")
    report = FeedbackLogReport()
    report.uri = os.path.join(out, "report")
    properties = dict(input_base=input_base, layout="auto", max_seq_len=2, num_samples=2,
                      eval_days=1, eval_start_timestamp=0, timezone_offset_hours=8, seed=0,
                      max_bad_row_fraction=0.5, min_eval_examples=1)
    properties.update(overrides)
    Executor().Do({}, {"examples": [examples], "log_report": [report]}, properties)
    return examples, report


def read_split(examples, split):
    paths = glob.glob(os.path.join(examples.uri, "Split-%s" % split, "*.gz"))
    parsed = []
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            row[name] = [v.decode() if isinstance(v, bytes) else v for v in values]
        parsed.append(row)
    return sorted(parsed, key=lambda r: (r["user_id"], r["timestamp"]))


@pytest.fixture(scope="module")
def canonical_run(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("canonical"))
    # Two event files, later events first: input order must not matter.
    write(data, "events-2.csv",
          "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"
          "u1,i3,,,%d,unclick,p2\n"          # eval day; cate/brand from items.csv
          "u2,i1,c1,b1,%d,click,p1\n"
          "u1,i2,c2,,%d,like,\n"              # same second as the impression below
          "bad line without enough columns\n"
          % (T0 + 7 * DAY + 5, T0 + 7 * DAY + 9, T0 + 100))
    write(data, "events-1.csv",
          "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"
          "u1,i1,c1,b1,%d,click,p1\n"
          "u1,,c9,,%d,click,\n"               # category-level click: history only
          "u1,i2,c2,,%d,unclick,p1\n"
          "u1,i4,c2,b2,%d,dislike,\n"
          "u9,i1,c1,b1,%d,purchase,p1\n"      # unknown feedback
          % (T0 + 10, T0 + 20, T0 + 100, T0 + 200, T0 + 300))
    write(data, "items.csv", "item_id,cate_id,brand_id,price\ni1,c1,b1,10.5\ni2,c2,,3\n"
                             "i3,c3,b3,7\ni3,c3,b3,8\n")
    write(data, "users.csv", "user_id,age_level,pvalue_level\nu1,3,\n")
    out = str(tmp_path_factory.mktemp("out"))
    examples, report = run_executor(data, out)
    return examples, report


def test_canonical_golden(canonical_run):
    examples, _ = canonical_run
    train = read_split(examples, "train")
    assert [(r["user_id"][0], r["item_id"], r["label"]) for r in train] == [
        ("u1", ["i1"], [1]), ("u1", ["i2"], [0])]
    first, second = train
    assert first["cate_id"] == ["c1"] and first["price"] == [10.5]
    assert first["profile_age_level"] == ["3"] and first["profile_pvalue_level"] == [""]
    for f in F.FEEDBACK_TYPES:
        assert first[F.seq(f, "item")] == [] and first[F.full_length(f)] == [0]
    # At T0+100: the earlier click on i1 and the category-level click; not the like of the
    # same second.
    assert second[F.seq("click", "item")] == ["i1", ""]
    assert second[F.seq("click", "cate")] == ["c1", "c9"]
    assert second[F.seq("click", "brand")] == ["b1", ""]
    assert second[F.seq("like", "item")] == []
    assert second[F.full_length("click")] == [2]
    assert sorted(second[F.sample("click", "cate")]) == ["c1", "c9"]
    assert second["price"] == [3.0]

    evaluation = read_split(examples, "eval")
    assert [(r["user_id"][0], r["item_id"], r["label"]) for r in evaluation] == [
        ("u1", ["i3"], [0]), ("u2", ["i1"], [1])]
    u1, u2 = evaluation
    # Category and brand come from items.csv; the smaller duplicate row of i3 wins.
    assert u1["cate_id"] == ["c3"] and u1["brand_id"] == ["b3"] and u1["price"] == [7.0]
    # T = 2: the two most recent clicks, oldest first; the like and dislike are seen.
    assert u1[F.seq("click", "item")] == ["i1", ""]
    assert u1[F.seq("unclick", "item")] == ["i2"]
    assert u1[F.seq("like", "item")] == ["i2"] and u1[F.seq("dislike", "item")] == ["i4"]
    assert u1["pid"] == ["p2"]
    # u2 has no profile row: its profile fields are empty, not missing.
    assert u2["profile_age_level"] == [""]


def test_canonical_report_counts_and_bad_rows(canonical_run):
    examples, report = canonical_run
    summary = beam_steps.read_summary(report.uri)
    counts = summary.counts
    assert counts["lines/events-1.csv"] == 5 and counts["lines/events-2.csv"] == 4
    assert counts["bad_rows/wrong column count"] == 1
    assert counts["bad_rows/unknown feedback value"] == 1
    assert summary.bad_rows == 2
    assert counts["examples_train"] == 2 and counts["examples_eval"] == 2
    assert counts["duplicate_item_rows"] == 1
    # Events by type (read, not set aside): the category-level click counts as a click.
    assert {k: v for k, v in counts.items() if k.startswith("events/")} == {
        "events/click": 3, "events/unclick": 2, "events/like": 1, "events/dislike": 1}
    assert counts["impressions_of_users_without_profile"] == 1
    assert counts["eval_start_timestamp"] == T0 + 7 * DAY
    bad = [json.loads(line) for path in glob.glob(os.path.join(report.uri, "bad_rows*.jsonl"))
           for line in open(path)]
    assert sorted((b["source"], b["reason"]) for b in bad) == [
        ("events-1.csv", "unknown feedback value"), ("events-2.csv", "wrong column count")]
    assert any(b["line"] == "bad line without enough columns" for b in bad)
    # Line numbers as an editor shows them (the header is line 1).
    assert sorted((b["source"], b["line_number"]) for b in bad) == [
        ("events-1.csv", 6), ("events-2.csv", 5)]
    assert report.get_int_custom_property("bad_rows") == 2
    assert examples.split_names == '["train", "eval"]'


def test_tianchi_golden(tmp_path):
    data = str(tmp_path / "tianchi")
    os.makedirs(data)
    write(data, "raw_sample.csv", "user,time_stamp,adgroup_id,pid,nonclk,clk\n"
                                  "7,%d,100,430548_1007,1,0\n"
                                  "7,%d,101,430539_1007,0,1\n"
                                  "7,%d,100,430548_1007,1,1\n"    # inconsistent
                                  % (T0 + 50, T0 + 7 * DAY + 50, T0 + 60))
    write(data, "ad_feature.csv", "adgroup_id,cate_id,campaign_id,customer,brand,price\n"
                                  "100,6406,1,2,NULL,58.0\n101,6407,1,2,95766,9.9\n")
    write(data, "user_profile.csv",
          "userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,"
          "shopping_level,occupation,new_user_class_level \n7,0,5,2,5,,3,0,\n")
    write(data, "behavior_log.csv", "user,time_stamp,btag,cate,brand\n"
                                    "7,%d,pv,6407,NULL\n7,%d,cart,6406,3\n7,%d,share,1,1\n"
                                    % (T0 + 10, T0 + 20, T0 + 30))
    # Its eval split holds one click only: the one-label check is off for this golden case.
    examples, report = run_executor(data, str(tmp_path / "out"), check_eval_labels=0)
    train, evaluation = read_split(examples, "train"), read_split(examples, "eval")
    assert len(train) == 1 and len(evaluation) == 1
    first, later = train[0], evaluation[0]
    assert first["item_id"] == ["100"] and first["cate_id"] == ["6406"]
    assert first["brand_id"] == [""] and first["label"] == [0] and first["price"] == [58.0]
    assert first[F.seq("click", "cate")] == ["6407"] and first[F.seq("click", "item")] == [""]
    assert first[F.seq("like", "cate")] == ["6406"] and first[F.seq("like", "brand")] == ["3"]
    assert first["profile_new_user_class_level"] == [""]
    assert first["profile_age_level"] == ["5"]
    assert later["label"] == [1] and later["brand_id"] == ["95766"]
    assert later[F.seq("unclick", "item")] == ["100"]
    counts = beam_steps.read_summary(report.uri).counts
    assert counts["bad_rows/inconsistent clk/nonclk"] == 1
    assert counts["bad_rows/unknown feedback value"] == 1


def test_too_many_bad_rows_fail_with_a_clear_message(tmp_path):
    data = str(tmp_path / "bad")
    os.makedirs(data)
    write(data, "events.csv", "user_id,item_id,cate_id,brand_id,timestamp,feedback\n"
                              "u,i,c,b,%d,click\nu,i,c,b,%d,click\nu,i,c,b,oops,click\n"
                              % (T0, T0 + DAY))
    with pytest.raises(BadRowsError, match=r"1 of 3 lines .*non-numeric timestamp 1\. First: "
                                           r"events\.csv line 4: non-numeric timestamp"):
        run_executor(data, str(tmp_path / "out"), max_bad_row_fraction=0.2,
                     check_eval_labels=0)
    # Within the allowed fraction the run succeeds and reports it.
    _, report = run_executor(data, str(tmp_path / "out2"), max_bad_row_fraction=0.5,
                             check_eval_labels=0)
    assert beam_steps.read_summary(report.uri).bad_rows == 1


def test_no_input_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no files found"):
        run_executor(str(tmp_path), str(tmp_path / "out"))


def test_component_validates_arguments():
    with pytest.raises(ValueError, match="eval_days"):
        FeedbackExampleGen(input_base="/x", eval_days=0)
    component = FeedbackExampleGen(input_base="/x", max_seq_len=50)
    assert component.exec_properties["max_seq_len"] == 50
    assert set(component.outputs) == {"examples", "log_report"}


def test_eval_start_is_the_last_days_in_beijing_time():
    # 2017-05-13 23:59:59 Beijing -> eval day starts 2017-05-13 00:00 Beijing.
    assert beam_steps.eval_start_timestamp(T0 + 8 * DAY - 1, 1, 8) == T0 + 7 * DAY
    assert beam_steps.eval_start_timestamp(T0 + 8 * DAY - 1, 2, 8) == T0 + 6 * DAY
    assert beam_steps.eval_start_timestamp(T0 + 7 * DAY, 1, 8) == T0 + 7 * DAY


def test_lost_events_or_impressions_fail_the_run():
    counts = {"lines/e.csv": 13, "impressions": 10, "history_only_events": 2,
              "events_grouped": 12, "examples_train": 6, "examples_eval": 3}
    with pytest.raises(RuntimeError, match="10 impressions read but 9 examples built: 1 lost"):
        check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")
    counts["examples_eval"] = 4
    check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")
    # Events lost in the shuffle are caught even when no impression is among them.
    counts["events_grouped"] = 11
    with pytest.raises(RuntimeError, match="12 events read but 11 events after the group-by-user"):
        check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")


@pytest.mark.e2e
def test_multi_process_run_writes_every_impression_of_a_simulated_log(tmp_path, monkeypatch):
    """Two Beam worker processes, many read ranges and bundles: the files hold exactly the
    simulator's impressions, split as the simulator split them, and the counts agree.

    The multi-process DirectRunner is where Beam 2.60 lost stage inputs (beam_fixes.py)."""
    from simulator.config import SimConfig
    from simulator.dataset import write_dataset

    data = str(tmp_path / "data")
    truth = write_dataset(SimConfig(seed=11, num_users=600, num_items=400, num_categories=20,
                                    num_brands=50, days=6, users_per_shard=200),
                          data, progress=lambda m: None)
    # Small read ranges, so each file is read in several bundles spread over both workers.
    monkeypatch.setattr(beam_steps, "READ_RANGE_BYTES", 64 << 10)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    report = FeedbackLogReport()
    report.uri = str(tmp_path / "report")
    context = Executor.Context(beam_pipeline_args=["--direct_running_mode=multi_processing",
                                                   "--direct_num_workers=2"],
                               tmp_dir=str(tmp_path))
    Executor(context).Do({}, {"examples": [examples], "log_report": [report]}, dict(
        input_base=data, layout="auto", max_seq_len=20, num_samples=3, eval_days=1,
        eval_start_timestamp=0, timezone_offset_hours=8, seed=0, max_bad_row_fraction=0.0))

    def records(split):
        paths = glob.glob(os.path.join(examples.uri, "Split-%s" % split, "*.gz"))
        return sum(1 for _ in tf.data.TFRecordDataset(paths, compression_type="GZIP"))

    assert records("train") == truth.train_impressions
    assert records("eval") == truth.eval_impressions
    counts = beam_steps.read_summary(report.uri).counts
    assert counts["impressions"] == counts["impressions_grouped"] == truth.impressions
    assert counts["events_grouped"] == truth.events
    event_lines = sum(v for k, v in counts.items() if k.startswith("lines/events"))
    assert event_lines == truth.events and len(glob.glob(os.path.join(data, "events-*"))) == 3


# ----------------------------------------------------------------------------------------
# Files at the edges: compressed, nested, unknown (nothing may be lost without a word)
# ----------------------------------------------------------------------------------------
EVENTS_CSV = ("user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"
              + "".join("u%d,i%d,c1,b1,%d,%s,p1\n" % (n % 7, n % 5, T0 + 60 * n,
                                                      "click" if n % 3 == 0 else "unclick")
                        for n in range(400))
              + "u1,i1,c1,b1,%d,click,p1\nu2,i2,c1,b1,%d,unclick,p1\n"
              % (T0 + 7 * DAY + 5, T0 + 7 * DAY + 9))


def _gzip(text):
    import gzip
    return gzip.compress(text.encode(), mtime=0)


@pytest.mark.parametrize("compress", ["gzip", "bzip2"])
def test_a_truncated_archive_fails_naming_the_file_and_the_offset(tmp_path, compress):
    import bz2
    data = tmp_path / "data"
    data.mkdir()
    whole = _gzip(EVENTS_CSV) if compress == "gzip" else bz2.compress(EVENTS_CSV.encode())
    name = "events.csv.gz" if compress == "gzip" else "events.csv.bz2"
    write(str(data), name, whole[:len(whole) // 2])
    with pytest.raises(beam_steps.BadInputFileError) as caught:
        run_executor(str(data), str(tmp_path / "out"))
    message = str(caught.value)
    assert name in message and "truncated %s" % compress in message
    assert "byte %d" % (len(whole) // 2) in message and "\n" not in message
    # The whole archive reads, and as many examples come out as the plain file gives.
    write(str(data), name, whole)
    examples, report = run_executor(str(data), str(tmp_path / "out2"))
    counts = beam_steps.read_summary(report.uri).counts
    assert counts["impressions"] == 402 and counts["lines/" + name] == 402


def test_a_corrupt_gzip_fails_naming_the_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    whole = bytearray(_gzip(EVENTS_CSV))
    whole[len(whole) // 2:len(whole) // 2 + 64] = bytes(64)  # a damaged block
    write(str(data), "events.csv.gz", bytes(whole))
    with pytest.raises(beam_steps.BadInputFileError, match=r"events\.csv\.gz: corrupt gzip"):
        run_executor(str(data), str(tmp_path / "out"))


def test_concatenated_gzip_members_are_read_whole(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    header, body = EVENTS_CSV.split("\n", 1)
    lines = body.splitlines(keepends=True)
    write(str(data), "events.csv.gz", _gzip(header + "\n" + "".join(lines[:200]))
          + _gzip("".join(lines[200:])))
    _, report = run_executor(str(data), str(tmp_path / "out"))
    assert beam_steps.read_summary(report.uri).counts["impressions"] == 402


def test_nested_and_differently_cased_files_are_read_and_unknown_ones_refused(tmp_path):
    data = tmp_path / "data"
    header, body = EVENTS_CSV.split("\n", 1)
    lines = body.splitlines(keepends=True)
    (data / "day=2017-05-06").mkdir(parents=True)
    (data / "day2").mkdir()
    import bz2
    write(str(data), "Events-1.CSV", header + "\n" + "".join(lines[:100]))
    write(str(data / "day=2017-05-06"), "events.csv", header + "\n" + "".join(lines[100:200]))
    write(str(data / "day2"), "events-2.csv.bz2",
          bz2.compress((header + "\n" + "".join(lines[200:])).encode()))
    write(str(data), "_SUCCESS", "")
    write(str(data), "README.md", "notes")
    write(str(data), "ground_truth.csv", "user_id,timestamp\n")
    write(str(data), "clicks-2017.csv", header + "\n" + lines[0])  # a log under a wrong name
    with pytest.raises(beam_steps.BadInputFileError) as caught:
        run_executor(str(data), str(tmp_path / "out"))
    assert "clicks-2017.csv" in str(caught.value) and "--ignore-unknown-files" in str(caught.value)
    _, report = run_executor(str(data), str(tmp_path / "out2"), ignore_unknown_files=1)
    summary = beam_steps.read_summary(report.uri)
    assert summary.counts["impressions"] == 402  # every line of the three event files
    reasons = {os.path.basename(p): why for p, why in summary.unread_files.items()}
    assert set(reasons) == {"_SUCCESS", "README.md", "ground_truth.csv", "clicks-2017.csv"}
    assert reasons["clicks-2017.csv"].startswith("looks like a log")
    assert reasons["_SUCCESS"] == "empty file"
    assert "not read: " in summary.format()


def test_bad_rows_are_limited_per_file_role_and_duplicates_counted(tmp_path):
    """1.1% bad event lines fail a 1% limit even when a large item table is clean."""
    data = tmp_path / "data"
    data.mkdir()
    header, body = EVENTS_CSV.split("\n", 1)
    lines = body.splitlines(keepends=True)
    good = lines + lines[:40]  # 40 exact repeats
    bad = ["u1,i1,c1,b1,oops,click,p1\n"] * 5  # 5 of 447 event lines = 1.1%
    write(str(data), "events.csv", header + "\n" + "".join(good + bad))
    write(str(data), "items.csv", "item_id,cate_id,brand_id,price\n"
          + "".join("x%d,c1,b1,1.0\n" % n for n in range(2000)))
    with pytest.raises(BadRowsError, match=r"5 of 447 lines \(1\.12%\) of the events files"):
        run_executor(str(data), str(tmp_path / "out"), max_bad_row_fraction=0.01)
    _, report = run_executor(str(data), str(tmp_path / "out2"), max_bad_row_fraction=0.02)
    summary = beam_steps.read_summary(report.uri)
    assert summary.role_bad_row_fractions()["events"][:2] == (5, 447)
    assert summary.role_bad_row_fractions()["items"][:2] == (0, 2000)
    assert summary.bad_row_fraction < 0.01  # what the old, all-files limit saw
    assert summary.counts["duplicate_events"] == 40
    assert summary.counts["impressions"] == 442  # repeats are kept, and counted
    assert "duplicate events: 40" in summary.format()
    # Or dropped, by the flag: the first of each kept, the rest counted.
    _, report = run_executor(str(data), str(tmp_path / "out3"), max_bad_row_fraction=0.02,
                             drop_duplicate_events=1)
    dropped = beam_steps.read_summary(report.uri).counts
    assert dropped["impressions"] == 442 and dropped["duplicate_impressions_dropped"] == 40
    assert dropped["examples_train"] + dropped["examples_eval"] == 402
    assert dropped["duplicate_events_dropped"] == 40
    # The five identical bad lines get the five line numbers, in file order.
    bad_rows = [json.loads(line) for path in glob.glob(os.path.join(report.uri, "bad_rows*"))
                for line in open(path)]
    assert sorted(b["line_number"] for b in bad_rows) == [444, 445, 446, 447, 448]


def test_single_day_logs_need_and_take_an_eval_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    header = "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"
    write(str(data), "events.csv", header + "".join(
        "u%d,i%d,c1,b1,%d,%s,p1\n" % (n % 4, n % 3, T0 + 100 * n, "click" if n % 2 else "unclick")
        for n in range(40)))  # 40 impressions within 66 minutes of one day
    with pytest.raises(RuntimeError, match="--eval-start TIMESTAMP"):
        run_executor(str(data), str(tmp_path / "out"))
    _, report = run_executor(str(data), str(tmp_path / "out2"),
                             eval_start_timestamp=T0 + 100 * 30)
    counts = beam_steps.read_summary(report.uri).counts
    assert (counts["examples_train"], counts["examples_eval"]) == (30, 10)
    # Or the last quarter of the impressions by time (to a quantile's resolution: the
    # boundary is the 0.75 quantile of the 40 times, which lies between the 30th and 31st).
    _, report = run_executor(str(data), str(tmp_path / "out3"), eval_fraction=0.25)
    counts = beam_steps.read_summary(report.uri).counts
    assert counts["examples_train"] + counts["examples_eval"] == 40
    assert counts["examples_eval"] in (10, 11)
    assert counts["eval_start_timestamp"] == T0 + 100 * (40 - counts["examples_eval"])


def test_an_eval_split_with_one_label_only_stops_the_run():
    counts = {"lines/e.csv": 10, "impressions": 10, "events_grouped": 10, "examples_train": 7,
              "examples_eval": 3, "clicks_train": 2, "clicks_eval": 0,
              "eval_start_timestamp": T0}
    with pytest.raises(RuntimeError, match=r"from timestamp 1494000000 on: 3 examples\) holds "
                                           r"no click"):
        check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")
    counts["clicks_eval"] = 3
    with pytest.raises(RuntimeError, match="holds only clicks"):
        check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")
    counts["clicks_eval"] = 1
    check_summary(beam_steps.LogSummary("canonical", counts), 0.0, "/r")


def test_eval_start_for_fraction_picks_the_quantile():
    quantiles = list(range(0, 1001))  # times 0..1000, evenly
    assert beam_steps.eval_start_for_fraction(quantiles, 0.25) == 750
    assert beam_steps.eval_start_for_fraction(quantiles, 0.999999) == 1  # never the first
    assert beam_steps.eval_start_for_fraction([], 0.5) == 0


def test_an_event_years_from_the_logs_median_is_a_bad_row_not_the_eval_boundary(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    stray = "u3,i3,c1,b1,%d,click,p1\n" % (T0 + 2600 * DAY)  # 2024: a plausible date
    write(str(data), "events.csv", EVENTS_CSV + stray)
    _, report = run_executor(str(data), str(tmp_path / "out"))
    summary = beam_steps.read_summary(report.uri)
    assert summary.counts["bad_rows/timestamp_out_of_range"] == 1
    # The eval split is still the logs' last day, not the stray event's.
    assert summary.counts["eval_start_timestamp"] == T0 + 7 * DAY
    assert summary.counts["examples_eval"] == 2
    assert summary.counts["time_window_days"] == 30
    assert "event times kept: 2017-04-05 to 2017-06-04" in summary.format()
    # A user's own window keeps it (and the eval split moves to it).
    _, report = run_executor(str(data), str(tmp_path / "out2"), max_days_from_median=4000,
                             check_eval_labels=0)
    assert "bad_rows/timestamp_out_of_range" not in beam_steps.read_summary(report.uri).counts


def test_an_eval_split_below_the_minimum_stops_the_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(str(data), "events.csv", EVENTS_CSV)
    with pytest.raises(UnusableOutputError, match=r"holds 2 examples, fewer than "
                                                  r"min_eval_examples 100.*--eval-fraction"):
        run_executor(str(data), str(tmp_path / "out"), min_eval_examples=100)


def test_dislike_task_makes_an_example_of_every_event_on_a_shown_item(tmp_path):
    data = str(tmp_path / "logs")
    os.makedirs(data)
    write(data, "events.csv",
          "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"
          "u1,i1,c1,b1,%d,click,p1\n"
          "u1,,c9,,%d,click,\n"                # category-level: history only
          "u1,i2,c2,b2,%d,unclick,p1\n"
          "u1,i2,c2,b2,%d,dislike,\n"
          "u1,i3,c3,b3,%d,like,\n"
          "u1,i5,c5,b5,%d,unclick,p1\n"        # eval day from here on
          "u1,i5,c5,b5,%d,dislike,\n"
          "u2,i1,c1,b1,%d,click,p1\n"
          % (T0 + 10, T0 + 20, T0 + 100, T0 + 160, T0 + 200, T0 + 7 * DAY + 5,
             T0 + 7 * DAY + 50, T0 + 7 * DAY + 9))
    examples, report = run_executor(data, str(tmp_path / "out"), task="dislike")
    train, evaluation = read_split(examples, "train"), read_split(examples, "eval")
    assert [(r["item_id"], r["label"]) for r in train] == [
        (["i1"], [0]), (["i2"], [0]), (["i2"], [1]), (["i3"], [0])]
    assert [(r["user_id"][0], r["item_id"], r["label"]) for r in evaluation] == [
        ("u1", ["i5"], [0]), ("u1", ["i5"], [1]), ("u2", ["i1"], [0])]
    dislike = train[2]
    assert dislike[F.seq("unclick", "item")] == ["i2"] and dislike[F.seq("dislike", "item")] == []
    assert dislike[F.seq("click", "item")] == ["i1", ""]
    assert evaluation[1][F.seq("dislike", "item")] == ["i2"]  # T = 2: earlier events only
    counts = beam_steps.read_summary(report.uri).counts
    assert counts["impressions"] == 7 and counts["history_only_events"] == 1
    assert counts["examples_train"] + counts["examples_eval"] == 7
    assert counts["clicks_train"] == 1 and counts["clicks_eval"] == 1  # label-1 examples
    # The same logs for CTR: impressions only.
    ctr, _ = run_executor(data, str(tmp_path / "ctr"))
    assert [r["item_id"] for r in read_split(ctr, "train")] == [["i1"], ["i2"]]
    with pytest.raises(ValueError, match="task='likes'"):
        FeedbackExampleGen(input_base=data, task="likes")
