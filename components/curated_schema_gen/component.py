"""CuratedSchemaGen: the curated schema, rendered by the pipeline for this run's settings.

The schema the ExampleValidator checks the examples against (schema/schema.pbtxt) depends
on the run: T (`max_seq_len`) bounds every `*_seq` feature, K (`num_samples`) every
`*_samples` feature, and canonical logs may have other profile columns or pid values
(schema.py, customise_schema). TFX's ImportSchemaGen can only copy a file that
already holds the rendered schema, so it had to be rendered before the pipeline was built:
locally into the pipeline root, for Kubeflow into the image, once per T x K, with no way to
pass profile fields or pid values. This step renders it where it runs, from the template
shipped with the code (or a template the user names), with the settings as the step's
parameters: the local run and the compiled spec do the same thing, compiling stays offline,
and a spec's schema is fixed by its parameters and its image.
"""
import json
import logging
import os
from typing import List, Optional

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.curated_schema_gen.schema import SCHEMA_TEMPLATE, render_schema

SCHEMA_FILE = "schema.pbtxt"     # where ImportSchemaGen puts it, and the AnomaliesGate reads it


def encode_list(values: Optional[List[str]]) -> str:
    """A parameter for an optional list: 'null' keeps the template's, '[]' is an empty list
    (TFX parameters have no list or None type that every orchestrator carries)."""
    return json.dumps(None if values is None else [str(v) for v in values])


def decode_list(text: str, name: str) -> Optional[List[str]]:
    value = json.loads(text)
    if value is not None and not (isinstance(value, list)
                                  and all(isinstance(v, str) for v in value)):
        raise ValueError("%s must be a JSON list of strings or null, got %r" % (name, text))
    return value


def render(template: str, max_seq_len: int, num_samples: int, profile_fields_json: str,
           pid_values_json: str, out_dir: str) -> str:
    """Writes the rendered schema to out_dir/schema.pbtxt; returns its path."""
    path = os.path.join(out_dir, SCHEMA_FILE)
    render_schema(
        max_seq_len, num_samples, path, template=template or SCHEMA_TEMPLATE,
        profile_fields=decode_list(profile_fields_json, "profile_fields_json"),
        pid_values=decode_list(pid_values_json, "pid_values_json"))
    logging.info("CuratedSchemaGen: %s rendered for T=%d, K=%d, profile fields %s, pid "
                 "values %s -> %s", template or SCHEMA_TEMPLATE, max_seq_len,
                 num_samples, profile_fields_json, pid_values_json, path)
    return path


@component
def CuratedSchemaGen(schema: OutputArtifact[standard_artifacts.Schema],
                     max_seq_len: Parameter[int], num_samples: Parameter[int],
                     template: Parameter[str] = "",
                     profile_fields_json: Parameter[str] = "null",
                     pid_values_json: Parameter[str] = "null") -> None:
    """Renders `template` (default: the schema/schema.pbtxt installed with the code) for T,
    K and, when not null, the profile fields and pid values (JSON lists)."""
    render(template, max_seq_len, num_samples, profile_fields_json, pid_values_json,
           schema.uri)
