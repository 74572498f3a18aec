"""AnomaliesGate: passes the schema on only when the data has no anomalies.

ExampleValidator records anomalies but does not stop a pipeline. This gate reads its
anomalies for every split and fails, printing each anomaly, when there is any; otherwise it
copies the curated schema to its output. Transform and Trainer consume the gate's schema, so
they cannot start on data that broke the schema — a data dependency, which every
orchestrator (local, Kubeflow, Vertex) honours, rather than a task-order hint.
"""
import logging
import os
from typing import Dict, List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

SCHEMA_DIFF_FILE = "SchemaDiff.pb"
SCHEMA_FILE = "schema.pbtxt"


class DataAnomaliesError(RuntimeError):
    """The examples do not match the curated schema."""


def read_anomalies(anomalies: standard_artifacts.ExampleAnomalies) -> Dict[str, anomalies_pb2.Anomalies]:
    """{split: Anomalies} as written by ExampleValidator."""
    found = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), SCHEMA_DIFF_FILE)
        with tf.io.gfile.GFile(path, "rb") as f:
            found[split] = anomalies_pb2.Anomalies.FromString(f.read())
    return found


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    """One line per anomaly: split, feature, short and long description."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append("%s: feature %r: %s (%s)" % (split, feature, info.short_description,
                                                     info.description))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append("%s: dataset: %s (%s)" % (split, info.short_description,
                                                  info.description))
    return lines


def suggested_fixes(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    """The flags or schema edits that fix the usual anomalies of a first run on one's own
    logs: profile columns other than the public data's, pid values other than its two."""
    features = {f for a in anomalies_by_split.values() for f in a.anomaly_info}
    fixes = []
    profile = sorted(f for f in features if f.startswith("profile_"))
    if profile:
        fixes.append("the profile fields of the schema differ from the data's (%s): pass "
                     "--profile-fields with the columns of users.csv (comma-separated, "
                     "user_id left out), or edit schema/schema.pbtxt"
                     % ", ".join(profile))
    if "pid" in features:
        fixes.append("the pid values differ from the schema's: pass --pid-values with the "
                     "data's values (comma-separated), or --pid-values '' to accept any pid")
    return fixes


def check_and_pass_schema(anomalies: standard_artifacts.ExampleAnomalies,
                          schema: standard_artifacts.Schema,
                          validated_schema: standard_artifacts.Schema) -> None:
    """Raises DataAnomaliesError on any anomaly; otherwise copies the schema to the output."""
    problems = describe(read_anomalies(anomalies))
    if problems:
        by_split = read_anomalies(anomalies)
        fixes = suggested_fixes(by_split)
        message = ("ExampleValidator found %d anomalies; Transform will not run on this data. "
                   "Fix the input or the curated schema (schema/schema.pbtxt):\n  %s"
                   % (len(problems), "\n  ".join(problems)))
        if fixes:
            message += "\nTo fix: " + "; ".join(fixes)
        print(message, flush=True)
        raise DataAnomaliesError(message)
    tf.io.gfile.makedirs(validated_schema.uri)
    tf.io.gfile.copy(os.path.join(schema.uri, SCHEMA_FILE),
                     os.path.join(validated_schema.uri, SCHEMA_FILE), overwrite=True)
    logging.info("AnomaliesGate: no anomalies; schema passed on to %s", validated_schema.uri)


@component
def AnomaliesGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                  schema: InputArtifact[standard_artifacts.Schema],
                  validated_schema: OutputArtifact[standard_artifacts.Schema]) -> None:
    """Fails on any anomaly; otherwise outputs the schema unchanged."""
    check_and_pass_schema(anomalies, schema, validated_schema)
