"""Where the image keeps its baked schemas, and which T x K variants it has.

Shared by the build-time steps (kubeflow/image.py) and the compiler (kubeflow/runner.py), so
that neither imports the other.
"""
import os
from typing import List, Tuple

# Where the repository is copied in the image (the Dockerfile's WORKDIR) and where the
# rendered schemas go. Changing one means changing the Dockerfile too.
IMAGE_REPO_ROOT = "/pipeline"
BAKED_SCHEMA_ROOT = IMAGE_REPO_ROOT + "/schema/rendered"
VARIANTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema_variants.yaml")


def baked_schema_path(max_seq_len: int, num_samples: int, root: str = BAKED_SCHEMA_ROOT) -> str:
    """The schema file, inside the image, for T = max_seq_len and K = num_samples."""
    # The layout is what pipeline.render_schema writes under a pipeline root.
    return "%s/t%d_k%d/curated_schema/schema.pbtxt" % (root, max_seq_len, num_samples)


def parse_variant(text: str) -> Tuple[int, int]:
    """'100x5' -> (100, 5)."""
    t, sep, k = str(text).strip().lower().partition("x")
    if not sep or not t.isdigit() or not k.isdigit() or int(t) < 1 or int(k) < 1:
        raise ValueError("schema variant %r: expected TxK, e.g. 100x5" % text)
    return int(t), int(k)


def read_variants(path: str = VARIANTS_FILE) -> List[Tuple[int, int]]:
    """The T x K variants baked into the image, from kubeflow/schema_variants.yaml."""
    import yaml
    with open(path) as f:
        entries = yaml.safe_load(f) or []
    if not isinstance(entries, list):
        raise ValueError("%s: expected a list of TxK strings" % path)
    return [parse_variant(entry) for entry in entries]
