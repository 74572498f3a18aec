"""Where Transform's time goes: examples/s of each stage on a pipeline run's ExampleGen output.

Stages (each timed in its own Beam pipeline or TF loop, on the same input, one after the
other; pick with --stages):

* `read`      Beam reads both splits through TFXIO (gzip TFRecords -> Arrow record batches,
              the way TFX Transform reads them) and counts the rows: the floor any Beam
              Transform pays.
* `executor`  TFX's Transform executor as the pipeline runs it (analysis on train, every
              split transformed, encoded as tf.Examples and written), statistics and cache
              off as in pipeline/pipeline.py.
* `analyze`   the same executor without transformed_examples (TFX's `materialize=False`):
              the analysis pass and the transform graph only.
* `apply`     the analyze stage's transform graph applied by TensorFlow alone, in a
              tf.data pipeline over the raw files (parse_example + TFT's layer, batches of
              --batch-size), the way a Trainer would apply it in its input pipeline.

    .venv/bin/python benchmarks/transform_throughput.py \
        --examples output/pipeline/FeedbackExampleGen/examples/2 \
        --schema output/pipeline/AnomaliesGate/validated_schema/6 \
        --reference-graph output/pipeline/Transform/transform_graph/7 \
        --reference-examples output/pipeline/Transform/transformed_examples/7

With --reference-graph (a Transform artifact of other code, e.g. the pipeline run's) the
executor stage's vocabulary files are checked to be byte-identical to its ones, and with
--reference-examples the transformed values of every example too (both splits, compared in
the canonical order of models/example_order.py, since Beam writes rows in any order).

Beam runs the DirectRunner in multi-processing mode with one worker per CPU, as the main job
does (--beam-args replaces that). The input's examples and each stage's examples/s
(examples over wall seconds, Beam start-up included) are printed, and with --json-out
written as JSON.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import legacy_keras  # noqa: F401,E402  (Keras 2 before TensorFlow)

STAGES = ("read", "executor", "analyze", "apply")
DEFAULT_BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]


def _split_files(examples_uri: str, split: str):
    return sorted(glob.glob(os.path.join(examples_uri, "Split-%s" % split, "*")))


def _count_records(files) -> int:
    import tensorflow as tf
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _examples_artifact(uri: str):
    from tfx.types import standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = json.dumps(["train", "eval"])
    return examples


def stage_read(args, splits) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_bsl.public import tfxio
    from tfx.utils import io_utils
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = io_utils.parse_pbtxt_file(_schema_file(args.schema), schema_pb2.Schema())
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(args.beam_args)) as pipeline:
        for split in splits:
            source = tfxio.TFExampleRecord(
                file_pattern=os.path.join(args.examples, "Split-%s" % split, "*"),
                schema=schema)
            _ = (pipeline | "Read%s" % split >> source.BeamSource()
                 | "Rows%s" % split >> beam.Map(lambda batch: batch.num_rows)
                 | "Sum%s" % split >> beam.CombineGlobally(sum))
    return time.perf_counter() - started


def _schema_file(schema_uri: str) -> str:
    from tfx.utils import io_utils
    return io_utils.get_only_uri_in_dir(schema_uri)


def stage_executor(args, work: str, materialize: bool) -> float:
    from tfx.components.transform.executor import Executor
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    from pipeline.config import PipelineConfig
    from pipeline.pipeline import PREPROCESSING_FN

    schema = standard_artifacts.Schema()
    schema.uri = args.schema
    graph = standard_artifacts.TransformGraph()
    graph.uri = os.path.join(work, "transform_graph")
    outputs = {"transform_graph": [graph]}
    if materialize:
        transformed = standard_artifacts.Examples()
        transformed.uri = os.path.join(work, "transformed_examples")
        outputs["transformed_examples"] = [transformed]
    context = BaseBeamExecutor.Context(beam_pipeline_args=args.beam_args,
                                       tmp_dir=os.path.join(work, "tmp"))
    started = time.perf_counter()
    Executor(context).Do(
        {"examples": [_examples_artifact(args.examples)], "schema": [schema]}, outputs,
        {"preprocessing_fn": PREPROCESSING_FN,
         "custom_config": json.dumps(PipelineConfig().transform_custom_config()),
         "disable_statistics": 1, "disable_analyzer_cache": 1, "force_tf_compat_v1": 0})
    return time.perf_counter() - started


def stage_apply(args, graph_uri: str, splits) -> float:
    import tensorflow as tf
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(graph_uri)
    layer = output.transform_features_layer()
    raw_spec = output.raw_feature_spec()
    files = [path for split in splits for path in _split_files(args.examples, split)]

    @tf.function
    def transform(serialized):
        return layer(tf.io.parse_example(serialized, raw_spec))

    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP",
                                       num_parallel_reads=tf.data.AUTOTUNE)
               .batch(args.batch_size)
               .map(transform, num_parallel_calls=tf.data.AUTOTUNE)
               .prefetch(tf.data.AUTOTUNE))
    started = time.perf_counter()
    rows = 0
    for batch in dataset:
        rows += int(tf.shape(batch["user_id"])[0])
    elapsed = time.perf_counter() - started
    print("  apply: %d rows transformed" % rows)
    return elapsed


def compare_with_reference(args, work: str) -> None:
    """Fails unless the executor stage wrote the reference's vocabularies and values."""
    import filecmp
    import numpy as np
    import tensorflow_transform as tft
    from models import example_order
    from models import features as F

    graph = os.path.join(work, "executor", "transform_graph")
    if args.reference_graph:
        ours = os.path.join(graph, "transform_fn", "assets")
        theirs = os.path.join(args.reference_graph, "transform_fn", "assets")
        names = sorted(os.listdir(theirs))
        if sorted(os.listdir(ours)) != names:
            raise SystemExit("vocabulary files differ: %s vs %s"
                             % (sorted(os.listdir(ours)), names))
        for name in names:
            if not filecmp.cmp(os.path.join(ours, name), os.path.join(theirs, name),
                               shallow=False):
                raise SystemExit("vocabulary %s differs from the reference's" % name)
        print("reference: the %d vocabulary files are byte-identical" % len(names))
    if args.reference_examples:
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
        for split in ("train", "eval"):
            loaded = []
            for root in (os.path.join(work, "executor", "transformed_examples"),
                         args.reference_examples):
                files = glob.glob(os.path.join(root, "Split-%s" % split, "*"))
                columns, labels = example_order.in_memory_columns(files, spec, F.LABEL)
                loaded.append(example_order.sorted_columns(columns, labels))
            (ours, our_labels), (theirs, their_labels) = loaded
            if not np.array_equal(our_labels, their_labels) or sorted(ours) != sorted(theirs):
                raise SystemExit("%s: labels or feature names differ" % split)
            for name in sorted(ours):
                if not np.array_equal(ours[name], theirs[name]):
                    raise SystemExit("%s: %s differs from the reference's" % (split, name))
            print("reference: %s split's %d examples have identical transformed values "
                  "(%d features)" % (split, len(our_labels), len(ours)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", required=True,
                        help="a FeedbackExampleGen examples artifact (holds Split-train, "
                             "Split-eval)")
    parser.add_argument("--schema", required=True,
                        help="the schema artifact folder the pipeline's Transform read")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated, from: %s" % ", ".join(STAGES))
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="examples per batch in the apply stage")
    parser.add_argument("--beam-args", action="append", default=None,
                        help="a Beam pipeline argument (repeatable; default: %s)"
                             % " ".join(DEFAULT_BEAM_ARGS))
    parser.add_argument("--reference-graph",
                        help="a transform_graph artifact whose vocabularies the executor "
                             "stage must reproduce byte for byte")
    parser.add_argument("--reference-examples",
                        help="a transformed_examples artifact whose values the executor "
                             "stage must reproduce")
    parser.add_argument("--json-out", help="also write the figures here as JSON")
    args = parser.parse_args()
    args.beam_args = args.beam_args or list(DEFAULT_BEAM_ARGS)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error("unknown stages %s; known: %s" % (unknown, ", ".join(STAGES)))

    splits = ("train", "eval")
    counts = {split: _count_records(_split_files(args.examples, split)) for split in splits}
    total = sum(counts.values())
    print("input: %d examples (train %d, eval %d); beam args %s"
          % (total, counts["train"], counts["eval"], " ".join(args.beam_args)))
    work = tempfile.mkdtemp(prefix="dumn-transform-bench-")
    results = {"examples": counts, "beam_args": args.beam_args, "stages": {}}
    try:
        for stage in stages:
            if stage == "read":
                seconds = stage_read(args, splits)
            elif stage in ("executor", "analyze"):
                folder = os.path.join(work, stage)
                seconds = stage_executor(args, folder, materialize=(stage == "executor"))
            else:
                graph = os.path.join(work, "analyze", "transform_graph")
                if not os.path.isdir(graph):
                    stage_executor(args, os.path.join(work, "analyze"), materialize=False)
                seconds = stage_apply(args, graph, splits)
            results["stages"][stage] = {"seconds": round(seconds, 2),
                                        "examples_per_s": round(total / seconds)}
            print("%-9s %7.1f s  %8.0f examples/s" % (stage, seconds, total / seconds))
            sys.stdout.flush()
            if stage == "executor" and (args.reference_graph or args.reference_examples):
                compare_with_reference(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
