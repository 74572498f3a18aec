"""Build-time steps of the container image (run by the top-level Dockerfile).

    python -m kubeflow.image bake     # renders the curated schema for every T x K variant
    python -m kubeflow.image check    # fails the image build when the image is not runnable

Why the schema is baked into the image: the curated schema is rendered for T and K
(pipeline.pipeline.render_schema). Rendering it at compile time would need write access to the
pipeline root (network, credentials) and would leave a file that a later compile can
overwrite under a spec that still points to it. Baked into the image it is immutable, it is
versioned with the code that reads it (the image tag), and compiling needs no network. The
variants are listed in kubeflow/schema_variants.yaml; the runner refuses to compile a T x K
that is not listed there (unless --schema-file names another schema), so a spec never points
at a schema its image lacks.
"""
import argparse
import importlib
import os
import sys
from typing import List, Optional, Sequence, Tuple

import legacy_keras  # noqa: F401  (before TensorFlow)

# The image's layout (where the repository and the baked schemas are), shared with the runner.
from kubeflow.baked_schemas import (BAKED_SCHEMA_ROOT, IMAGE_REPO_ROOT,  # noqa: E402,F401
                                    VARIANTS_FILE, baked_schema_path, parse_variant,
                                    read_variants)

LOCK_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "requirements.lock")


def bake(root: str = BAKED_SCHEMA_ROOT,
         variants: Optional[Sequence[Tuple[int, int]]] = None) -> List[str]:
    """Renders the curated schema for each variant, with the local pipeline's own function."""
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import render_schema
    written = []
    for t, k in variants or read_variants():
        expected = baked_schema_path(t, k, root)
        variant_root = os.path.dirname(os.path.dirname(expected))
        path = render_schema(PipelineConfig(pipeline_root=variant_root, max_seq_len=t,
                                            num_samples=k))
        if os.path.normpath(path) != os.path.normpath(expected):
            raise RuntimeError("render_schema wrote %s, the runner expects %s" % (path, expected))
        written.append(path)
    return written


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


def check(root: str = BAKED_SCHEMA_ROOT, lock_path: str = LOCK_FILE) -> List[str]:
    """What a step needs at run time; returns the problems found (empty when all is well)."""
    problems = lock_mismatches(lock_path)
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        problems.append("TF_USE_LEGACY_KERAS is not 1 in the image environment")
    import tensorflow as tf
    if "tf_keras" not in tf.keras.__name__:
        problems.append("tf.keras is %s, not tf_keras (Keras 2)" % tf.keras.__name__)
    from pipeline.config import PREPROCESSING_FN, RUN_FN
    for dotted in (PREPROCESSING_FN, RUN_FN):
        problems.extend(_import_problems(dotted, "user code"))
    for t, k in read_variants():
        if not os.path.exists(baked_schema_path(t, k, root)):
            problems.append("baked schema missing: %s" % baked_schema_path(t, k, root))
    # Everything the compiled spec names by dotted path must import in the image.
    from kubeflow import runner
    from kubeflow.config import OPTIONS, KubeflowConfig
    values = {o.name: o.default for o in OPTIONS}
    values.update(pipeline_root="gs://image-check/root", data_root="gs://image-check/data",
                  push_destination="gs://image-check/serving", image="image-check")
    config = KubeflowConfig(values=values, sources={o.name: "check" for o in OPTIONS})
    try:
        job, _ = runner.compile_spec(config, schema_root=root)
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
    b = sub.add_parser("bake", help="render the curated schema for each T x K variant")
    b.add_argument("--root", default=BAKED_SCHEMA_ROOT)
    b.add_argument("variants", nargs="*", metavar="TxK",
                   help="default: the entries of kubeflow/schema_variants.yaml")
    c = sub.add_parser("check", help="verify the image can run every step")
    c.add_argument("--root", default=BAKED_SCHEMA_ROOT)
    args = p.parse_args(argv)
    if args.command == "bake":
        variants = [parse_variant(v) for v in args.variants] or None
        for path in bake(args.root, variants):
            print("baked %s" % path)
        return 0
    problems = check(args.root)
    for problem in problems:
        print("image check: %s" % problem, file=sys.stderr)
    if not problems:
        print("image check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
