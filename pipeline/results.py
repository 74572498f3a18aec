"""What a pipeline run produced, read back from ML Metadata: eval metrics, blessing, push."""
import dataclasses
import json
import math
import os
from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2


@dataclasses.dataclass
class RunResult:
    executed: List[str]             # component ids that ran (completed) in this run
    seconds: Dict[str, float]       # wall time of each, from its execution's MLMD record
    metrics: Dict[str, float]       # overall-slice metrics of the Evaluator
    slices: Dict[str, Dict[str, float]]  # slice name -> metrics
    blessed: Optional[bool]
    pushed: Optional[bool]
    pushed_destination: Optional[str]
    model_uri: Optional[str]
    # Why the Evaluator did not bless (from TFMA's validation result); empty when it did.
    blessing_failures: List[str] = dataclasses.field(default_factory=list)
    # The run's HTML report (pipeline/report), once written.
    report_path: Optional[str] = None

    def format(self, oracle_auc: Optional[float] = None) -> str:
        lines = ["components run: %s" % ", ".join(
            "%s (%.0f s)" % (name, self.seconds.get(name, 0)) for name in self.executed)]
        auc = _defined_auc(self.metrics)
        if "auc" in self.metrics:
            line = "eval AUC %s" % _number(auc)
            if oracle_auc and auc is not None:
                line += "   oracle AUC %.4f   (%.1f%% of the oracle)" % (
                    oracle_auc, 100 * auc / oracle_auc)
            lines.append(line)
        for name in ("logloss", "calibration", "mean_label", "mean_prediction", "example_count"):
            if name in self.metrics:
                lines.append("  %-16s %s" % (name, _number(self.metrics[name])))
        for slice_name, values in sorted(self.slices.items()):
            if "auc" in values:
                lines.append("  slice %-24s AUC %s  n=%d" % (
                    slice_name, _number(_defined_auc(values)), values.get("example_count", 0)))
        if self.blessed or not self.blessing_failures:
            lines.append("blessed: %s" % ("yes" if self.blessed else "no"))
        else:
            lines.append("blessed: no (%s)" % "; ".join(self.blessing_failures))
        if self.pushed:
            lines.append("pushed to: %s" % self.pushed_destination)
        else:
            lines.append("pushed: no (the model was not blessed)")
        if self.report_path:
            lines.append("report: %s" % self.report_path)
        return "\n".join(lines)


def _number(value: Optional[float]) -> str:
    """A metric for the console: 4 decimals, or n/a where it is undefined (None, nan, inf)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return "%.4f" % value


def _defined_auc(metrics: Dict[str, float]) -> Optional[float]:
    """The AUC, or None when it is undefined: no example, or only one label in the data
    (TFMA then reports 0 or 1, which would read as a real figure)."""
    auc = metrics.get("auc")
    mean_label = metrics.get("mean_label")
    if auc is None or metrics.get("example_count", 1) == 0:
        return None
    if mean_label is not None and (mean_label <= 0.0 or mean_label >= 1.0):
        return None
    return auc


def _store(metadata_path: str, writable: bool = False) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE if writable
        else metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
    return metadata_store.MetadataStore(config)


# Why an execution was closed by `cancel_dead_executions` (its custom property 'note').
DEAD_EXECUTION_NOTE = ("left RUNNING by an earlier local run that was stopped before it "
                       "finished; marked CANCELED when the next run started")


def cancel_dead_executions(metadata_path: str) -> List[str]:
    """Marks CANCELED every execution a stopped local run left NEW or RUNNING, and returns
    them as 'Component (execution N)'.

    Call before a local run starts: LocalDagRunner runs one pipeline at a time per metadata
    file, so such an execution has no process behind it (a killed run never updates it), and
    left as it is it reads as still running in every MLMD client. Nothing is deleted: the
    execution keeps its artifacts and gets the custom property 'note' saying why it was
    closed. No file yet: nothing to do.
    """
    if not os.path.exists(metadata_path):
        return []
    store = _store(metadata_path, writable=True)
    types = {t.id: t.name for t in store.get_execution_types()}
    open_states = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
    dead = [e for e in store.get_executions() if e.last_known_state in open_states]
    for execution in dead:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties["note"].string_value = DEAD_EXECUTION_NOTE
    if dead:
        store.put_executions(dead)
    return ["%s (execution %d)" % (types.get(e.type_id, "?").rsplit(".", 1)[-1], e.id)
            for e in sorted(dead, key=lambda e: e.id)]


def _latest(store, type_name: str, since_ms: int):
    found = [a for a in store.get_artifacts_by_type(type_name)
             if a.create_time_since_epoch >= since_ms
             and a.state == metadata_store_pb2.Artifact.LIVE]
    return max(found, key=lambda a: a.id) if found else None


def custom_property(artifact, key):
    """An artifact's int or string custom property; None when absent (or no artifact)."""
    if artifact is None or key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return value.int_value if value.HasField("int_value") else value.string_value


def flag_property(artifact, key) -> Optional[bool]:
    """A 0/1 custom property (blessed, pushed) as a bool; None when absent."""
    value = custom_property(artifact, key)
    return None if value is None else bool(value)


def slice_name(slice_key) -> str:
    """TFMA's slice key as 'pid=430539_1007' ('' for the overall slice)."""
    return ",".join("%s=%s" % (k, v.decode() if isinstance(v, bytes) else v)
                    for k, v in slice_key)


def _metric_values(metrics: Dict) -> Dict[str, float]:
    values = {}
    for name, value in metrics.get("", {}).get("", {}).items():
        number = value.get("doubleValue") if isinstance(value, dict) else None
        if number is not None:
            values[name] = float(number)
    return values


def blessing_failures(validation) -> List[str]:
    """Each failed threshold of a TFMA ValidationResult as a sentence with both numbers."""
    reasons = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            name = "AUC" if failure.metric_key.name == "auc" else failure.metric_key.name
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.metric_key.is_diff:
                allowed = threshold.change_threshold.absolute.value
                reasons.append("%s is %.4f below the latest blessed model's; allowed: %.4f "
                               "(--auc-max-regression)" % (name, -value, max(-allowed, 0.0)))
            else:
                reasons.append("%s %.4f is below the floor %.4f (--auc-floor)"
                               % (name, value, threshold.value_threshold.lower_bound.value))
    return reasons


def read_run_result(metadata_path: str, since_ms: int) -> RunResult:
    """Artifacts and executions recorded at or after `since_ms` (Unix milliseconds)."""
    store = _store(metadata_path)
    types = {t.id: t.name for t in store.get_execution_types()}
    executed, seconds = [], {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        if (execution.create_time_since_epoch >= since_ms
                and execution.last_known_state == metadata_store_pb2.Execution.COMPLETE):
            name = types.get(execution.type_id, "?").rsplit(".", 1)[-1]
            executed.append(name)
            seconds[name] = (execution.last_update_time_since_epoch
                             - execution.create_time_since_epoch) / 1000.0
    evaluation = _latest(store, "ModelEvaluation", since_ms)
    metrics, slices, failures = {}, {}, []
    if evaluation is not None and os.path.isdir(evaluation.uri):
        failures = blessing_failures(tfma.load_validation_result(evaluation.uri))
        result = tfma.load_eval_result(evaluation.uri)
        for slice_key, slice_metrics in result.slicing_metrics:
            values = _metric_values(slice_metrics)
            if not slice_key:
                metrics = values
            else:
                slices[slice_name(slice_key)] = values
    blessing = _latest(store, "ModelBlessing", since_ms)
    pushed = _latest(store, "PushedModel", since_ms)
    model = _latest(store, "Model", since_ms)
    return RunResult(
        executed=executed, seconds=seconds, metrics=metrics, slices=slices,
        blessed=flag_property(blessing, "blessed"), pushed=flag_property(pushed, "pushed"),
        pushed_destination=custom_property(pushed, "pushed_destination"),
        model_uri=model.uri if model is not None else None, blessing_failures=failures)


def oracle_auc(data_root: str) -> Optional[float]:
    """The simulator's oracle AUC on the eval split, when the data was simulated."""
    path = os.path.join(data_root, "simulation.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["report"]["oracle_auc"]
