"""End to end: the whole local pipeline on a small simulated log, twice.

Run 1 trains DUMN, is blessed (no baseline yet, AUC above the floor) and pushed; the pushed
SavedModel scores raw serialized examples. Run 2 trains a deliberately worse model (one step
at a negligible learning rate) on the same data: it falls below the blessed baseline, so it
is neither blessed nor pushed. A rerun from scratch on the same data and seed scores the same.
Each run writes its HTML report, which opens in headless Chromium and says why a model was
or was not blessed. Then one more day of logs arrives: a run on a rolling window warm-starts
from the blessed model, starts from a lower loss than a cold start, and is pushed only if it
is not worse than that model.
"""
import json
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import PipelineConfig
from pipeline.local_runner import run
from pipeline.report import cli as report_cli
from pipeline.report.report_test import check_in_browser, needs_chromium
from simulator.config import SimConfig
from simulator.dataset import write_dataset
from simulator.report import roc_auc

pytestmark = pytest.mark.e2e

ALL_COMPONENTS = {"FeedbackExampleGen", "StatisticsGen", "CuratedSchemaGen", "ExampleValidator",
                  "AnomaliesGate", "Transform", "Trainer", "Evaluator", "Pusher"}
# Small enough for 2 cores; the memory network and FFNs shrunk, the structure intact.
SMALL_MODEL = {"memory_slots": 32, "memory_dim": 16, "ffn_units": 64,
               "prediction_units": [64], "embedding_dim": 8}


def small_simulation(days=8):
    return SimConfig(seed=3, num_users=400, num_items=500, num_categories=25, num_brands=60,
                     days=days)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = str(root / "data")
    write_dataset(small_simulation(), data, progress=lambda m: None)
    return root, data


def config_for(root, data, **overrides):
    settings = dict(
        pipeline_root=str(root / "pipeline"), data_root=data,
        serving_model_dir=str(root / "serving"), max_seq_len=20, num_samples=3,
        train_steps=300, eval_steps=20, batch_size=128, auc_floor=0.55,
        model_overrides=dict(SMALL_MODEL),
        beam_pipeline_args=["--direct_running_mode=in_memory"])
    settings.update(overrides)
    return PipelineConfig(**settings)


def eval_examples(pipeline_root):
    paths = glob.glob(os.path.join(pipeline_root, "FeedbackExampleGen", "examples", "*",
                                   "Split-eval", "*.gz"))
    assert paths, "no eval examples under %s" % pipeline_root
    serialized, labels = [], []
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP").take(2000):
        example = tf.train.Example.FromString(record.numpy())
        labels.append(example.features.feature["label"].int64_list.value[0])
        del example.features.feature["label"]  # serving requests carry no label
        serialized.append(example.SerializeToString())
    return serialized, np.array(labels)


@pytest.fixture(scope="module")
def first_run(workspace):
    root, data = workspace
    result, _ = run(config_for(root, data))
    return result


def test_first_run_every_component_ran_and_the_model_was_pushed(first_run, workspace):
    root, _ = workspace
    assert ALL_COMPONENTS <= set(first_run.executed), first_run.executed
    assert first_run.metrics["auc"] > 0.55
    assert first_run.blessed is True
    assert first_run.pushed is True
    assert first_run.pushed_destination.startswith(str(root / "serving"))
    assert os.path.exists(os.path.join(first_run.pushed_destination, "saved_model.pb"))
    assert "pid=430548_1007" in first_run.slices


def _report_figures(report_path):
    with open(os.path.join(os.path.dirname(report_path), "report.json")) as f:
        return json.load(f)


def test_first_run_report_holds_the_run_from_its_artifacts(first_run, workspace):
    root, data = workspace
    assert first_run.report_path == os.path.join(str(root), "report", os.path.basename(
        os.path.dirname(first_run.report_path)), "index.html")
    figures = _report_figures(first_run.report_path)
    evaluation = figures["evaluation"]
    assert evaluation["blessed"] is True and evaluation["baseline"] is None
    assert evaluation["pushed_to"] == first_run.pushed_destination
    candidate = evaluation["candidate"]
    assert candidate["slices"]["overall"]["auc"] == pytest.approx(first_run.metrics["auc"])
    assert set(candidate["slices"]) == {"overall"} | set(first_run.slices)
    # The ROC curve drawn is TFMA's: its area is the eval AUC up to the threshold grid.
    roc = np.array(candidate["roc"])
    area = float(np.sum(np.diff(roc[:, 0]) * (roc[1:, 1] + roc[:-1, 1]) / 2))
    assert area == pytest.approx(first_run.metrics["auc"], abs=0.01)
    # Reliability bins: their examples add up to the eval split, their mean to TFMA's.
    bins = candidate["calibration"]
    n = sum(b["examples"] for b in bins)
    assert n == candidate["slices"]["overall"]["example_count"]
    assert sum(b["mean_prediction"] * b["examples"] for b in bins) / n == pytest.approx(
        first_run.metrics["mean_prediction"], rel=1e-3)
    # Data: events by type add up to the event lines read (the simulator writes no bad
    # row), examples per split to the Examples the Evaluator read.
    counts = figures["data"]["counts"]
    lines = sum(v for k, v in counts.items() if k.startswith("lines/events"))
    assert sum(figures["data"]["events_by_type"].values()) == lines
    assert figures["data"]["examples_by_split"] == {
        "train": counts["examples_train"], "eval": counts["examples_eval"]}
    assert set(figures["data"]["history_lengths"]) == {"click", "unclick", "like", "dislike"}
    # Training: curves and memory diagnostics from TensorBoard, projections from the Trainer.
    training = figures["training"]
    assert [p[0] for p in training["curves"]["train/batch_loss"]] == [50, 100, 150, 200, 250,
                                                                      300]
    assert set(training["memory"]) == {"click", "unclick", "like", "dislike"}
    assert all(f["slot_cosine"][-1][1] < 0.5 for f in training["memory"].values())
    assert training["projections"]["long_term"], "no user with repeat eval impressions"
    assert training["trajectory"]["steps"] == [100, 200, 300]
    assert figures["oracle_auc"] > first_run.metrics["auc"]


@needs_chromium
def test_first_run_report_opens_in_a_browser(first_run):
    # ROC, reliability, loss, AUC, slot similarity, Fig. 3, 4 and 5 views (Fig. 5: two),
    # events, histories.
    check_in_browser(first_run.report_path, charts=11)


def test_dumn_report_rebuilds_a_past_run(first_run, workspace, capsys):
    root, _ = workspace
    run_id = os.path.basename(os.path.dirname(first_run.report_path))
    with open(first_run.report_path) as f:
        written = f.read()
    os.remove(first_run.report_path)
    assert report_cli.main([str(root), "--run", run_id]) == 0
    assert capsys.readouterr().out.strip() == "report: %s" % first_run.report_path
    with open(first_run.report_path) as f:
        assert f.read() == written
    assert report_cli.main([str(root), "--run", "19990101-000000"]) == 2
    assert "runs: %s" % run_id in capsys.readouterr().err


def _last_entry_cut_short(serialized: bytes) -> bytes:
    """The Example with its Features payload one byte shorter and the outer length fixed."""
    header = 1
    while serialized[header] >= 128:
        header += 1
    payload = serialized[header + 1:-1]
    length, size = bytearray(), len(payload)
    while True:
        length.append((size & 127) | (128 if size > 127 else 0))
        size >>= 7
        if not size:
            return b"\n" + bytes(length) + payload


def test_pushed_model_scores_raw_serialized_examples(first_run, workspace):
    root, _ = workspace
    serialized, labels = eval_examples(str(root / "pipeline"))
    loaded = tf.saved_model.load(first_run.pushed_destination)
    scores = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    probability = scores["probability"].numpy()
    assert probability.shape == (len(serialized),)
    assert np.all((probability > 0) & (probability < 1))
    assert roc_auc(probability, labels) > 0.55
    # An empty example is refused with a clear error; the model stays usable.
    with pytest.raises(tf.errors.InvalidArgumentError, match="exactly one user_id"):
        loaded.signatures["serving_default"](examples=tf.constant([b""]))
    # Random bytes: the same error type with a plain message (not a UnicodeDecodeError).
    noise = np.random.default_rng(0).bytes(64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a serialized tf.Example"):
        loaded.signatures["serving_default"](examples=tf.constant([serialized[0], noise]))
    # Framed right but its last feature entry cut short: TensorFlow's parser would quote it.
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a serialized tf.Example"):
        loaded.signatures["serving_default"](
            examples=tf.constant([_last_entry_cut_short(serialized[0])]))
    again = loaded.signatures["serving_default"](examples=tf.constant(serialized[:3]))
    np.testing.assert_allclose(again["probability"].numpy(), probability[:3], rtol=1e-5)


def test_pushed_model_carries_tf_serving_warmup_requests(first_run):
    from tensorflow_serving.apis import prediction_log_pb2
    path = os.path.join(first_run.pushed_destination, "assets.extra",
                        "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    assert [len(log.predict_log.request.inputs["examples"].string_val) for log in logs] == [1, 100]
    loaded = tf.saved_model.load(first_run.pushed_destination)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        batch = tf.make_ndarray(request.inputs["examples"])
        scores = loaded.signatures["serving_default"](examples=tf.constant(batch))["probability"]
        assert scores.shape == (len(batch),) and np.all(np.isfinite(scores.numpy()))


def test_a_rerun_on_the_same_data_and_seed_gives_the_same_model(first_run, workspace):
    # A fresh pipeline root: every component runs again and Beam writes its files anew (in
    # another order); the Trainer's canonical in-memory order makes the model the same.
    root, data = workspace
    again, _ = run(config_for(root, data, pipeline_root=str(root / "rerun"),
                              serving_model_dir=str(root / "rerun-serving")))
    assert {"Transform", "Trainer", "Evaluator"} <= set(again.executed)
    for name in ("auc", "logloss", "mean_prediction"):
        assert again.metrics[name] == pytest.approx(first_run.metrics[name], abs=1e-6), name


def test_a_worse_model_is_neither_blessed_nor_pushed(first_run, workspace):
    root, data = workspace
    worse = dict(SMALL_MODEL, learning_rate=1e-9)
    result, _ = run(config_for(root, data, train_steps=1, eval_steps=2, auc_floor=0.0,
                               auc_max_regression=0.0, model_overrides=worse))
    assert {"Trainer", "Evaluator", "Pusher"} <= set(result.executed)
    assert result.metrics["auc"] < first_run.metrics["auc"]
    assert result.blessed is False
    assert len(result.blessing_failures) == 1  # the floor is 0 here: only the baseline gate
    assert result.blessing_failures[0].startswith("AUC is ")
    assert "below the latest blessed model's; allowed: 0.0000" in result.blessing_failures[0]
    assert result.pushed is False
    pushed_versions = os.listdir(str(root / "serving"))
    assert len(pushed_versions) == 1
    # Its report compares it with the blessed baseline and says why it was not blessed.
    evaluation = _report_figures(result.report_path)["evaluation"]
    assert evaluation["blessed"] is False and evaluation["pushed"] is False
    assert evaluation["reasons"] == result.blessing_failures
    assert evaluation["baseline"]["slices"]["overall"]["auc"] == pytest.approx(
        first_run.metrics["auc"], abs=1e-6)
    with open(result.report_path) as f:
        assert "Not blessed</b>: AUC is " in f.read()


def _start(report_path):
    training = _report_figures(report_path)["training"]
    return training["first_batch_bce"], training["warm_start"], training["base_model"]


def _train_timestamps(pipeline_root):
    paths = glob.glob(os.path.join(pipeline_root, "FeedbackExampleGen", "examples", "*",
                                   "Split-train", "*.gz"))
    return [tf.train.Example.FromString(r.numpy()).features.feature["timestamp"].int64_list
            .value[0] for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


def test_next_day_warm_starts_on_a_rolling_window(first_run, workspace, tmp_path_factory):
    root, _ = workspace
    data = str(tmp_path_factory.mktemp("day9") / "data")
    write_dataset(small_simulation(days=9), data, progress=lambda m: None)
    window = dict(window_days=6, auc_max_regression=0.0)
    # A cold start on the same data, in an output folder of its own (no blessed model).
    elsewhere = tmp_path_factory.mktemp("cold")
    cold, _ = run(config_for(elsewhere, data, pipeline_root=str(elsewhere / "pipeline"),
                             serving_model_dir=str(elsewhere / "serving"), **window))
    warm, _ = run(config_for(root, data, pipeline_root=str(root / "day9"),
                             serving_model_dir=str(root / "serving"), warm_start=True,
                             **window))
    cold_bce, cold_warm, cold_base = _start(cold.report_path)
    warm_bce, warm_warm, warm_base = _start(warm.report_path)
    assert (cold_warm, cold_base) == (False, None)
    # The warm run started from the latest blessed model, which is also its baseline.
    figures = _report_figures(warm.report_path)
    assert warm_warm is True
    assert warm_base == figures["evaluation"]["baseline"]["model"]
    assert warm_bce < cold_bce, (warm_bce, cold_bce)
    # Pushed only if not worse than that model on the new eval split (tolerance 0 here).
    baseline_auc = figures["evaluation"]["baseline"]["slices"]["overall"]["auc"]
    assert warm.blessed == (warm.metrics["auc"] >= baseline_auc)
    assert warm.pushed == warm.blessed
    # The rolling window: 6 training days before the eval day; every impression accounted.
    counts = figures["data"]["counts"]
    assert counts["impressions_before_window"] > 0
    assert (counts["examples_train"] + counts["examples_eval"]
            + counts["impressions_before_window"]) == counts["impressions"]
    train_times = _train_timestamps(str(root / "day9"))
    assert len(train_times) == counts["examples_train"]
    assert min(train_times) >= counts["eval_start_timestamp"] - 6 * 86400


def test_another_model_on_the_dislike_task_runs_the_whole_pipeline(workspace, tmp_path_factory):
    """--model deepfm --task dislike: an example per feedback event on a shown item, label 1
    for a dislike, trained, evaluated, gated and pushed like DUMN on CTR."""
    import csv

    _, data = workspace
    root = tmp_path_factory.mktemp("dislike")
    # Like and dislike events carry no pid: any pid, as dumn-pipeline sets for canonical logs.
    result, _ = run(config_for(root, data, model="deepfm", task="dislike", auc_floor=0.5,
                               schema_pid_values=[], model_overrides={"embedding_dim": 8}))
    assert ALL_COMPONENTS <= set(result.executed), result.executed
    on_items, dislikes = 0, 0
    for path in glob.glob(os.path.join(data, "events*.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row["item_id"]:
                    on_items += 1
                    dislikes += row["feedback"] == "dislike"
    labels = []
    for path in glob.glob(os.path.join(str(root / "pipeline"), "FeedbackExampleGen", "examples",
                                       "*", "Split-*", "*.gz")):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            labels.append(example.features.feature["label"].int64_list.value[0])
    # Every event on a shown item is one example; the dislikes are its positives.
    assert len(labels) == on_items and sum(labels) == dislikes > 0
    assert result.metrics["auc"] > 0.5 and result.blessed is True and result.pushed is True
    loaded = tf.saved_model.load(result.pushed_destination)
    serialized, _ = eval_examples(str(root / "pipeline"))
    scores = loaded.signatures["serving_default"](examples=tf.constant(serialized[:50]))
    assert next(iter(scores.values())).shape[0] == 50
