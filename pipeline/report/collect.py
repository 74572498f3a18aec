"""What one pipeline run produced, gathered for the run report from ML Metadata and the
artifacts the run's executions read and wrote (nothing is recomputed from examples):

* the run: its TFX pipeline-run context, each component's state and wall time;
* data: FeedbackExampleGen's log report (events by type, bad rows by reason with the first
  rows of each, examples per split) and StatisticsGen's statistics (history lengths);
* evaluation: TFMA's EvalResult of the candidate and of the baseline (the latest blessed
  model, when there was one), every slice with its count, the calibration and confusion-
  matrix plots, the blessing and its reasons (TFMA's ValidationResult), the push;
* training: the Trainer's TensorBoard scalars (train batches, validation, memory
  diagnostics) and the 2-D views it wrote (models/trainer.py `write_projections`, and the
  memory callback's `trajectory.json`).

`collect(output_root, run_id)` returns a `RunReport` of plain values (JSON-serialisable).
"""
import dataclasses
import datetime
import json
import math
import os
from typing import Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2

import feedback_contract as F
from models.diagnostics import PROJECTIONS_FILE, START_LOG, TRAJECTORY_FILE
from pipeline.results import (_metric_values, _store, blessing_failures, custom_property,
                              flag_property, oracle_auc, slice_name)

RUN_CONTEXT_TYPE = "pipeline_run"
# Bad rows shown per reason (all are in the log report's files).
BAD_ROWS_PER_REASON = 3
# Points of the ROC curve kept (TFMA computes 1,000 thresholds).
ROC_POINTS = 200
# Bins of the reliability diagram: TFMA's 1,000 equal-width buckets merged into bins of
# about equal example counts, so the low click rates of CTR data get more than one bin.
CALIBRATION_BINS = 15

_STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class RunReport:
    run_id: str                      # folder name: the run's start, YYYYMMDD-HHMMSS
    pipeline_run: str                # TFX's pipeline-run id (its MLMD context name)
    started: str                     # ISO time
    components: List[dict]           # {name, state, seconds}
    data: dict
    evaluation: dict
    training: dict
    model: Optional[str] = None      # the model kind trained (dumn, din, ...)
    oracle_auc: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True, default=str)


def folder_id(pipeline_run: str) -> str:
    """'2026-12-04T01:20:05.537416' (TFX's run id) -> '20261204-012005'."""
    try:
        return datetime.datetime.fromisoformat(pipeline_run).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in pipeline_run)


def metadata_path(output_root: str) -> str:
    return os.path.join(output_root, "metadata.sqlite")


def list_runs(output_root: str) -> List[str]:
    """TFX pipeline-run ids recorded under output_root, oldest first."""
    store = _store(metadata_path(output_root))
    return [c.name for c in sorted(store.get_contexts_by_type(RUN_CONTEXT_TYPE),
                                   key=lambda c: (c.create_time_since_epoch, c.id))]


def find_run(output_root: str, run_id: Optional[str] = None) -> str:
    """The TFX run id matching `run_id` (TFX's id or the report folder's); the latest run
    when None. ValueError naming the known runs when there is no match."""
    path = metadata_path(output_root)
    if not os.path.exists(path):
        raise ValueError("%s holds no pipeline run (no %s)" % (output_root, path))
    runs = list_runs(output_root)
    if not runs:
        raise ValueError("%s records no pipeline run" % path)
    if run_id is None:
        return runs[-1]
    for name in runs:
        if run_id in (name, folder_id(name)):
            return name
    raise ValueError("no run %r in %s; runs: %s" % (
        run_id, path, ", ".join(folder_id(name) for name in runs)))


class _Run:
    """The executions of one pipeline run and the artifacts each read and wrote."""

    def __init__(self, store, pipeline_run: str):
        self.store = store
        context = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, pipeline_run)
        self.context = context
        types = {t.id: t.name for t in store.get_execution_types()}
        self.executions = sorted(store.get_executions_by_context(context.id),
                                 key=lambda e: e.id)
        self.names = {e.id: types.get(e.type_id, "?").rsplit(".", 1)[-1]
                      for e in self.executions}
        events = store.get_events_by_execution_ids([e.id for e in self.executions])
        artifacts = {a.id: a for a in store.get_artifacts_by_id(
            sorted({event.artifact_id for event in events}))}
        # (component, 'input'/'output', key) -> [artifact]
        self.artifacts: Dict[tuple, list] = {}
        for event in events:
            if not event.path.steps:
                continue
            kind = ("input" if event.type in (metadata_store_pb2.Event.INPUT,
                                               metadata_store_pb2.Event.DECLARED_INPUT)
                    else "output")
            key = (self.names[event.execution_id], kind, event.path.steps[0].key)
            self.artifacts.setdefault(key, []).append(artifacts[event.artifact_id])

    def execution(self, component: str):
        found = [e for e in self.executions if self.names[e.id] == component]
        return found[-1] if found else None

    def artifact(self, component: str, kind: str, key: str):
        found = self.artifacts.get((component, kind, key), [])
        return found[-1] if found else None

    def property(self, component: str, name: str):
        execution = self.execution(component)
        if execution is None or name not in execution.custom_properties:
            return None
        value = execution.custom_properties[name]
        return value.string_value if value.HasField("string_value") else (
            value.int_value if value.HasField("int_value") else value.double_value)


def collect(output_root: str, run_id: Optional[str] = None) -> RunReport:
    """The report's content for one run (the latest when run_id is None)."""
    pipeline_run = find_run(output_root, run_id)
    run = _Run(_store(metadata_path(output_root)), pipeline_run)
    components = [{"name": run.names[e.id], "state": _STATE_NAMES.get(e.last_known_state, "?"),
                   "seconds": (e.last_update_time_since_epoch - e.create_time_since_epoch)
                   / 1000.0} for e in run.executions]
    custom_config = json.loads(run.property("Trainer", "custom_config") or "null") or {}
    data_root = run.property("FeedbackExampleGen", "input_base")
    return RunReport(
        run_id=folder_id(pipeline_run), pipeline_run=pipeline_run,
        started=datetime.datetime.fromtimestamp(
            run.context.create_time_since_epoch / 1000.0).isoformat(timespec="seconds"),
        components=components, data=_data(run), evaluation=_evaluation(run),
        training=_training(run),
        model=custom_config.get("model_config", {}).get("model"),
        oracle_auc=oracle_auc(data_root) if data_root else None)


# --- data ---------------------------------------------------------------------------------

def _data(run: _Run) -> dict:
    from components.feedback_example_gen import bad_row_lines, beam_steps

    data = {"counts": {}, "events_by_type": {}, "bad_rows_by_reason": {}, "bad_row_examples": {},
            "examples_by_split": {}, "history_lengths": {}, "layout": None}
    report = run.artifact("FeedbackExampleGen", "output", "log_report")
    if report is not None and os.path.isdir(report.uri):
        summary = beam_steps.read_summary(report.uri)
        counts = summary.counts
        data["layout"] = summary.layout
        data["counts"] = dict(counts)
        data["events_by_type"] = {t: counts.get(beam_steps.EVENTS_OF_TYPE + t, 0)
                                  for t in F.FEEDBACK_TYPES}
        data["bad_rows_by_reason"] = {key.split("/", 1)[1]: n for key, n in counts.items()
                                      if key.startswith("bad_rows/")}
        data["examples_by_split"] = {key.split("_", 1)[1]: n for key, n in counts.items()
                                     if key.startswith("examples_")}
        for row in bad_row_lines.first_rows(report.uri, beam_steps.BAD_ROWS_PREFIX,
                                            limit=10 ** 6):
            shown = data["bad_row_examples"].setdefault(row["reason"], [])
            if len(shown) < BAD_ROWS_PER_REASON:
                shown.append(bad_row_lines.describe(row))
    statistics = run.artifact("StatisticsGen", "output", "statistics")
    if statistics is not None:
        data["history_lengths"] = history_lengths(statistics.uri)
    return data


def history_lengths(statistics_uri: str, split: str = "train") -> Dict[str, dict]:
    """Per feedback type, TFDV's histogram of `<type>_full_len` (F.full_length: the number of
    the user's earlier events of that type) on one split: {type: {buckets: [[low, high,
    count]], mean, median, max}}."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = os.path.join(statistics_uri, "Split-%s" % split, "FeatureStats.pb")
    if not os.path.exists(path):
        return {}
    stats = tfdv.load_stats_binary(path)
    types = {F.full_length(kind): kind for kind in F.FEEDBACK_TYPES}
    result = {}
    for dataset in stats.datasets[:1]:
        for feature in dataset.features:
            name = feature.path.step[-1] if feature.path.step else feature.name
            kind = types.get(name)
            if kind is None or not feature.HasField("num_stats"):
                continue
            numeric = feature.num_stats
            standard = [h for h in numeric.histograms
                        if h.type == statistics_pb2.Histogram.STANDARD]
            result[kind] = {
                "mean": numeric.mean, "median": numeric.median, "max": numeric.max,
                "buckets": [[b.low_value, b.high_value, b.sample_count]
                            for b in (standard[0].buckets if standard else [])]}
    return result


# --- evaluation ---------------------------------------------------------------------------

def _evaluation(run: _Run) -> dict:
    import tensorflow_model_analysis as tfma

    evaluation = {"candidate": None, "baseline": None, "blessed": None, "reasons": [],
                  "pushed": None, "pushed_to": None}
    artifact = run.artifact("Evaluator", "output", "evaluation")
    blessing = run.artifact("Evaluator", "output", "blessing")
    pushed = run.artifact("Pusher", "output", "pushed_model")
    evaluation["blessed"] = flag_property(blessing, "blessed")
    evaluation["pushed"] = flag_property(pushed, "pushed")
    evaluation["pushed_to"] = custom_property(pushed, "pushed_destination")
    if artifact is None or not os.path.isdir(artifact.uri):
        return evaluation
    evaluation["reasons"] = blessing_failures(tfma.load_validation_result(artifact.uri))
    candidate = run.artifact("Evaluator", "input", "model")
    baseline = run.artifact("Evaluator", "input", "baseline_model")
    for result in tfma.load_eval_results(artifact.uri).get_results():
        location = os.path.normpath(result.model_location or "")
        if baseline is not None and location.startswith(os.path.normpath(baseline.uri)):
            role, uri = "baseline", baseline.uri
        else:
            role, uri = "candidate", candidate.uri if candidate is not None else location
        evaluation[role] = _model_result(result, uri)
    return evaluation


def _slice_name(slice_key) -> str:
    return slice_name(slice_key) or "overall"


def _model_result(result, model_uri: str) -> dict:
    slices = {}
    for slice_key, metrics in result.slicing_metrics:
        slices[_slice_name(slice_key)] = {name: value for name, value
                                          in _metric_values(metrics).items()
                                          if not name.endswith("_diff")}
    plots = {_slice_name(k): p.get("", {}).get("", {}) for k, p in (result.plots or [])}
    overall = plots.get("overall", {})
    return {"model": model_uri, "slices": slices,
            "roc": roc_curve(overall.get("confusionMatrixAtThresholds", {})),
            "calibration": calibration_bins(overall.get("calibrationHistogramBuckets", {}))}


def roc_curve(matrices_plot: dict, points: int = ROC_POINTS) -> List[List[float]]:
    """[[false positive rate, true positive rate]] from TFMA's ConfusionMatrixPlot, from
    (0, 0) to (1, 1), thinned to about `points` points."""
    rows = []
    for m in matrices_plot.get("matrices", []):
        tp, fp = m.get("truePositives", 0.0), m.get("falsePositives", 0.0)
        fn, tn = m.get("falseNegatives", 0.0), m.get("trueNegatives", 0.0)
        if tp + fn > 0 and fp + tn > 0:
            rows.append((fp / (fp + tn), tp / (tp + fn)))
    if not rows:
        return []
    rows = sorted(set(rows + [(0.0, 0.0), (1.0, 1.0)]))
    step = max(1, len(rows) // points)
    kept = rows[::step]
    if kept[-1] != rows[-1]:
        kept.append(rows[-1])
    return [[round(x, 5), round(y, 5)] for x, y in kept]


def calibration_bins(histogram: dict, bins: int = CALIBRATION_BINS) -> List[dict]:
    """TFMA's calibration histogram merged into about `bins` bins of equal example counts:
    [{mean_prediction, observed_rate, examples}] (the reliability diagram)."""
    buckets = [b for b in histogram.get("buckets", []) if b.get("numWeightedExamples", 0) > 0]
    total = sum(b["numWeightedExamples"] for b in buckets)
    if total <= 0:
        return []
    out, n, label, prediction = [], 0.0, 0.0, 0.0
    for i, bucket in enumerate(buckets):
        n += bucket["numWeightedExamples"]
        label += bucket.get("totalWeightedLabel", 0.0)
        prediction += bucket.get("totalWeightedRefinedPrediction", 0.0)
        if n >= total / bins or i == len(buckets) - 1:
            out.append({"mean_prediction": prediction / n, "observed_rate": label / n,
                        "examples": n})
            n, label, prediction = 0.0, 0.0, 0.0
    return out


# --- training -----------------------------------------------------------------------------

def _training(run: _Run) -> dict:
    training = {"curves": {}, "memory": {}, "projections": None, "trajectory": None,
                "model_run": None,
                "base_model": None, "first_batch_bce": None, "warm_start": None}
    base_model = run.artifact("Trainer", "input", "base_model")
    if base_model is not None:
        training["base_model"] = base_model.uri
    model_run = run.artifact("Trainer", "output", "model_run")
    if model_run is None or not os.path.isdir(model_run.uri):
        return training
    training["model_run"] = model_run.uri
    start = tensorboard_scalars(os.path.join(model_run.uri, START_LOG))
    if start.get("first_batch_bce"):
        training["first_batch_bce"] = start["first_batch_bce"][0][1]
        training["warm_start"] = bool(start.get("warm_start", [[0, 0.0]])[0][1])
    for folder in ("train", "validation"):
        for tag, points in tensorboard_scalars(os.path.join(model_run.uri, folder)).items():
            if tag.startswith("batch_") or tag.endswith("_vs_iterations"):
                training["curves"]["%s/%s" % (folder, tag)] = points
    for tag, points in tensorboard_scalars(os.path.join(model_run.uri, "memory")).items():
        _, memory, figure = tag.split("/", 2)
        training["memory"].setdefault(memory, {})[figure] = points
    for key, name in (("projections", PROJECTIONS_FILE), ("trajectory", TRAJECTORY_FILE)):
        path = os.path.join(model_run.uri, name)
        if os.path.exists(path):
            with open(path) as f:
                training[key] = json.load(f)
    return training


def tensorboard_scalars(log_dir: str) -> Dict[str, List[List[float]]]:
    """{tag: [[step, value]]} of a TensorBoard log folder, read with TensorBoard's own
    EventAccumulator (Keras writes TF2 summaries, which it stores as tensors)."""
    if not os.path.isdir(log_dir):
        return {}
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {}
    for tag in tags.get("tensors", []):
        points = [[event.step, float(tf.make_ndarray(event.tensor_proto))]
                  for event in accumulator.Tensors(tag)]
        scalars[tag] = [p for p in points if math.isfinite(p[1])]
    for tag in tags.get("scalars", []):
        scalars[tag] = [[event.step, event.value] for event in accumulator.Scalars(tag)]
    return scalars
