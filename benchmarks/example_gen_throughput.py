"""FeedbackExampleGen throughput: log events/s in, examples/s out, on a simulated log.

Runs the component's executor directly (no orchestrator), so the time is Beam's alone.

    .venv/bin/python benchmarks/example_gen_throughput.py --data output/data/simulated \
        --beam-args=--direct_running_mode=multi_processing --beam-args=--direct_num_workers=2
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import legacy_keras  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of logs (either layout)")
    parser.add_argument("--max-seq-len", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=5)
    parser.add_argument("--beam-args", action="append", default=[],
                        help="a Beam pipeline argument (repeatable)")
    parser.add_argument("--verify", action="store_true",
                        help="after the timed run, count the records in the written files and "
                             "check them against the counts (not timed)")
    args = parser.parse_args()

    from tfx.types import standard_artifacts
    from components.feedback_example_gen import beam_steps
    from components.feedback_example_gen.component import FeedbackLogReport
    from components.feedback_example_gen.executor import Executor
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    out = tempfile.mkdtemp(prefix="dumn-eg-bench-")
    try:
        examples = standard_artifacts.Examples()
        examples.uri = os.path.join(out, "examples")
        report = FeedbackLogReport()
        report.uri = os.path.join(out, "report")
        context = BaseBeamExecutor.Context(beam_pipeline_args=args.beam_args, tmp_dir=out)
        started = time.perf_counter()
        try:
            Executor(context).Do({}, {"examples": [examples], "log_report": [report]}, dict(
                input_base=args.data, layout="auto", max_seq_len=args.max_seq_len,
                num_samples=args.num_samples, eval_days=1, eval_start_timestamp=0,
                timezone_offset_hours=8, seed=0, max_bad_row_fraction=0.01))
        except RuntimeError:
            # The executor's own checks failed: show every count before failing.
            if os.path.exists(os.path.join(report.uri, beam_steps.SUMMARY_FILE)):
                print("all counts: %s" % json.dumps(
                    beam_steps.read_summary(report.uri).counts, sort_keys=True))
            raise
        elapsed = time.perf_counter() - started
        summary = beam_steps.read_summary(report.uri)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(examples.uri)
                   for f in fs)
        written = count_records(examples.uri) if args.verify else None
    finally:
        shutil.rmtree(out, ignore_errors=True)
    c = summary.counts
    print(summary.format())
    print("all counts: %s" % json.dumps(c, sort_keys=True))
    events = summary.lines - summary.bad_rows
    produced = c.get("examples_train", 0) + c.get("examples_eval", 0)
    print("data: %s (%d lines, %d events incl. table rows, %d impressions)"
          % (args.data, summary.lines, events, c.get("impressions", 0)))
    print("beam args: %s; T=%d K=%d; %d CPUs" % (" ".join(args.beam_args) or "(default)",
                                                args.max_seq_len, args.num_samples,
                                                os.cpu_count()))
    print("wall time %.1f s: %.0f lines/s in, %.0f examples/s out (%d examples, %.0f MiB gzip)"
          % (elapsed, summary.lines / elapsed, produced / elapsed, produced, size / 2 ** 20))
    if written is not None:
        expected = {split: c.get("examples_" + split, 0) for split in written}
        print("verify: records in the files %s, counted %s, impressions read %d: %s"
              % (written, expected, c.get("impressions", 0),
                 "OK" if written == expected and sum(written.values()) == c.get("impressions")
                 else "MISMATCH"))
        if written != expected or sum(written.values()) != c.get("impressions"):
            return 1
    return 0


def count_records(examples_uri: str) -> dict:
    """Records per split in the gzip TFRecord files, counted by TensorFlow's reader."""
    import glob
    import tensorflow as tf
    counts = {}
    for split_dir in sorted(glob.glob(os.path.join(examples_uri, "Split-*"))):
        files = sorted(glob.glob(os.path.join(split_dir, "*.gz")))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=2)
        counts[os.path.basename(split_dir)[len("Split-"):]] = int(
            dataset.reduce(0, lambda n, _: n + 1))
    return counts


if __name__ == "__main__":
    sys.exit(main())
