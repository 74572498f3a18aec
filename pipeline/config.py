"""Pipeline configuration in one place: every knob of the DAG, with defaults for the local run.

The same object configures the local run (pipeline/local_runner.py) and the Kubeflow
deployment (kubeflow/); only the runner-specific settings (metadata, image, resources) live
with the runners.
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import beam_fixes
from models.config import ModelConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SCHEMA = os.path.join(REPO_ROOT, "schema", "schema.pbtxt")

# User code is referenced by dotted path: it is installed with this package (locally in the
# venv, on Kubeflow baked into the image), so TFX does not build and ship module wheels.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"


@dataclasses.dataclass
class PipelineConfig:
    """What a run needs to know. Paths may be local or remote (gs://, s3://)."""

    pipeline_name: str = "dumn"
    pipeline_root: str = os.path.join(REPO_ROOT, "output", "pipeline")
    data_root: str = os.path.join(REPO_ROOT, "output", "data", "simulated")
    layout: str = "auto"                 # 'auto' | 'canonical' | 'tianchi'
    serving_model_dir: str = os.path.join(REPO_ROOT, "output", "serving_model")
    schema_path: str = DEFAULT_SCHEMA    # the curated schema template (rendered for T and K)
    # For canonical logs whose profile columns or pid values differ from the public data's:
    # the profile fields (bare names) and pid values the schema should expect; None keeps the
    # template's, an empty pid list accepts any pid.
    schema_profile_fields: Optional[List[str]] = None
    schema_pid_values: Optional[List[str]] = None

    # ExampleGen
    max_seq_len: int = 100               # T
    num_samples: int = 5                 # K
    eval_days: int = 1
    # The first second of the eval split, instead of the last eval_days calendar days (for
    # logs that span a single day, or a fixed cut). None = use eval_days.
    eval_start_timestamp: Optional[int] = None
    # Or: the last this fraction of the impressions by time (0 < F < 1). None = eval_days.
    eval_fraction: Optional[float] = None
    max_bad_row_fraction: float = 0.01
    # Events further than this many days from the logs' median time are bad rows (reason
    # timestamp_out_of_range). None = derived from the data: the larger of 30 days and twice
    # the span of the middle 80% of the event times.
    max_days_from_median: Optional[int] = None
    # The run stops when the eval split holds fewer examples than this.
    min_eval_examples: int = 100
    # Exact repeats of an event (same fields, same second): kept as the log has them (and
    # counted), or dropped.
    drop_duplicate_events: bool = False
    # Run without log-like files whose names match no file of the layout (else: fail).
    ignore_unknown_files: bool = False
    seed: int = 7

    # Transform
    num_oov_buckets: int = 10

    # Trainer
    model: str = "dumn"                  # 'dumn' | 'din'
    # About one epoch of the built-in data; past it every model overfits (docs/quality.md).
    train_steps: int = 500
    eval_steps: int = 100
    batch_size: int = 256
    model_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)

    # Evaluator
    auc_floor: float = 0.6               # an AUC below this is never blessed
    # The candidate may not fall more than this below the latest blessed model's AUC. About
    # 2 std of the difference between two runs of equally good code on another seed or day
    # of data (README, "The Evaluator"); a rerun on the same data and seed scores the same.
    auc_max_regression: float = 0.015

    # Beam arguments for the data components (ExampleGen, StatisticsGen, Transform, Evaluator).
    beam_pipeline_args: List[str] = dataclasses.field(default_factory=lambda: [
        "--direct_running_mode=multi_processing",
        # 0 = as many workers as CPUs.
        "--direct_num_workers=0",
    ])

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
        if self.train_steps < 1 or self.eval_steps < 1 or self.batch_size < 1:
            errors.append("train_steps, eval_steps and batch_size must be >= 1")
        if not 0.0 <= self.max_bad_row_fraction <= 1.0:
            errors.append("max_bad_row_fraction must be in [0, 1] (a fraction: 0.01 = 1%%), got %r"
                          % (self.max_bad_row_fraction,))
        if not 0.0 <= self.auc_floor <= 1.0:
            errors.append("auc_floor must be in [0, 1]")
        if self.auc_max_regression < 0:
            errors.append("auc_max_regression must be >= 0")
        if self.layout not in ("auto", "canonical", "tianchi"):
            errors.append("layout must be 'auto', 'canonical' or 'tianchi'")
        if self.model not in ("dumn", "din"):
            errors.append("model must be 'dumn' or 'din'")
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
                "num_oov_buckets": self.num_oov_buckets}

    def transform_custom_config(self) -> Dict[str, Any]:
        return {"max_seq_len": self.max_seq_len, "num_samples": self.num_samples,
                "num_oov_buckets": self.num_oov_buckets}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
