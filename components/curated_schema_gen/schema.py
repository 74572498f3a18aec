"""Renders the curated TFDV schema (schema/schema.pbtxt) for one pipeline's settings.

schema/schema.pbtxt describes the feedback-history ExampleGen's output for the simulator and
the Tianchi data with T = 100 and K = 5. A pipeline runs with its own T (`max_seq_len`) and
K (`num_samples`), so the bounds that depend on them — the maximum number of values of every
`*_seq` feature (T) and of every `*_samples` feature (K) — are set here; the pipeline's
CuratedSchemaGen step (component.py) writes the result where ExampleValidator, Transform and
Trainer read it. For a dataset in the canonical layout, the profile fields and the pid domain
can be replaced too.

The template is found relative to this file, `<repo>/schema/schema.pbtxt`
(Path(__file__).parents[2]): schema/ is data, not a Python package, so it comes with the
checkout (the local venv and the image install the repository in place), or pass `template`.
"""
import copy
import os
from pathlib import Path
from typing import Optional, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from feedback_contract import PID, PROFILE_PREFIX, profile_feature

SCHEMA_TEMPLATE = Path(__file__).resolve().parents[2] / "schema" / "schema.pbtxt"
SEQUENCE_SUFFIX = "_seq"
SAMPLES_SUFFIX = "_samples"


def load_schema(path=SCHEMA_TEMPLATE) -> schema_pb2.Schema:
    """Parses a text-format Schema; a missing template is a clear error."""
    path = str(path)
    if not path.startswith(("gs://", "s3://", "hdfs://")) and not os.path.exists(path):
        raise FileNotFoundError(
            "schema template %s not found: it lives in the repository (schema/schema.pbtxt), "
            "not in the installed package; render the schema from a checkout or pass "
            "`template`" % path)
    return io_utils.parse_pbtxt_file(path, schema_pb2.Schema())


def customise_schema(schema: schema_pb2.Schema, max_seq_len: int, num_samples: int,
                     profile_fields: Optional[Sequence[str]] = None,
                     pid_values: Optional[Sequence[str]] = None) -> schema_pb2.Schema:
    """A copy of `schema` with history bounds T, K and, optionally, other profile fields.

    profile_fields: the dataset's profile field names without the 'profile_' prefix (as the
      ExampleGen's LogFiles.profile_fields lists them); None keeps the template's. The new
      profile features copy the constraints of the template's first profile feature.
    pid_values: the position ids the dataset may have (include '' for logs without a pid
      column); None keeps the template's two Tianchi values, an empty sequence accepts any.
    """
    for name, value in (("max_seq_len", max_seq_len), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("%s=%r, expected an integer >= 1" % (name, value))
    schema = copy.deepcopy(schema)
    sequences = [f for f in schema.feature if f.name.endswith(SEQUENCE_SUFFIX)]
    samples = [f for f in schema.feature if f.name.endswith(SAMPLES_SUFFIX)]
    if not sequences or not samples:
        raise ValueError("the schema has no *_seq or no *_samples features: not the feedback "
                         "ExampleGen's schema")
    for feature in sequences:
        feature.value_count.max = max_seq_len
    for feature in samples:
        feature.value_count.max = num_samples

    if pid_values is not None:
        pid = next(f for f in schema.feature if f.name == PID)
        pid.ClearField("string_domain")
        if pid_values:
            pid.string_domain.value.extend(pid_values)

    if profile_fields is not None:
        profiles = [f for f in schema.feature if f.name.startswith(PROFILE_PREFIX)]
        if not profiles:
            raise ValueError("the schema template has no profile_* feature to copy")
        prototype = copy.deepcopy(profiles[0])
        kept = [f for f in schema.feature if not f.name.startswith(PROFILE_PREFIX)]
        del schema.feature[:]
        schema.feature.extend(kept)
        for field in profile_fields:
            feature = schema.feature.add()
            feature.CopyFrom(prototype)
            feature.name = profile_feature(field)
    return schema


def render_schema(max_seq_len: int, num_samples: int, out_path: str,
                  template=SCHEMA_TEMPLATE,
                  profile_fields: Optional[Sequence[str]] = None,
                  pid_values: Optional[Sequence[str]] = None) -> str:
    """Writes the template schema with T = max_seq_len and K = num_samples to `out_path`.

    Use the ExampleGen's max_seq_len / num_samples; `profile_fields` and `pid_values` adapt
    the schema to a canonical-layout dataset (see `customise_schema`). `out_path` is a file
    path (local or any filesystem TFX's fileio supports); parent folders are created.
    Returns `out_path`.
    """
    schema = customise_schema(load_schema(template), max_seq_len, num_samples, profile_fields,
                              pid_values)
    io_utils.write_pbtxt_file(out_path, schema)
    return out_path
