"""Tests of the curated schema (schema/schema.pbtxt) and components/curated_schema_gen/schema.py.

The schema is checked against REAL output of the feedback-history ExampleGen on a tiny
simulated log (no anomalies), and against deliberately broken examples (anomalies naming
exactly the broken features).
"""
import glob
import os

import legacy_keras  # noqa: F401
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx.types import standard_artifacts
from tfx_bsl.coders import example_coder

from components.feedback_example_gen.component import FeedbackLogReport
from components.feedback_example_gen.executor import Executor
from models import features as F
from components.curated_schema_gen import schema as schema_util
from models.raw_features import TAOBAO_PROFILE_FIELDS, raw_feature_spec

T, K = 10, 3


def test_template_parses_and_agrees_with_the_raw_feature_spec():
    schema = schema_util.load_schema()
    assert len(schema.feature) == len({f.name for f in schema.feature})  # no duplicates
    # TensorFlow Transform derives its input spec from the schema; serving parses with
    # raw_feature_spec: they must be the same, or serving sees other tensors than training.
    derived = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert derived == raw_feature_spec(TAOBAO_PROFILE_FIELDS)
    by_name = {f.name: f for f in schema.feature}
    assert by_name[F.LABEL].not_in_environment == ["SERVING"]
    assert by_name[F.LABEL].int_domain.max == 1 and by_name[F.LABEL].int_domain.is_categorical
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert not by_name[F.PRICE].presence.min_fraction  # price may be absent
    assert by_name[F.ITEM_ID].presence.min_fraction == 1.0


def test_profile_fields_are_the_simulators():
    from simulator.generate import PROFILE_FIELDS

    assert TAOBAO_PROFILE_FIELDS == PROFILE_FIELDS


def test_render_sets_history_bounds_and_profile_fields(tmp_path):
    path = schema_util.render_schema(T, K, str(tmp_path / "deep" / "schema.pbtxt"))
    schema = schema_util.load_schema(path)
    bounds = {f.name: (f.value_count.min, f.value_count.max) for f in schema.feature}
    assert bounds[F.seq("click", "item")] == (0, T)
    assert bounds[F.sample("dislike", "brand")] == (0, K)
    assert bounds[F.ITEM_ID] == (1, 1)
    assert sum(name.endswith("_seq") for name in bounds) == 13  # 12 histories + merged
    assert bounds[F.MERGED_EVENTS] == (0, T)
    assert all(bounds[name] == (0, T) for name in bounds if name.endswith("_seq"))
    assert all(bounds[name] == (0, K) for name in bounds if name.endswith("_samples"))
    # The template itself is unchanged.
    template = {f.name: f.value_count.max for f in schema_util.load_schema().feature}
    assert template[F.seq("click", "item")] == 100 and template[F.sample("like", "item")] == 5

    pids = {f.name: list(f.string_domain.value) for f in schema.feature}[F.PID]
    assert sorted(pids) == ["430539_1007", "430548_1007"]

    other = schema_util.render_schema(T, K, str(tmp_path / "other.pbtxt"),
                                      profile_fields=("gender", "city"), pid_values=("", "top"))
    other_schema = schema_util.load_schema(other)
    names = [f.name for f in other_schema.feature]
    assert [n for n in names if n.startswith("profile_")] == ["profile_gender", "profile_city"]
    assert len(names) == len(bounds) - len(TAOBAO_PROFILE_FIELDS) + 2
    other_pid = next(f for f in other_schema.feature if f.name == F.PID)
    assert list(other_pid.string_domain.value) == ["", "top"]
    any_pid = schema_util.load_schema(schema_util.render_schema(
        T, K, str(tmp_path / "any.pbtxt"), pid_values=()))
    assert not next(f for f in any_pid.feature if f.name == F.PID).HasField("string_domain")


def test_render_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="max_seq_len=0"):
        schema_util.render_schema(0, K, str(tmp_path / "s.pbtxt"))
    with pytest.raises(FileNotFoundError, match="schema template"):
        schema_util.load_schema(tmp_path / "missing.pbtxt")


# ----------------------------------------------------------------------------------------
# TFDV on real ExampleGen output
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_examples(tmp_path_factory):
    """Train split of the ExampleGen (T=10, K=3) on a tiny simulated log: file pattern and
    the serialized examples."""
    from simulator.config import SimConfig
    from simulator.dataset import write_dataset

    logs = str(tmp_path_factory.mktemp("logs"))
    # No browsing before the first impression day, so that first impressions have empty
    # histories (the bounds the test exercises: 0 and T values).
    write_dataset(SimConfig(seed=5, num_users=40, num_items=60, num_categories=8,
                            num_brands=15, prior_days=0), logs, progress=lambda message: None)
    out = str(tmp_path_factory.mktemp("examplegen"))
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(out, "examples")
    report = FeedbackLogReport()
    report.uri = os.path.join(out, "report")
    Executor().Do({}, {"examples": [examples], "log_report": [report]}, dict(
        input_base=logs, layout="auto", max_seq_len=T, num_samples=K, eval_days=1,
        eval_start_timestamp=0, timezone_offset_hours=8, seed=0, max_bad_row_fraction=0.0))
    pattern = os.path.join(examples.uri, "Split-train", "*.gz")
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(glob.glob(pattern),
                                                             compression_type="GZIP")]
    return pattern, serialized


@pytest.fixture(scope="module")
def rendered_schema(tmp_path_factory):
    path = schema_util.render_schema(T, K, str(tmp_path_factory.mktemp("schema") / "s.pbtxt"))
    return schema_util.load_schema(path)


def statistics_of(serialized):
    """TFDV statistics of serialized tf.Examples, computed in memory without Beam (fast).

    Decoded into Arrow with tfx_bsl's tf.Example decoder, as TFDV's Beam path does.
    """
    record_batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(serialized)
    return stats_impl.generate_statistics_in_memory(record_batch)


def anomalous_features(statistics, schema, environment=None):
    anomalies = tfdv.validate_statistics(statistics, schema, environment=environment)
    return {name: [reason.type for reason in info.reason]
            for name, info in anomalies.anomaly_info.items()}


def test_real_examplegen_output_has_no_anomalies(real_examples, rendered_schema):
    pattern, serialized = real_examples
    statistics = tfdv.generate_statistics_from_tfrecord(pattern)
    # The data must exercise the bounds: some histories are cut at T, some have no samples.
    click_items = next(f for f in statistics.datasets[0].features
                       if f.path.step == [F.seq("click", "item")])
    assert click_items.string_stats.common_stats.max_num_values == T
    assert click_items.string_stats.common_stats.min_num_values == 0
    assert anomalous_features(statistics, rendered_schema) == {}
    assert anomalous_features(statistics, rendered_schema, "TRAINING") == {}
    # The in-memory statistics used below see the same data the same way.
    assert anomalous_features(statistics_of(serialized), rendered_schema) == {}


def _modified(serialized, change):
    example = tf.train.Example.FromString(serialized)
    change(example.features.feature)
    return example.SerializeToString()


def test_broken_examples_are_anomalies_naming_the_features(real_examples, rendered_schema):
    _, serialized = real_examples
    good = serialized[:20]

    def label_two(feature):
        feature[F.LABEL].int64_list.value[:] = [2]

    def history_longer_than_t(feature):
        feature[F.seq("click", "item")].bytes_list.value[:] = [b"i%d" % i for i in range(T + 1)]

    def no_item_id(feature):
        del feature[F.ITEM_ID]

    broken = [_modified(good[0], label_two), _modified(good[1], history_longer_than_t),
              _modified(good[2], no_item_id)] + good[3:]
    anomalies = anomalous_features(statistics_of(broken), rendered_schema)
    assert set(anomalies) == {F.LABEL, F.seq("click", "item"), F.ITEM_ID}
    kinds = anomalies_pb2.AnomalyInfo.Type
    assert kinds.Value("INT_TYPE_BIG_INT") in anomalies[F.LABEL]
    assert kinds.Value("FEATURE_TYPE_HIGH_NUMBER_VALUES") in anomalies[F.seq("click", "item")]
    assert kinds.Value("FEATURE_TYPE_LOW_FRACTION_PRESENT") in anomalies[F.ITEM_ID]


def test_serving_environment_needs_no_label(real_examples, rendered_schema):
    _, serialized = real_examples

    def no_label(feature):
        del feature[F.LABEL]

    requests = statistics_of([_modified(s, no_label) for s in serialized[:20]])
    assert anomalous_features(requests, rendered_schema, "SERVING") == {}
    assert set(anomalous_features(requests, rendered_schema, "TRAINING")) == {F.LABEL}


def test_a_pid_outside_the_domain_is_an_anomaly(real_examples, rendered_schema):
    _, serialized = real_examples

    def empty_pid(feature):
        feature[F.PID].bytes_list.value[:] = [b""]

    broken = [_modified(serialized[0], empty_pid)] + serialized[1:20]
    assert set(anomalous_features(statistics_of(broken), rendered_schema)) == {F.PID}
