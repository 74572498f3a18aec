"""Tests of models/preprocessing.py with tf.Transform's Beam implementation.

Hand-made raw examples (the ExampleGen's format, models/raw_features.py) go through
tft_beam.AnalyzeAndTransformDataset; a second dataset through tft_beam.TransformDataset with
the first's transform_fn; the written transform graph is then applied to serialized
tf.Examples without a label, as the exported model does at serving time. Expected values
are worked out by hand in the comments.
"""
import os
import pickle

import legacy_keras  # noqa: F401
import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from models import features as F
from models import preprocessing as P
from models.raw_features import TIMESTAMP, profile_feature, raw_feature_spec

PROFILE_FIELDS = ("age_level", "pvalue_level")
AGE, PVALUE = profile_feature("age_level"), profile_feature("pvalue_level")
PID_A, PID_B = "430548_1007", "430539_1007"
T, K, OOV = 3, 2, 2
SMALL = {"max_seq_len": T, "num_samples": K, "num_oov_buckets": OOV}

# Events by name: (item_id, cate_id, brand_id). 'cat_only' is category-level behaviour
# (no item id, no brand id); 'x_old' only ever appears where it is cut off (beyond the last
# T events, or the 3rd sample with K = 2), so it must not enter the vocabularies.
CATALOG = {
    "a": ("a", "c1", "B1"), "b": ("b", "c1", ""), "h": ("h", "c2", "B2"),
    "c": ("c", "c2", "B2"), "s": ("s", "c3", "B1"), "x_old": ("x_old", "c9", "B9"),
    "cat_only": ("", "c2", ""), "new": ("new", "c_new", "B_new"),
}


def raw_row(user, item, *, age="3", pvalue="", pid=PID_A, price=10.0, label=0,
            click_full_len=None, histories=None, samples=None, merged=None):
    """A raw example as the ExampleGen writes it (instance dict of the raw feature spec).

    histories / samples: {feedback type: [event names]} oldest first. pvalue=None gives an
    empty list (the feature present with no value), price=None an absent price. merged: the
    MERGED_EVENTS codes; by default every history's events, the types one after the other.
    """
    histories, samples = histories or {}, samples or {}
    item_id, cate_id, brand_id = CATALOG[item]
    row = {
        F.USER_ID: [user.encode()], F.ITEM_ID: [item_id.encode()],
        F.CATE_ID: [cate_id.encode()], F.BRAND_ID: [brand_id.encode()],
        F.PID: [pid.encode()], AGE: [age.encode()],
        PVALUE: [] if pvalue is None else [pvalue.encode()],
        F.PRICE: [] if price is None else [float(price)],
        TIMESTAMP: [1494000000], F.LABEL: [label],
    }
    for f in F.FEEDBACK_TYPES:
        events = histories.get(f, [])
        row[F.full_length(f)] = [len(events)]
        for i, part in enumerate(F.ITEM_PARTS):
            row[F.seq(f, part)] = [CATALOG[e][i].encode() for e in events]
            row[F.sample(f, part)] = [CATALOG[e][i].encode() for e in samples.get(f, [])]
    if merged is None:
        merged = [F.merged_event_code(t, len(histories.get(f, [])) - 1 - j)
                  for t, f in enumerate(F.FEEDBACK_TYPES)
                  for j in range(len(histories.get(f, [])))]
    row[F.MERGED_EVENTS] = merged
    if click_full_len is not None:
        row[F.full_length("click")] = [click_full_len]
    return row


# Analysis data. Counted occurrences (target + kept history events + first K samples):
#   item:  a 6, b 4, h 3 (histories only), c 2, s 1 (samples only)  -> a1 b2 h3 c4 s5
#   cate:  c1 10, c2 6, c3 1                                         -> c1:1 c2:2 c3:3
#   brand: B1 7, B2 5 ('' never counted)                             -> B1:1 B2:2
#   user:  u1 3, u2 2, u3 1; age: '3' 4, '5' 1; pvalue: '1' 2, '2' 1; pid: A 4, B 2
ANALYSIS_ROWS = [
    raw_row("u1", "a", pvalue="1", price=10, label=1,
            histories={"click": ["x_old", "a", "b", "h"]},
            samples={"click": ["a", "b", "x_old"]}),
    raw_row("u1", "a", pvalue="1", price=100, histories={"unclick": ["h", "cat_only"]},
            samples={"like": ["s"]}),
    raw_row("u2", "b", age="5", pvalue="2", pid=PID_B, price=None,
            histories={"dislike": ["h", "a"]}),
    raw_row("u2", "c", age="", price=1000, label=1),
    raw_row("u1", "a", pid=PID_B, price=10, histories={"like": ["c"]}),
    raw_row("u3", "b", price=0, label=1),
]


# Transform-time data (TransformDataset with the analysis' transform_fn). Every row lacks a
# price and has an empty pvalue list, so both columns arrive as SparseTensors of dense shape
# [B, 0] (the SPEC §2 pitfall) however Beam batches the rows.
HISTORY_LENGTHS = [0, 1, 4, 5, 19, 20, 49, 50, 99, 100, 150]
EXPECTED_BUCKETS = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def transform_time_rows():
    rows = []
    for i, full_len in enumerate(HISTORY_LENGTHS):
        item, user, pid, histories = "a", "u1", PID_A, {}
        if i == 0:
            item = "h"  # seen only in histories during analysis: must get h's index, 3
        elif i == 1:
            item = "x_old"  # only in the cut-off part during analysis: OOV
        elif i == 2:
            item, user, pid = "new", "u_new", ""  # unseen item and user: OOV; pid '' -> 0
        elif i == 3:
            histories = {"click": ["new", "a", "b", "h", "c", "s"]}  # 6 > T: keeps h, c, s
        rows.append(raw_row(user, item, pvalue=None, pid=pid, price=None,
                            click_full_len=full_len, histories=histories))
    return rows


# ----------------------------------------------------------------------------------------
# Running tf.Transform
# ----------------------------------------------------------------------------------------
ROW_ID = "row_id"


def with_row_ids(rows):
    """Copies of `rows` with their position as `timestamp` (which the transform drops)."""
    return [dict(row, **{TIMESTAMP: [i]}) for i, row in enumerate(rows)]


def _dump(rows, path):
    with open(path, "wb") as f:
        pickle.dump(rows, f)


def _load(path):
    with open(path, "rb") as f:
        return sorted(pickle.load(f), key=lambda row: int(row[ROW_ID]))


def _preprocessing_fn(custom_config):
    def fn(inputs):
        if custom_config is None:  # how TFX calls a preprocessing_fn without custom_config
            outputs = P.preprocessing_fn(inputs)
        else:
            outputs = P.preprocessing_fn(inputs, custom_config)
        # Test-only output: Beam does not keep the order of rows; the row id restores it.
        outputs[ROW_ID] = P.dense_scalar(inputs[TIMESTAMP], 0)
        return outputs
    return fn


def run_transforms(work_dir, runs):
    """Runs tf.Transform jobs in one Beam pipeline (pipeline start-up is paid once).

    runs: {name: (custom_config, analysis rows, other rows or None)}: AnalyzeAndTransform-
    Dataset on the analysis rows, TransformDataset with its transform_fn on the other rows.
    Returns {name: (transformed analysis rows, transformed other rows or None,
    TFTransformOutput of the written transform_fn)}, rows in input order.
    """
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(
        raw_feature_spec(PROFILE_FIELDS))
    paths = {name: {kind: os.path.join(work_dir, name, kind)
                    for kind in ("analysis.pkl", "other.pkl", "transform_output", "tmp")}
             for name in runs}
    with beam.Pipeline() as pipeline:
        for name, (custom_config, analysis_rows, other_rows) in runs.items():
            path = paths[name]
            with tft_beam.Context(temp_dir=path["tmp"]):
                analysis = pipeline | "Analysis[%s]" % name >> beam.Create(
                    with_row_ids(analysis_rows))
                (transformed, _), transform_fn = (
                    (analysis, metadata)
                    | "AnalyzeAndTransform[%s]" % name >> tft_beam.AnalyzeAndTransformDataset(
                        _preprocessing_fn(custom_config)))
                _ = transform_fn | "WriteTransformFn[%s]" % name >> tft_beam.WriteTransformFn(
                    path["transform_output"])
                _ = (transformed | "ListAnalysis[%s]" % name >> beam.combiners.ToList()
                     | "DumpAnalysis[%s]" % name >> beam.Map(_dump, path["analysis.pkl"]))
                if other_rows is not None:
                    other = pipeline | "Other[%s]" % name >> beam.Create(with_row_ids(other_rows))
                    other_transformed, _ = (((other, metadata), transform_fn)
                                            | "Transform[%s]" % name >> tft_beam.TransformDataset())
                    _ = (other_transformed | "ListOther[%s]" % name >> beam.combiners.ToList()
                         | "DumpOther[%s]" % name >> beam.Map(_dump, path["other.pkl"]))
    return {name: (_load(paths[name]["analysis.pkl"]),
                   _load(paths[name]["other.pkl"]) if runs[name][2] is not None else None,
                   tft.TFTransformOutput(paths[name]["transform_output"]))
            for name in runs}


@pytest.fixture(scope="module")
def transform_runs(tmp_path_factory):
    """'small': T=3, K=2, 2 OOV buckets, analysis of ANALYSIS_ROWS and transform of
    transform_time_rows(); 'default': default settings (T=100, K=5, 10 OOV buckets) through
    the preprocessing_fn(inputs) signature, analysis of ANALYSIS_ROWS."""
    return run_transforms(str(tmp_path_factory.mktemp("transform")), {
        "small": (SMALL, ANALYSIS_ROWS, transform_time_rows()),
        "default": (None, ANALYSIS_ROWS, None),
    })


@pytest.fixture(scope="module")
def small_run(transform_runs):
    return transform_runs["small"]


@pytest.fixture(scope="module")
def default_run(transform_runs):
    analysed, _, output = transform_runs["default"]
    return analysed, output


def column(rows, name):
    return np.stack([np.asarray(row[name]) for row in rows])


# ----------------------------------------------------------------------------------------
# Analysis + transform (T=3, K=2)
# ----------------------------------------------------------------------------------------
def test_output_names_shapes_and_dtypes(small_run):
    _, _, output = small_run
    user_fields = [AGE, PVALUE]
    expected = {}
    for name in F.input_names(user_fields, samples=True, label=True):
        if name == F.PRICE:
            expected[name] = tf.io.FixedLenFeature([], tf.float32)
        elif name.endswith("_seq"):
            expected[name] = tf.io.FixedLenFeature([T], tf.int64)
        elif name.endswith("_samples"):
            expected[name] = tf.io.FixedLenFeature([K], tf.int64)
        else:
            expected[name] = tf.io.FixedLenFeature([], tf.int64)
    expected[P.HISTORY_BUCKET] = tf.io.FixedLenFeature([], tf.int64)
    expected[ROW_ID] = tf.io.FixedLenFeature([], tf.int64)
    assert output.transformed_feature_spec() == expected


def test_vocabularies_are_shared_and_ordered_by_frequency(small_run):
    _, _, output = small_run
    assert output.vocabulary_by_name("item_id") == [b"a", b"b", b"h", b"c", b"s"]
    assert output.vocabulary_by_name("cate_id") == [b"c1", b"c2", b"c3"]
    assert output.vocabulary_by_name("brand_id") == [b"B1", b"B2"]
    assert output.vocabulary_by_name("user_id") == [b"u1", b"u2", b"u3"]
    assert output.vocabulary_by_name("pid") == [PID_A.encode(), PID_B.encode()]
    assert output.vocabulary_by_name(AGE) == [b"3", b"5"]
    assert output.vocabulary_by_name(PVALUE) == [b"1", b"2"]


def test_scalar_ids_and_label(small_run):
    rows, _, _ = small_run
    assert column(rows, F.ITEM_ID).tolist() == [1, 1, 2, 4, 1, 2]
    assert column(rows, F.CATE_ID).tolist() == [1, 1, 1, 2, 1, 1]
    assert column(rows, F.BRAND_ID).tolist() == [1, 1, 0, 2, 1, 0]  # b has no brand
    assert column(rows, F.USER_ID).tolist() == [1, 1, 2, 2, 1, 3]
    assert column(rows, AGE).tolist() == [1, 1, 2, 0, 1, 1]
    assert column(rows, PVALUE).tolist() == [1, 1, 2, 0, 0, 0]
    assert column(rows, F.PID).tolist() == [1, 1, 2, 1, 2, 1]
    assert column(rows, F.LABEL).tolist() == [1, 0, 0, 1, 0, 1]
    assert column(rows, P.HISTORY_BUCKET).tolist() == [1, 0, 0, 0, 0, 0]  # 4 clicks: bucket 1


# (row, feedback) -> (item, cate, brand) index lists and length; every other one is empty.
EXPECTED_SEQUENCES = {
    # click history x_old, a, b, h: the most recent T=3 are kept, oldest first.
    (0, "click"): ([1, 2, 3], [1, 1, 2], [1, 0, 2], 3),
    # h, then a category-level event (no item, no brand): '' -> 0, padding after.
    (1, "unclick"): ([3, 0, 0], [2, 2, 0], [2, 0, 0], 2),
    (2, "dislike"): ([3, 1, 0], [2, 1, 0], [2, 1, 0], 2),
    (4, "like"): ([4, 0, 0], [2, 0, 0], [2, 0, 0], 1),
}
EXPECTED_SAMPLES = {
    (0, "click"): ([1, 2], [1, 1], [1, 0], 2),  # a, b, x_old: the first K=2
    (1, "like"): ([5, 0], [3, 0], [1, 0], 1),  # s: seen only as a sample
}


@pytest.mark.parametrize("expected,names,width", [
    (EXPECTED_SEQUENCES, (F.seq, F.length), T),
    (EXPECTED_SAMPLES, (F.sample, F.sample_count), K),
], ids=["sequences", "samples"])
def test_sequences_and_samples(small_run, expected, names, width):
    rows, _, _ = small_run
    list_name, count_name = names
    for i, row in enumerate(rows):
        for f in F.FEEDBACK_TYPES:
            items, cates, brands, count = expected.get(
                (i, f), ([0] * width, [0] * width, [0] * width, 0))
            got = [np.asarray(row[list_name(f, part)]).tolist() for part in F.ITEM_PARTS]
            assert got == [items, cates, brands], (i, f)
            assert int(row[count_name(f)]) == count, (i, f)


def test_price_is_z_score_of_log1p_and_missing_is_zero(small_run):
    rows, _, _ = small_run
    present = np.log1p(np.array([10, 100, 1000, 10, 0], np.float64))  # row 2 has no price
    mean, std = present.mean(), present.std()  # TFT: biased variance
    z = (present - mean) / std
    expected = [z[0], z[1], 0.0, z[2], z[3], z[4]]
    # (float32 is checked by the feature spec test; instance dicts hold Python floats.)
    np.testing.assert_allclose(column(rows, F.PRICE), expected, rtol=1e-5, atol=1e-6)


def test_unseen_values_at_transform_time(small_run):
    _, rows, _ = small_run
    def oov(vocabulary_entries):  # the OOV buckets follow index 0 and the vocabulary
        return set(range(1 + vocabulary_entries, 1 + vocabulary_entries + OOV))

    item = column(rows, F.ITEM_ID)
    assert item[0] == 3  # 'h' only appeared in histories: the same index as there
    assert item[1] in oov(5) and item[2] in oov(5)  # x_old {6, 7}
    assert column(rows, F.CATE_ID)[1] in oov(3) and column(rows, F.BRAND_ID)[1] in oov(2)
    assert column(rows, F.USER_ID)[2] in oov(3)
    assert column(rows, F.PID).tolist() == [1, 1, 0] + [1] * 8  # '' -> 0
    # Six clicks with T = 3: h, c, s (the most recent), oldest first.
    row = rows[3]
    assert np.asarray(row[F.seq("click", "item")]).tolist() == [3, 4, 5]
    assert np.asarray(row[F.seq("click", "cate")]).tolist() == [2, 2, 3]
    assert np.asarray(row[F.seq("click", "brand")]).tolist() == [2, 2, 1]
    assert int(row[F.length("click")]) == 3


def test_columns_empty_in_every_row_keep_all_rows(small_run):
    """SPEC §2 pitfall: price absent and pvalue empty in every row ([B, 0] SparseTensors)."""
    _, rows, _ = small_run
    assert len(rows) == len(HISTORY_LENGTHS)
    assert column(rows, F.PRICE).tolist() == [0.0] * len(HISTORY_LENGTHS)
    assert column(rows, PVALUE).tolist() == [0] * len(HISTORY_LENGTHS)
    assert column(rows, AGE).tolist() == [1] * len(HISTORY_LENGTHS)


def test_history_bucket_boundaries(small_run):
    _, rows, _ = small_run
    assert P.HISTORY_BUCKET_BOUNDARIES == (1, 5, 20, 50, 100)
    assert column(rows, P.HISTORY_BUCKET).tolist() == EXPECTED_BUCKETS


def test_vocabulary_sizes_fit_model_config(small_run):
    from models.config import ModelConfig

    _, _, output = small_run
    sizes = P.vocabulary_sizes(output, SMALL)
    # 1 (index 0) + vocabulary entries + 2 OOV buckets.
    assert sizes == {"item_vocab_size": 8, "cate_vocab_size": 6, "brand_vocab_size": 5,
                     "user_vocab_size": 6, "pid_vocab_size": 5,
                     "user_fields": {AGE: 5, PVALUE: 5}}
    assert P.vocabulary_sizes(output) == sizes  # read from the artifact, no config needed
    config = ModelConfig(**sizes)
    # The model looks user fields up by these names in the transformed features.
    assert set(config.user_fields) <= set(output.transformed_feature_spec())
    # Every id output (targets, sequences, samples) carries its range in the schema.
    domains = output.transformed_domains()
    assert (domains[F.seq("like", "item")].min, domains[F.seq("like", "item")].max) == (0, 7)
    assert domains[F.sample("click", "brand")].max == 4
    with pytest.raises(ValueError, match="num_oov_buckets differs"):
        P.vocabulary_sizes(output, dict(SMALL, num_oov_buckets=3))


def test_transform_config():
    assert P.TransformConfig.from_custom_config(None) == P.TransformConfig(100, 5, 10, 1)
    config = P.TransformConfig.from_custom_config({"max_seq_len": 7, "trainer_steps": 3})
    assert config.max_seq_len == 7 and config.num_samples == 5  # unknown keys ignored
    with pytest.raises(ValueError, match="max_seq_len=0"):
        P.TransformConfig.from_custom_config({"max_seq_len": 0})
    with pytest.raises(ValueError, match="num_oov_buckets=True"):
        P.TransformConfig.from_custom_config({"num_oov_buckets": True})


# ----------------------------------------------------------------------------------------
# Serving: the written transform graph on serialized tf.Examples without a label
# ----------------------------------------------------------------------------------------
def to_serialized_example(row, drop=()):
    """A raw row as the ExampleGen serializes it: an absent price is left out, an empty
    history is an empty list; features in `drop` are left out (as a request may)."""
    example = tf.train.Example()
    spec = raw_feature_spec(PROFILE_FIELDS)
    for name, values in row.items():
        if name in drop or (name == F.PRICE and not values):
            continue
        feature = example.features.feature[name]
        kind = {tf.string: feature.bytes_list, tf.int64: feature.int64_list,
                tf.float32: feature.float_list}[spec[name].dtype]
        kind.SetInParent()
        kind.value.extend(values)
    return example.SerializeToString()


def serve(output, serialized):
    spec = raw_feature_spec(PROFILE_FIELDS, include_label=False)
    parsed = tf.io.parse_example(tf.constant(serialized), spec)
    return {name: value.numpy() for name, value in
            output.transform_features_layer()(parsed).items()}


def test_serving_cuts_a_long_history_without_a_label(default_run):
    _, output = default_run
    vocabulary = output.vocabulary_by_name("item_id")
    known = ["a", "b", "h", "c", "s"]
    # 150 clicks: 50 unseen items first, then 100 known ones; T = 100 keeps the last 100.
    history = ["new"] * 50 + [known[i % 5] for i in range(100)]
    long_row = raw_row("u1", "a", histories={"click": history})
    short_row = raw_row("u9", "b", price=None, histories={"click": ["h"]})
    requests = [to_serialized_example(r, drop=(F.LABEL,) + tuple(F.sample_feature_names()))
                for r in (long_row, short_row)]
    out = serve(output, requests)
    assert F.LABEL not in out
    assert set(F.input_names([AGE, PVALUE])) | {P.HISTORY_BUCKET} <= set(out)
    click_items = out[F.seq("click", "item")]
    assert click_items.shape == (2, 100) and click_items.dtype == np.int64
    assert click_items[0].tolist() == [vocabulary.index(e.encode()) + 1 for e in history[50:]]
    assert click_items[1].tolist() == [vocabulary.index(b"h") + 1] + [0] * 99
    assert out[F.length("click")].tolist() == [100, 1]
    # The time-ordered references are cut to the most recent T too (ranks 99 .. 0).
    assert out[F.MERGED_EVENTS][0].tolist() == [F.merged_event_code(0, r)
                                                for r in range(99, -1, -1)]
    assert out[F.MERGED_EVENTS][1].tolist() == [F.merged_event_code(0, 0)] + [0] * 99
    assert out[P.HISTORY_BUCKET].tolist() == [5, 1]  # click_full_len 150 and 1
    assert out[F.sample("click", "item")].shape == (2, 5)
    assert out[F.sample_count("click")].tolist() == [0, 0]
    assert out[F.USER_ID][1] > len(output.vocabulary_by_name("user_id"))  # OOV user
    assert out[F.PRICE][1] == 0.0 and out[F.PRICE].dtype == np.float32


def test_serving_graph_matches_beam_transform(default_run):
    rows, output = default_run
    requests = [to_serialized_example(dict(r, **{TIMESTAMP: [i]}), drop=(F.LABEL,))
                for i, r in enumerate(ANALYSIS_ROWS)]
    served = serve(output, requests)
    assert set(served) == set(rows[0]) - {F.LABEL}
    for name, values in served.items():
        np.testing.assert_allclose(values, column(rows, name), rtol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------------------
# The weighted vocabulary (a speed change) against tf.Transform's unweighted one
# ----------------------------------------------------------------------------------------
def test_weighted_vocabulary_equals_unweighted_with_ties_and_threshold(tmp_path):
    """_vocabulary gives every value weight 1 so the graph pre-reduces each batch; the file
    must be exactly what an unweighted tft.vocabulary writes: same entries, same order for
    tied counts (many here: 40 values drawn from 12 with repeats), same frequency cut."""
    rng = np.random.default_rng(7)
    tokens = [b"t%02d" % i for i in range(12)] + [b""]  # '' is never counted
    rows = [{"x": list(rng.choice(tokens, size=int(rng.integers(0, 6))))} for _ in range(40)]
    spec = {"x": tf.io.VarLenFeature(tf.string)}
    for threshold in (1, 3):
        config = P.TransformConfig.from_custom_config({"vocab_frequency_threshold": threshold})

        def fn(inputs, config=config, threshold=threshold):
            values = inputs["x"].values
            P._vocabulary(values, "weighted", config)
            tft.vocabulary(P._non_empty(values), vocab_filename="unweighted",
                           frequency_threshold=threshold, name="unweighted")
            return {"n": tf.zeros(inputs["x"].dense_shape[:1], tf.int64)}  # one per row

        out_dir = str(tmp_path / ("t%d" % threshold))
        with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
            data = pipeline | "Rows%d" % threshold >> beam.Create(rows)
            transform_fn = ((data, dataset_metadata.DatasetMetadata.from_feature_spec(spec))
                            | tft_beam.AnalyzeDataset(fn))
            _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
        output = tft.TFTransformOutput(out_dir)
        weighted, unweighted = (output.vocabulary_by_name(n) for n in ("weighted", "unweighted"))
        counts = {}
        for row in rows:
            for t in row["x"]:
                if t:
                    counts[t] = counts.get(t, 0) + 1
        assert sorted(weighted) == sorted(t for t, c in counts.items() if c >= threshold)
        assert len(set(counts.values())) < len(counts)  # ties are present
        assert weighted == unweighted


# ----------------------------------------------------------------------------------------
# The Trainer's own transform (Transform without materialised examples)
# ----------------------------------------------------------------------------------------
def test_trainer_columns_from_raw_examples_equal_beams_transformed_rows(small_run, tmp_path):
    from models import example_order  # the Trainer's in-memory split (models/trainer.py)

    _, transformed, output = small_run
    path = str(tmp_path / "raw.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in with_row_ids(transform_time_rows()):
            writer.write(to_serialized_example(row))
    columns, labels = example_order.in_memory_columns(
        [path], output.transformed_feature_spec(), F.LABEL, batch=2,  # several batches
        transform=output.transform_features_layer(),
        parse_spec=raw_feature_spec(PROFILE_FIELDS))  # what TFX records as the raw metadata
    assert set(columns) | {F.LABEL} == set(transformed[0])
    order = np.argsort(columns[ROW_ID].reshape(-1))
    np.testing.assert_array_equal(labels[order], column(transformed, F.LABEL))
    for name, values in columns.items():
        np.testing.assert_allclose(values[order], column(transformed, name), rtol=1e-6,
                                   err_msg=name)


def test_trainer_stream_of_raw_examples_equals_beams_transformed_rows(small_run, tmp_path):
    # The Trainer's fallback for a split too large for memory: raw examples streamed through
    # TFX's data accessor and the transform graph (models/trainer.py's _dataset).
    import shutil

    from tensorflow_transform.tf_metadata import metadata_io
    from tfx.components.trainer import fn_args_utils
    from tfx.components.util import tfxio_utils
    from tfx.types import standard_artifacts

    from models import trainer

    _, transformed, output = small_run
    # TFX's Transform writes the raw metadata beside the graph; tft_beam's WriteTransformFn
    # of this test does not.
    graph_dir = str(tmp_path / "graph")
    shutil.copytree(output.transform_savedmodel_dir.rsplit("/", 1)[0], graph_dir)
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata.from_feature_spec(raw_feature_spec(PROFILE_FIELDS)),
        os.path.join(graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    graph = tft.TFTransformOutput(graph_dir)
    rows = with_row_ids(transform_time_rows())
    path = str(tmp_path / "raw.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(to_serialized_example(row))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    accessor = fn_args_utils.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None, data_view_decode_fn=None)
    dataset = trainer._dataset([path], accessor, graph, batch_size=len(rows), shuffle=False,
                               seed=0, materialized=False)
    features, labels = next(iter(dataset))
    order = np.argsort(features[ROW_ID].numpy().reshape(-1))
    np.testing.assert_array_equal(labels.numpy().reshape(-1)[order],
                                  column(transformed, F.LABEL))
    assert set(features) | {F.LABEL} == set(transformed[0])
    for name, values in features.items():
        np.testing.assert_allclose(values.numpy()[order], column(transformed, name),
                                   rtol=1e-6, err_msg=name)
