"""CuratedSchemaGen renders the template for the run's T, K, profile fields and pid values."""
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components.anomalies_gate import component as anomalies_gate
from components.curated_schema_gen.component import (SCHEMA_FILE, CuratedSchemaGen, decode_list,
                                                    encode_list, render)
from components.curated_schema_gen import schema as schema_util


def _read(path):
    return io_utils.parse_pbtxt_file(path, schema_pb2.Schema())


def test_t_and_k_bound_every_history_and_sample_feature(tmp_path):
    schema = _read(render("", 37, 4, "null", "null", str(tmp_path)))
    template = schema_util.load_schema()
    seq = [f for f in schema.feature if f.name.endswith("_seq")]
    samples = [f for f in schema.feature if f.name.endswith("_samples")]
    assert seq and samples
    assert {f.value_count.max for f in seq} == {37}
    assert {f.value_count.max for f in samples} == {4}
    # Nothing else changes: same features, same pid domain and profile fields as the template.
    assert [f.name for f in schema.feature] == [f.name for f in template.feature]
    pid = lambda s: [f for f in s.feature if f.name == "pid"][0].string_domain.value  # noqa: E731
    assert list(pid(schema)) == list(pid(template)) and len(pid(template)) == 2


def test_profile_fields_and_pid_values_replace_the_templates(tmp_path):
    schema = _read(render("", 100, 5, encode_list(["age", "city"]), encode_list([]),
                          str(tmp_path)))
    profiles = [f.name for f in schema.feature if f.name.startswith("profile_")]
    assert profiles == ["profile_age", "profile_city"]
    pid = [f for f in schema.feature if f.name == "pid"][0]
    assert not pid.HasField("string_domain")            # [] = any pid


def test_a_named_template_is_rendered_not_copied(tmp_path):
    template = schema_util.render_schema(20, 2, str(tmp_path / "mine" / "schema.pbtxt"))
    schema = _read(render(template, 30, 3, "null", "null", str(tmp_path / "out")))
    assert {f.value_count.max for f in schema.feature if f.name.endswith("_seq")} == {30}


def test_list_parameters_round_trip_and_bad_ones_are_refused():
    assert decode_list(encode_list(None), "x") is None
    assert decode_list(encode_list([]), "x") == []
    assert decode_list(encode_list(["a", "b"]), "x") == ["a", "b"]
    with pytest.raises(ValueError, match="JSON list of strings"):
        decode_list('{"a": 1}', "profile_fields_json")


def test_the_output_is_where_the_anomalies_gate_reads_it():
    assert SCHEMA_FILE == anomalies_gate.SCHEMA_FILE
    node = CuratedSchemaGen(max_seq_len=100, num_samples=5)
    assert set(node.outputs) == {"schema"}
