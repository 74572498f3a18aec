"""Build-time check of the container image (run by the top-level Dockerfile).

    python -m kubeflow.image check    # fails the image build when the image is not runnable

The curated schema is not baked: the pipeline's CuratedSchemaGen step renders the image's
schema/schema.pbtxt for the run's T, K, profile fields and pid values, so the check makes sure
the template is where that step looks and renders.
"""
import argparse
import importlib
import os
import sys
import tempfile
from typing import List, Optional, Sequence

import legacy_keras  # noqa: F401  (before TensorFlow)

LOCK_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "requirements.lock")


def lock_mismatches(lock_path: str = LOCK_FILE) -> List[str]:
    """Pins of requirements.lock that the running environment does not have exactly."""
    import re
    from importlib import metadata
    problems = []
    with open(lock_path) as f:
        for line in f:
            match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
            if not match:
                continue
            name, pinned = re.sub(r"\[.*\]", "", match.group(1)), match.group(2)
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                problems.append("%s==%s is not installed" % (name, pinned))
                continue
            if installed != pinned:
                problems.append("%s is %s, the lock pins %s" % (name, installed, pinned))
    return problems


def check(lock_path: str = LOCK_FILE) -> List[str]:
    """What a step needs at run time; returns the problems found (empty when all is well)."""
    problems = lock_mismatches(lock_path)
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        problems.append("TF_USE_LEGACY_KERAS is not 1 in the image environment")
    import tensorflow as tf
    if "tf_keras" not in tf.keras.__name__:
        problems.append("tf.keras is %s, not tf_keras (Keras 2)" % tf.keras.__name__)
    from pipeline.config import PREPROCESSING_FN, RUN_FN, PipelineConfig
    for dotted in (PREPROCESSING_FN, RUN_FN):
        problems.extend(_import_problems(dotted, "user code"))
    # The schema template, rendered as the CuratedSchemaGen step renders it by default.
    from components.curated_schema_gen.component import encode_list, render
    defaults = PipelineConfig()
    with tempfile.TemporaryDirectory() as out_dir:
        try:
            render("", defaults.max_seq_len, defaults.num_samples, encode_list(None),
                   encode_list(None), out_dir)
        except Exception as error:  # noqa: BLE001 - report, do not hide
            problems.append("the schema template does not render: %s" % error)
    # Everything the compiled spec names by dotted path must import in the image.
    from kubeflow import runner
    from kubeflow.config import OPTIONS, KubeflowConfig
    values = {o.name: o.default for o in OPTIONS}
    values.update(pipeline_root="gs://image-check/root", data_root="gs://image-check/data",
                  push_destination="gs://image-check/serving", image="image-check")
    config = KubeflowConfig(values=values, sources={o.name: "check" for o in OPTIONS})
    try:
        job, _ = runner.compile_spec(config)
    except Exception as error:  # noqa: BLE001 - report, do not hide, any compile problem
        problems.append("the pipeline does not compile: %s" % error)
    else:
        spec = job["pipelineSpec"]
        for path in runner.executor_class_paths(spec):
            problems.extend(_import_problems(path, "executor"))
        problems.extend(runner.unimportable_artifact_types(spec))
    return problems


def _import_problems(dotted: str, what: str) -> List[str]:
    module, _, name = dotted.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except Exception as error:  # noqa: BLE001
        return ["cannot import %s %s: %s" % (what, dotted, error)]
    return []


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kubeflow.image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="verify the image can run every step")
    p.parse_args(argv)
    problems = check()
    for problem in problems:
        print("image check: %s" % problem, file=sys.stderr)
    if not problems:
        print("image check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
