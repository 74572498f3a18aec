"""Scoring latency and batch throughput of the pushed SavedModel's `serving_default` on CPU.

    .venv/bin/python benchmarks/serving_latency.py                  # latest push under output/
    .venv/bin/python benchmarks/serving_latency.py --model DIR --examples DIR --requests 500

Loads the SavedModel in-process with `tf.saved_model.load` (what a Python scorer or TF
Serving's C++ runtime executes: the same graph, Transform layer included), takes real raw
examples from the eval split of the latest FeedbackExampleGen run (label removed, as a
request carries none) and measures:

* latency of one request of 1 example and of 100 examples: p50, p90, p99 and max over
  `--requests` requests, after `--warmup` untimed requests (the warm-up requests the export
  writes exist so that a server's first request does not pay for the graph's first run;
  the first, cold request's time is printed separately);
* the same for the signature's input check alone (`models.export.assert_example_framing`,
  run on the same requests), to show its share;
* batch scoring: examples/s over `--batch-examples` examples in batches of 1,000.

Prints a table and, with `--json-out`, writes every figure. Timings are wall-clock
(time.perf_counter) around the signature call, on however many CPU threads TensorFlow uses
by default; the machine's CPU count is printed with them.
"""
import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402


def latest(pattern: str) -> str:
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        raise SystemExit("error: nothing matches %s; run the main job first (bash scripts/main.sh)"
                         % pattern)
    return found[-1]


def load_examples(examples_dir: str, limit: int):
    import tensorflow as tf
    paths = sorted(glob.glob(os.path.join(examples_dir, "Split-eval", "*.gz")))
    if not paths:
        raise SystemExit("error: no eval examples under %s" % examples_dir)
    serialized = []
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP").take(limit):
        example = tf.train.Example.FromString(record.numpy())
        del example.features.feature["label"]
        serialized.append(example.SerializeToString())
    return serialized


def percentiles(seconds):
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-root", default="output", help="the main job's output folder")
    p.add_argument("--model", help="a SavedModel folder (default: the latest push)")
    p.add_argument("--examples", help="a FeedbackExampleGen examples artifact folder "
                                      "(default: the latest run's)")
    p.add_argument("--requests", type=int, default=300, help="timed requests per batch size")
    p.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    p.add_argument("--batch-examples", type=int, default=20000,
                   help="examples scored for the batch throughput")
    p.add_argument("--json-out")
    args = p.parse_args(argv)

    import tensorflow as tf
    model_dir = args.model or latest(os.path.join(args.output_root, "serving_model", "*"))
    examples_dir = args.examples or latest(os.path.join(
        args.output_root, "pipeline", "FeedbackExampleGen", "examples", "*"))
    serialized = load_examples(examples_dir, max(args.batch_examples, 100))
    started = time.perf_counter()
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    load_s = time.perf_counter() - started

    def score(batch):
        return signature(examples=tf.constant(batch))["probability"].numpy()

    from models.export import assert_example_framing

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def framing_check(examples):  # the signature's input check alone, for its share
        with tf.control_dependencies([assert_example_framing(examples)]):
            return tf.size(examples)

    def check(batch):
        return framing_check(tf.constant(batch)).numpy()

    rng = np.random.default_rng(0)
    result = {"model": model_dir, "examples": examples_dir, "cpus": os.cpu_count(),
              "load_s": load_s, "latency": {}}
    started = time.perf_counter()
    score(serialized[:1])
    result["first_request_ms"] = (time.perf_counter() - started) * 1000.0
    result["framing_check_latency"] = {}
    for size in (1, 100):
        for _ in range(args.warmup):
            batch = [serialized[i] for i in rng.integers(0, len(serialized), size)]
            score(batch)
            check(batch)
        times, check_times = [], []
        for _ in range(args.requests):
            batch = [serialized[i] for i in rng.integers(0, len(serialized), size)]
            started = time.perf_counter()
            out = score(batch)
            times.append(time.perf_counter() - started)
            assert out.shape == (size,)
            started = time.perf_counter()
            check(batch)
            check_times.append(time.perf_counter() - started)
        result["latency"][size] = percentiles(times)
        result["framing_check_latency"][size] = percentiles(check_times)
    n = min(args.batch_examples, len(serialized))
    started = time.perf_counter()
    for first in range(0, n, 1000):
        score(serialized[first:first + 1000])
    result["batch_examples_per_s"] = n / (time.perf_counter() - started)
    result["batch_examples"] = n

    print("model %s (loaded in %.1f s), %d CPUs; first (cold) request %.1f ms"
          % (model_dir, load_s, result["cpus"], result["first_request_ms"]))
    print("| examples per request | p50 ms | p90 ms | p99 ms | max ms | requests |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, figures in result["latency"].items():
        print("| %d | %.2f | %.2f | %.2f | %.2f | %d |" % (
            size, figures["p50_ms"], figures["p90_ms"], figures["p99_ms"], figures["max_ms"],
            args.requests))
    print("the input check alone (models/export.assert_example_framing, part of the above):")
    for size, figures in result["framing_check_latency"].items():
        print("| %d | %.2f | %.2f | %.2f | %.2f | %d |" % (
            size, figures["p50_ms"], figures["p90_ms"], figures["p99_ms"], figures["max_ms"],
            args.requests))
    print("batch scoring: %.0f examples/s (%d examples in batches of 1,000)"
          % (result["batch_examples_per_s"], n))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
