"""AnomaliesGate stops on anomalies and passes the schema on when there are none."""
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.anomalies_gate.component import (AnomaliesGate, DataAnomaliesError,
                                                 check_and_pass_schema)


def make_artifacts(tmp_path, anomalies_by_split):
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "anomalies")
    anomalies.split_names = artifact_utils.encode_split_names(sorted(anomalies_by_split))
    for split, proto in anomalies_by_split.items():
        folder = artifact_utils.get_split_uri([anomalies], split)
        os.makedirs(folder)
        with open(os.path.join(folder, "SchemaDiff.pb"), "wb") as f:
            f.write(proto.SerializeToString())
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri)
    with open(os.path.join(schema.uri, "schema.pbtxt"), "w") as f:
        f.write('feature { name: "label" type: INT }\n')
    validated = standard_artifacts.Schema()
    validated.uri = str(tmp_path / "validated")
    return anomalies, schema, validated


def test_no_anomalies_passes_the_schema_on(tmp_path):
    artifacts = make_artifacts(tmp_path, {"train": anomalies_pb2.Anomalies(),
                                          "eval": anomalies_pb2.Anomalies()})
    check_and_pass_schema(*artifacts)
    with open(os.path.join(artifacts[2].uri, "schema.pbtxt")) as f:
        assert 'name: "label"' in f.read()


def test_anomalies_stop_the_run_and_are_listed(tmp_path, capsys):
    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["label"].short_description = "Out-of-range values"
    bad.anomaly_info["label"].description = "Unexpectedly large value: 2."
    bad.anomaly_info["pid"].short_description = "Unexpected string values"
    artifacts = make_artifacts(tmp_path, {"train": anomalies_pb2.Anomalies(), "eval": bad})
    with pytest.raises(DataAnomaliesError, match="found 2 anomalies") as error:
        check_and_pass_schema(*artifacts)
    assert "eval: feature 'label': Out-of-range values (Unexpectedly large value: 2.)" in str(
        error.value)
    assert "feature 'pid'" in capsys.readouterr().out
    assert not os.path.exists(artifacts[2].uri)
    assert "--pid-values" in str(error.value) and "--profile-fields" not in str(error.value)


def test_profile_anomalies_name_the_flag_that_fixes_them(tmp_path):
    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["profile_gender"].short_description = "New column"
    bad.anomaly_info["profile_cms_segid"].short_description = "Column dropped"
    artifacts = make_artifacts(tmp_path, {"train": bad, "eval": anomalies_pb2.Anomalies()})
    with pytest.raises(DataAnomaliesError) as error:
        check_and_pass_schema(*artifacts)
    fix = str(error.value).split("To fix: ", 1)[1]
    assert "--profile-fields" in fix and "profile_cms_segid, profile_gender" in fix
    assert "--pid-values" not in fix


def test_component_wires_schema_through():
    from tfx import types
    gate = AnomaliesGate(anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
                         schema=types.Channel(type=standard_artifacts.Schema))
    assert gate.outputs["validated_schema"].type == standard_artifacts.Schema
