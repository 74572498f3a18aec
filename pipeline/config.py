"""Pipeline configuration in one place: every knob of the DAG, with defaults for the local run.

The same object configures the local run (pipeline/local_runner.py) and the Kubeflow
deployment (kubeflow/); only the runner-specific settings (metadata, image, resources) live
with the runners.
"""
import dataclasses
import json
import os
import typing
from typing import Any, Dict, List, Optional, Tuple

import beam_fixes
from feedback_contract import TASKS
from models import registry
from models.config import ModelConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# User code is referenced by dotted path: it is installed with this package (locally in the
# venv, on Kubeflow baked into the image), so TFX does not build and ship module wheels.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"


@dataclasses.dataclass(frozen=True)
class Knob:
    """How a PipelineConfig field is set from the outside: the local CLI (dumn-pipeline) and
    the Kubeflow options (dumn-kubeflow: flag, DUMN_KFP_* variable, YAML key) are generated
    from these, so a knob is declared once, here.

    The value's type comes from the field's annotation: int, float, str, bool, Optional[...]
    (None = the help's "unset" case), List[str] (a repeated flag, or with `comma_list` one
    comma-separated flag), Dict[str, Any] (a repeated KEY=VALUE flag).
    """

    help: str
    flag: Optional[str] = None            # default: --field-name
    aliases: Tuple[str, ...] = ()         # older flag spellings that still work
    kubeflow_name: Optional[str] = None   # YAML key / env suffix; default: the field name
    metavar: Optional[str] = None
    choices: Optional[Tuple[str, ...]] = None
    comma_list: bool = False              # List[str] given as "a,b,c" ('' = empty list)


def knob(help: str, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING,
         **settings) -> Any:
    """A PipelineConfig field that is a knob (see Knob)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"knob": Knob(help=help, **settings)})


# Fields that are not knobs: where things are, which each runner derives from its own
# settings (dumn-pipeline from --output-root and --data; dumn-kubeflow from pipeline_root,
# data_root, push_destination, schema_file).
RUNNER_FIELDS = ("pipeline_root", "data_root", "serving_model_dir", "schema_path")


@dataclasses.dataclass
class PipelineConfig:
    """What a run needs to know. Paths may be local or remote (gs://, s3://)."""

    pipeline_root: str = os.path.join(REPO_ROOT, "output", "pipeline")
    data_root: str = os.path.join(REPO_ROOT, "output", "data", "simulated")
    serving_model_dir: str = os.path.join(REPO_ROOT, "output", "serving_model")
    # The curated schema template CuratedSchemaGen renders for the run; '' = the
    # schema/schema.pbtxt installed with the code where the step runs.
    schema_path: str = ""

    pipeline_name: str = knob("pipeline name (lowercase letters, digits, '-')", "dumn")
    layout: str = knob("log layout of the data folder", "auto",
                       choices=("auto", "canonical", "tianchi"))
    # For canonical logs whose profile columns or pid values differ from the public data's.
    schema_profile_fields: Optional[List[str]] = knob(
        "profile columns of users.csv the schema should expect, comma-separated (default: the "
        "columns of users.csv for canonical logs on a local run, else the public data's)",
        None, flag="--profile-fields", kubeflow_name="profile_fields", comma_list=True,
        metavar="A,B,...")
    schema_pid_values: Optional[List[str]] = knob(
        "pid values the schema should accept, comma-separated; '' (empty) accepts any pid "
        "(default: any for canonical logs on a local run, else the public data's two)",
        None, flag="--pid-values", kubeflow_name="pid_values", comma_list=True,
        metavar="A,B,...")

    # ExampleGen
    max_seq_len: int = knob("T, events per feedback history", 100)
    num_samples: int = knob("K, triplet samples per feedback type", 5)
    eval_days: int = knob("last calendar days of impressions that form the eval split", 1)
    eval_start_timestamp: Optional[int] = knob(
        "first second (Unix time) of the eval split, instead of the last eval days; for logs "
        "that span one day, or a fixed cut", None, aliases=("--eval-start",),
        metavar="TIMESTAMP")
    eval_fraction: Optional[float] = knob(
        "the last F (0 < F < 1) of the impressions by time form the eval split, instead of "
        "the last eval days", None, metavar="F")
    max_bad_row_fraction: float = knob(
        "the ExampleGen fails when more log lines than this fraction are bad (0.01 = 1%%)",
        0.01)
    max_days_from_median: Optional[int] = knob(
        "events further than DAYS from the logs' median time are bad rows "
        "(timestamp_out_of_range); default: derived from the data, the larger of 30 days and "
        "twice the span of the middle 80%% of the event times", None, metavar="DAYS")
    min_eval_examples: int = knob("stop the run when the eval split holds fewer examples", 100)
    window_days: int = knob(
        "a rolling training window: train on the impressions of the last DAYS days before the "
        "eval split only (earlier impressions form no example, counted in the summary; their "
        "events stay in later histories); 0 = every day", 0, metavar="DAYS")
    drop_duplicate_events: bool = knob(
        "drop exact repeats of an event (same fields, same second) instead of keeping them as "
        "the log has them; counted in the summary either way", False)
    ignore_unknown_files: bool = knob(
        "run without log-like files (.csv, .gz, .bz2, ...) in the data folder whose names "
        "match no file of the layout; without it such files fail the run (they are listed in "
        "the log report either way)", False)
    seed: int = knob("seed of the triplet samples and the model", 7)
    task: str = knob(
        "what the model predicts: 'ctr' (impressions, label 1 = click) or 'dislike' (every "
        "feedback event on a shown item, label 1 = dislike; the paper's §4.5)", "ctr",
        choices=tuple(TASKS))

    # Transform
    num_oov_buckets: int = knob("out-of-vocabulary buckets per id vocabulary", 10)
    materialize_transform: bool = knob(
        "Transform also writes the transformed examples and the Trainer reads them; by default "
        "Transform only analyses (vocabularies, price statistics) and the Trainer applies the "
        "transform graph to the raw examples itself, which skips Transform's second pass over "
        "the data and its write", False)

    # Trainer
    model: str = knob("the model to train (models/registry.py; `dumn-pipeline --help` lists "
                       "them)", "dumn", choices=registry.kinds())
    # About one epoch of the built-in data; past it every model overfits (docs/quality.md).
    train_steps: int = knob("Trainer steps", 500)
    eval_steps: int = knob("Trainer eval steps", 100)
    batch_size: int = knob("Trainer batch size", 256)
    warm_start: bool = knob(
        "initialise the Trainer from the latest blessed model (weights and memories; "
        "embedding rows matched by id across the two runs' vocabularies) instead of from "
        "scratch; a cold start when no model is blessed yet", False)
    model_overrides: Dict[str, Any] = knob(
        "a ModelConfig setting, e.g. orthogonal_mapping=false (repeatable); the value is read "
        "as the setting's type (booleans true/false; lists [200,80] or 200,80) and the whole "
        "model configuration is checked before the run starts", default_factory=dict,
        flag="--model-override", metavar="KEY=VALUE")

    # Evaluator
    auc_floor: float = knob("the Evaluator never blesses a model with a lower eval AUC", 0.6)
    # About 2 std of the difference between two runs of equally good code on another seed or
    # day of data (README, "The Evaluator"); a rerun on the same data and seed scores the same.
    auc_max_regression: float = knob(
        "the candidate may not fall more than this below the latest blessed model's AUC",
        0.015)

    # Beam arguments for the data components (ExampleGen, StatisticsGen, Transform, Evaluator).
    beam_pipeline_args: List[str] = knob(
        "a Beam pipeline argument of the data components (ExampleGen, StatisticsGen, "
        "Transform, Evaluator), passed through verbatim (repeatable; write the '=': "
        "--beam-arg=--runner=DataflowRunner)",
        default_factory=lambda: [
            "--direct_running_mode=multi_processing",
            # 0 = as many workers as CPUs.
            "--direct_num_workers=0",
        ], flag="--beam-arg", kubeflow_name="beam_args", metavar="ARG")

    def __post_init__(self):
        errors = []
        if self.max_seq_len < 1:
            errors.append("max_seq_len must be >= 1")
        if self.num_samples < 1:
            errors.append("num_samples must be >= 1")
        if self.eval_days < 1:
            errors.append("eval_days must be >= 1")
        if self.eval_start_timestamp is not None and self.eval_start_timestamp <= 0:
            errors.append("eval_start_timestamp must be a Unix time in seconds (> 0)")
        if self.eval_fraction is not None and not 0.0 < self.eval_fraction < 1.0:
            errors.append("eval_fraction must be in (0, 1)")
        if self.eval_fraction is not None and self.eval_start_timestamp is not None:
            errors.append("give eval_start_timestamp or eval_fraction, not both")
        if self.max_days_from_median is not None and self.max_days_from_median < 1:
            errors.append("max_days_from_median must be >= 1 day (or None: derived)")
        if self.min_eval_examples < 1:
            errors.append("min_eval_examples must be >= 1")
        if self.window_days < 0:
            errors.append("window_days must be >= 1 day (or 0: every day)")
        if self.train_steps < 1 or self.eval_steps < 1 or self.batch_size < 1:
            errors.append("train_steps, eval_steps and batch_size must be >= 1")
        if not 0.0 <= self.max_bad_row_fraction <= 1.0:
            errors.append("max_bad_row_fraction must be in [0, 1] (a fraction: 0.01 = 1%%), got %r"
                          % (self.max_bad_row_fraction,))
        if not 0.0 <= self.auc_floor <= 1.0:
            errors.append("auc_floor must be in [0, 1]")
        if self.auc_max_regression < 0:
            errors.append("auc_max_regression must be >= 0")
        for field in knobs():
            choices = field.metadata["knob"].choices
            if choices and getattr(self, field.name) not in choices:
                errors.append("%s must be one of %s, got %r" % (
                    field.name, ", ".join(choices), getattr(self, field.name)))
        try:
            # Keys, types and ranges of the model settings, before any component runs (the
            # Trainer would otherwise find a bad one minutes into the run).
            self.model_overrides = ModelConfig.check_overrides(
                self.model_overrides, model=self.model, max_seq_len=self.max_seq_len,
                num_triplet_samples=self.num_samples)
        except ValueError as e:
            errors.append(str(e))
        try:
            beam_fixes.check_beam_args(self.beam_pipeline_args)
        except beam_fixes.UnsafeBeamArgsError as e:
            errors.append(str(e))
        if errors:
            raise ValueError("invalid pipeline configuration: " + "; ".join(errors))

    def trainer_custom_config(self) -> Dict[str, Any]:
        """What run_fn receives: the model settings shared with Transform plus overrides."""
        config = {"model": self.model, "max_seq_len": self.max_seq_len,
                  "num_triplet_samples": self.num_samples, "seed": self.seed}
        config.update(self.model_overrides)
        return {"model_config": config, "batch_size": self.batch_size,
                "num_oov_buckets": self.num_oov_buckets, "warm_start": self.warm_start,
                "materialized_transform": self.materialize_transform}

    def transform_custom_config(self) -> Dict[str, Any]:
        return {"max_seq_len": self.max_seq_len, "num_samples": self.num_samples,
                "num_oov_buckets": self.num_oov_buckets}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def knobs() -> List[dataclasses.Field]:
    """The PipelineConfig fields that are knobs, in declaration order."""
    return [f for f in dataclasses.fields(PipelineConfig) if "knob" in f.metadata]


def knob_default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def knob_kind(field: dataclasses.Field) -> Tuple[str, bool]:
    """(kind, optional): kind 'int' | 'float' | 'str' | 'bool' | 'list' | 'dict' from the
    field's annotation; optional when None is allowed (Optional[...])."""
    annotation, optional = field.type, False
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation, optional = args[0], len(args) < len(typing.get_args(annotation))
    origin = typing.get_origin(annotation) or annotation
    kind = {int: "int", float: "float", str: "str", bool: "bool", list: "list",
            dict: "dict"}.get(origin)
    if kind is None:
        raise TypeError("knob %s: unsupported type %r" % (field.name, field.type))
    return kind, optional


def knob_flag(field: dataclasses.Field) -> str:
    return field.metadata["knob"].flag or "--" + field.name.replace("_", "-")


def split_comma_list(text: str) -> List[str]:
    """'a,b' -> ['a', 'b']; '' -> [] (empty entries dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_key_value(item: str, flag: str) -> Tuple[str, Any]:
    """'KEY=VALUE' -> (KEY, VALUE read as JSON, or the text when it is not JSON)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError("%s expects KEY=VALUE, got %r" % (flag, item))
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
