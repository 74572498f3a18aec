"""FeedbackExampleGen: Taobao-style feedback logs -> one tf.Example per impression.

Each example carries the user profile, the target item, the four feedback histories (click,
unclick, like, dislike; strictly earlier events only, the most recent T of each, oldest
first), K triplet samples per feedback type from the whole earlier history, and the full
history lengths. The split is by time: the last `eval_days` days of impressions are 'eval'.
Bad lines are counted and written aside, with their reason, to the `log_report` output; the
run fails only when they exceed `max_bad_row_fraction` of the lines read.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from feedback_contract import TASKS

from components.feedback_example_gen import executor


class FeedbackLogReport(types.Artifact):
    """Counts of what was read (summary.json) and the bad rows with reasons (bad_rows-*.jsonl)."""

    # KFP v2 names a custom artifact type <module>.<Class> and imports it by that name in
    # each step container; `components` re-exports the class for that (components/__init__).
    TYPE_NAME = "components.FeedbackLogReport"


class FeedbackExampleGenSpec(types.ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "layout": ExecutionParameter(type=str),
        "max_seq_len": ExecutionParameter(type=int),
        "num_samples": ExecutionParameter(type=int),
        "eval_days": ExecutionParameter(type=int),
        "eval_start_timestamp": ExecutionParameter(type=int),
        "timezone_offset_hours": ExecutionParameter(type=int),
        "seed": ExecutionParameter(type=int),
        "max_bad_row_fraction": ExecutionParameter(type=float),
        "ignore_unknown_files": ExecutionParameter(type=int, optional=True),
        "eval_fraction": ExecutionParameter(type=float, optional=True),
        # 0 lets an eval split with one label only pass (hand-made tiny logs); default 1.
        "check_eval_labels": ExecutionParameter(type=int, optional=True),
        # Events further than this from the logs' median time are bad rows; 0 = derived.
        "max_days_from_median": ExecutionParameter(type=int, optional=True),
        "min_eval_examples": ExecutionParameter(type=int, optional=True),
        "drop_duplicate_events": ExecutionParameter(type=int, optional=True),
        # Training examples from the last this many days before the eval split; 0 = all.
        "window_days": ExecutionParameter(type=int, optional=True),
        # The prediction task (feedback_contract.TASKS): 'ctr' (default) or 'dislike'.
        "task": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.LOG_REPORT_KEY: ChannelParameter(type=FeedbackLogReport),
    }


class FeedbackExampleGen(base_beam_component.BaseBeamComponent):
    """Custom ExampleGen on Beam for feedback logs in the canonical or the Tianchi layout."""

    SPEC_CLASS = FeedbackExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, layout: str = "auto", max_seq_len: int = 100,
                 num_samples: int = 5, eval_days: int = 1,
                 eval_start_timestamp: Optional[int] = None, timezone_offset_hours: int = 8,
                 seed: int = 0, max_bad_row_fraction: float = 0.01,
                 ignore_unknown_files: bool = False, eval_fraction: Optional[float] = None,
                 max_days_from_median: Optional[int] = None, min_eval_examples: int = 100,
                 drop_duplicate_events: bool = False, window_days: int = 0,
                 task: str = "ctr"):
        """
        Args:
          input_base: folder of the logs (local path, gs://, s3:// ...).
          layout: 'auto' (from the file names), 'canonical' or 'tianchi'.
          max_seq_len: T, events kept per history (the most recent ones).
          num_samples: K, triplet samples per feedback type.
          eval_days: the last days of impressions that form the eval split (>= 1).
          eval_start_timestamp: fixes the first second of the eval split instead.
          eval_fraction: the last this fraction (0 < F < 1) of the impressions by time form
            the eval split instead (for logs of a single day); not with eval_start_timestamp.
          timezone_offset_hours: time zone of the log's calendar days (Beijing: 8).
          seed: seed of the triplet samples.
          max_bad_row_fraction: the run fails when more lines than this are bad.
          ignore_unknown_files: run without the log-like files (.csv, .gz, .bz2, ...) whose
            names match no file of the layout, instead of failing (they are listed in the
            log report either way).
          max_days_from_median: events further than this many days from the logs' median
            time (sampled before the run) are bad rows, reason timestamp_out_of_range. None:
            derived from the data, the larger of 30 days and twice the span of the middle
            80% of the sampled event times.
          min_eval_examples: the run stops when the eval split holds fewer examples.
          drop_duplicate_events: drop exact repeats of an event (same fields, same second)
            instead of keeping them; counted in the log report either way.
          window_days: a rolling training window: the train split holds the impressions of
            the last this many days before the eval split (0: every day). Earlier
            impressions form no example (counted as impressions_before_window) but their
            events stay in the histories of later examples.
          task: 'ctr' (impressions, click = 1) or 'dislike' (every feedback event on a shown
            item, dislike = 1; the paper's §4.5), feedback_contract.TASKS.
        """
        if max_seq_len < 1 or num_samples < 0 or eval_days < 1:
            raise ValueError("need max_seq_len >= 1, num_samples >= 0 and eval_days >= 1")
        if eval_fraction is not None and not 0.0 < eval_fraction < 1.0:
            raise ValueError("eval_fraction must be in (0, 1), got %r" % (eval_fraction,))
        if eval_fraction is not None and eval_start_timestamp:
            raise ValueError("give eval_start_timestamp or eval_fraction, not both")
        if not 0.0 <= max_bad_row_fraction <= 1.0:
            raise ValueError("max_bad_row_fraction must be in [0, 1]")
        if max_days_from_median is not None and max_days_from_median < 1:
            raise ValueError("max_days_from_median must be >= 1 day (or None: derived)")
        if min_eval_examples < 1:
            raise ValueError("min_eval_examples must be >= 1")
        if window_days < 0:
            raise ValueError("window_days must be >= 1 day (or 0: every day)")
        if task not in TASKS:
            raise ValueError("task=%r, expected one of %s" % (task, tuple(TASKS)))
        spec = FeedbackExampleGenSpec(
            input_base=input_base, layout=layout, max_seq_len=max_seq_len,
            num_samples=num_samples, eval_days=eval_days,
            eval_start_timestamp=eval_start_timestamp or 0,
            timezone_offset_hours=timezone_offset_hours, seed=seed,
            max_bad_row_fraction=float(max_bad_row_fraction),
            ignore_unknown_files=int(bool(ignore_unknown_files)),
            eval_fraction=float(eval_fraction) if eval_fraction is not None else None,
            max_days_from_median=int(max_days_from_median or 0),
            min_eval_examples=int(min_eval_examples),
            drop_duplicate_events=int(bool(drop_duplicate_events)),
            window_days=int(window_days), task=task,
            examples=types.Channel(type=standard_artifacts.Examples),
            log_report=types.Channel(type=FeedbackLogReport))
        super().__init__(spec=spec)
