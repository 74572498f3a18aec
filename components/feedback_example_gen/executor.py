"""Executor of FeedbackExampleGen: runs the Beam graph of beam_steps.py and checks its counts."""
import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.feedback_example_gen import bad_row_lines, beam_steps, readers, tfrecord_sink
from components.feedback_example_gen.history import EVAL, TRAIN

EXAMPLES_KEY = "examples"
LOG_REPORT_KEY = "log_report"
SPLITS = (TRAIN, EVAL)


class BadRowsError(RuntimeError):
    """Too many lines of the input could not be read."""


class UnusableOutputError(RuntimeError):
    """The examples cannot be used: a split is empty, or the runner lost data."""


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads feedback logs in either layout and writes train/eval tf.Examples (gzip TFRecord)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[LOG_REPORT_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))

        log_files = beam_steps.discover(
            exec_properties["input_base"], exec_properties.get("layout") or "auto",
            ignore_unknown_files=bool(exec_properties.get("ignore_unknown_files")))
        logging.info("FeedbackExampleGen: %s layout, files %s", log_files.layout,
                     {kind: len(paths) for kind, paths in log_files.files.items()})
        override = exec_properties.get("eval_start_timestamp") or None
        sampled = beam_steps.sampled_event_times(log_files)
        window = readers.time_window(sampled, exec_properties.get("max_days_from_median") or None)
        if window is None:
            logging.warning("FeedbackExampleGen: only %d event times could be sampled, too few "
                            "for the logs' median time; event times are checked against "
                            "2000-01-01 to tomorrow only", len(sampled))
        else:
            logging.info("FeedbackExampleGen: event times kept from %s to %s (%s)",
                         readers.utc_date(window.start), readers.utc_date(window.end),
                         window.describe().replace("more than", "within"))
        with self._make_beam_pipeline() as pipeline:
            splits = pipeline | "BuildFeedbackExamples" >> beam_steps.BuildFeedbackExamples(
                log_files, report.uri,
                max_seq_len=exec_properties["max_seq_len"],
                num_samples=exec_properties["num_samples"],
                eval_days=exec_properties["eval_days"],
                seed=exec_properties["seed"],
                timezone_offset_hours=exec_properties["timezone_offset_hours"],
                eval_start_override=override,
                eval_fraction=exec_properties.get("eval_fraction") or None,
                time_window=window,
                drop_duplicate_events=bool(exec_properties.get("drop_duplicate_events")),
                window_days=int(exec_properties.get("window_days") or 0),
                task=exec_properties.get("task") or "ctr")
            for split, serialized in splits.items():
                # Written as they come, without TFX's WriteSplit Reshuffle: that shuffle
                # makes the runner hold every example at once (about 3 KB each at T = 100,
                # so ~28 GB for the 9M impressions of 10M events), while the Trainer shuffles
                # anyway. One user's examples are adjacent in the files as a result.
                _ = serialized | "WriteSplit[%s]" % split >> tfrecord_sink.WriteToGzipTFRecord(
                    os.path.join(artifact_utils.get_split_uri([examples], split),
                                 write_split.DEFAULT_FILE_NAME),
                    file_name_suffix=".gz")
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))

        located = bad_row_lines.add_line_numbers(report.uri, beam_steps.BAD_ROWS_PREFIX,
                                                 log_files.paths_by_display_name())
        if located and located.rows:
            logging.info("FeedbackExampleGen: %d of %d bad rows given their line numbers "
                         "(%d files read again); the first: %s", located.located,
                         located.rows, located.files_read,
                         "; ".join(map(bad_row_lines.describe, located.first)))
        summary = beam_steps.read_summary(report.uri)
        logging.info("FeedbackExampleGen summary:\n%s", summary.format())
        report.set_int_custom_property("lines", summary.lines)
        report.set_int_custom_property("bad_rows", summary.bad_rows)
        for split in SPLITS:
            report.set_int_custom_property("examples_" + split,
                                           summary.counts.get("examples_" + split, 0))
        check_summary(summary, exec_properties["max_bad_row_fraction"], report.uri,
                      check_eval_labels=bool(exec_properties.get("check_eval_labels", 1)),
                      min_eval_examples=int(exec_properties.get("min_eval_examples") or 1))


def check_summary(summary: beam_steps.LogSummary, max_bad_row_fraction: float,
                  report_uri: str, check_eval_labels: bool = True,
                  min_eval_examples: int = 1) -> None:
    """Fails the run, with a message that says what to look at, when the output is unusable."""
    def too_many(what: str, bad: int, lines: int, fraction: float, reasons: str) -> BadRowsError:
        rows = bad_row_lines.first_rows(report_uri, beam_steps.BAD_ROWS_PREFIX, limit=3)
        first = " First: %s." % "; ".join(map(bad_row_lines.describe, rows)) if rows else ""
        return BadRowsError(
            "%d of %d lines (%.2f%%)%s could not be read, above the allowed %.2f%%. %s: %s.%s "
            "The lines, their reasons and line numbers are in %s/%s-*.jsonl; fix the input or "
            "raise max_bad_row_fraction." % (
                bad, lines, 100 * fraction, what, 100 * max_bad_row_fraction, reasons,
                ", ".join("%s %d" % (k[len("bad_rows/"):], v)
                          for k, v in sorted(summary.counts.items()) if k.startswith("bad_rows/")),
                first, report_uri, beam_steps.BAD_ROWS_PREFIX))

    for role, (bad, lines, fraction) in sorted(summary.role_bad_row_fractions().items()):
        if fraction > max_bad_row_fraction:
            raise too_many(" of the %s files" % role, bad, lines, fraction,
                           "Reasons (all files)")
    if summary.bad_row_fraction > max_bad_row_fraction:
        raise too_many("", summary.bad_rows, summary.lines, summary.bad_row_fraction, "Reasons")
    # Every event read must reach its user after the shuffle, and every impression must come
    # out as exactly one example. Counted on both sides of the group-by-user shuffle, so a
    # runner that loses elements fails the run loudly instead of writing a partial dataset.
    c = summary.counts
    read_events = c.get("impressions", 0) + c.get("history_only_events", 0)
    checks = [("events read", read_events, "events after the group-by-user shuffle",
               c.get("events_grouped", 0)),
              ("impressions read" + (" less the repeats dropped"
                                     if c.get("duplicate_impressions_dropped") else "")
               + (" less those before the training window"
                  if c.get("impressions_before_window") else ""),
               c.get("impressions", 0) - c.get("duplicate_impressions_dropped", 0)
               - c.get("impressions_before_window", 0),
               "examples built", sum(c.get("examples_" + split, 0) for split in SPLITS))]
    for before_name, before, after_name, after in checks:
        if before != after:
            raise UnusableOutputError(
                "%d %s but %d %s: %d lost between reading and writing (the Beam runner "
                "dropped data); the output is incomplete and must not be used"
                % (before, before_name, after, after_name, before - after))
    for split in SPLITS:
        if not summary.counts.get("examples_" + split):
            raise UnusableOutputError(
                "no %s examples were produced (%s). Check that the logs hold impressions "
                "(click/unclick with an item id) and that the eval split leaves impressions on "
                "both sides: eval_days counts calendar days from the last one, so logs of a "
                "single day need --eval-start TIMESTAMP (a second within that day) or "
                "--eval-fraction F (the last F of the impressions by time)."
                % (split, summary.format().replace("\n", "; ")))
    eval_examples = c.get("examples_eval", 0)
    if 0 < eval_examples < min_eval_examples:
        eval_start = c.get("eval_start_timestamp", 0)
        raise UnusableOutputError(
            "the eval split (impressions from timestamp %d, %s UTC, on) holds %d examples, "
            "fewer than min_eval_examples %d, too few to judge a model by; move its boundary "
            "with --eval-days, --eval-start or --eval-fraction (or lower --min-eval-examples)"
            % (eval_start, readers.utc_date(eval_start), eval_examples, min_eval_examples))
    if check_eval_labels and "clicks_eval" in c:
        clicks, examples = c["clicks_eval"], c.get("examples_eval", 0)
        if clicks in (0, examples):
            raise UnusableOutputError(
                "the eval split (impressions from timestamp %d on: %d examples) holds %s, so "
                "its AUC is undefined and no model could be judged on it; move its boundary "
                "with --eval-days, --eval-start or --eval-fraction"
                % (c.get("eval_start_timestamp", 0), examples,
                   "no click" if clicks == 0 else "only clicks"))
