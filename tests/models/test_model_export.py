"""Export with tf.saved_model.save: frozen memories, identical predictions after reload."""
import collections

import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models import registry
from models.config import ModelConfig
from models.export import export_saved_model, serving_module
from models.model_factory import build_compiled_model
from models.testing_utils import as_tensors, random_features, tiny_config


def serving_inputs(config, features):
    names = F.input_names(config.user_fields, samples=False)
    return {name: tf.constant(features[name]) for name in names}


@pytest.mark.parametrize("model_name,extra", [(k, {}) for k in registry.kinds()]
                         + [("dfn", {"umn_plugin": True})])
def test_export_reload_gives_identical_predictions(tmp_path, model_name, extra):
    config = tiny_config(model=model_name, **extra)
    model = build_compiled_model(config)
    x = random_features(config, 16, seed=1)
    y = x.pop(F.LABEL)
    model.build_for_training(as_tensors(x))
    model.train_step((as_tensors(x), tf.constant(y)))  # memories / Dice stats move once
    expected = model.predict(x, verbose=0)
    memories = {k: v.numpy() for k, v in model.memory_variables().items()}

    path = export_saved_model(model, str(tmp_path / "model"))
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == set(
        F.input_names(config.user_fields, samples=False))  # no samples, no label
    inputs = serving_inputs(config, x)
    for _ in range(2):  # serving twice: the memories are frozen
        got = signature(**inputs)["probability"].numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.serve_transformed(inputs)["probability"].numpy(), expected,
                               rtol=0, atol=1e-6)
    saved = {v.name: v.numpy() for v in loaded.model_variables}
    for name, value in memories.items():
        matches = [k for k in saved if k.endswith("memory_%s/memory:0" % name)]
        assert len(matches) == 1
        np.testing.assert_array_equal(saved[matches[0]], value)
    assert ModelConfig.from_json(loaded.config_json.numpy().decode()) == config
    # Exported variables: the model's, without optimizer slots or metric accumulators.
    assert len(loaded.model_variables) == len(model.trainable_weights) + \
        len([w for w in model.non_trainable_weights if "total" not in w.name and "count" not in w.name])


def test_custom_signature_wrapping_the_transformed_feature_function(tmp_path):
    """The pipeline's pattern: a signature that prepares features, then serve_transformed."""
    config = tiny_config()
    model = build_compiled_model(config)
    x = random_features(config, 4, seed=2)
    model(as_tensors(x))
    module = serving_module(model)
    module.offset = tf.Variable(1, dtype=tf.int64)  # stands in for a Transform layer's state
    specs = F.input_specs(config.user_fields, samples=False)
    raw_specs = dict(specs)

    @tf.function(input_signature=[raw_specs])
    def serve_raw(raw):
        transformed = dict(raw)
        transformed[F.PID] = raw[F.PID] - module.offset  # the "transform"
        return module.serve_transformed(transformed)

    path = export_saved_model(model, str(tmp_path / "m"), module=module,
                              signatures={"serving_default": serve_raw,
                                          "transformed": module.serve_transformed},
                              extra_objects={"note": tf.Variable("raw ids")})
    loaded = tf.saved_model.load(path)
    raw = serving_inputs(config, x)
    shifted = dict(raw, **{F.PID: raw[F.PID] + 1})
    np.testing.assert_allclose(loaded.signatures["serving_default"](**shifted)["probability"].numpy(),
                               model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(loaded.signatures["transformed"](**raw)["probability"].numpy(),
                               model.predict(x, verbose=0), atol=1e-6)
    assert loaded.note.numpy() == b"raw ids"


def test_unbuilt_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="build the model"):
        export_saved_model(build_compiled_model(tiny_config()), str(tmp_path / "x"))


def test_warmup_requests_read_back_as_predict_logs(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    from models.export import WARMUP_FILE, write_warmup_requests
    examples = [b"first", b"second", b"third"]
    path = write_warmup_requests(str(tmp_path), examples, batch_sizes=(1, 5))
    assert path == str(tmp_path / WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    batches = [list(tf.make_ndarray(log.predict_log.request.inputs["examples"])) for log in logs]
    assert batches == [[b"first"], [b"first", b"second", b"third", b"first", b"second"]]
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {
        "serving_default"}
    with pytest.raises(ValueError, match="at least one"):
        write_warmup_requests(str(tmp_path), [])


def _example(num_values):
    feature = {"user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u1"])),
               "click_item_seq": tf.train.Feature(bytes_list=tf.train.BytesList(
                   value=[b"item%d" % i for i in range(num_values)]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_example_framing_accepts_serialized_examples_of_every_length_class():
    from models.export import assert_example_framing
    # Lengths whose varint takes 1, 2 and 3 bytes, an empty Example, an empty string.
    serialized = [_example(0), _example(20), _example(3000), tf.train.Example(
        features=tf.train.Features()).SerializeToString(), b""]
    lengths = [len(s) for s in serialized]
    assert min(lengths[:3]) < 128 and 128 <= lengths[1] < 16384 and lengths[2] >= 16384
    assert_example_framing(tf.constant(serialized))  # no error
    parsed = tf.io.parse_example(tf.constant(serialized),
                                 {"user_id": tf.io.FixedLenFeature([], tf.string, b"")})
    assert parsed["user_id"].numpy().tolist() == [b"u1", b"u1", b"u1", b"", b""]


def test_example_framing_refuses_random_and_truncated_bytes_with_a_plain_message():
    from models.export import assert_example_framing
    rng = np.random.default_rng(0)
    good = _example(20)
    bad_inputs = [rng.bytes(64) for _ in range(50)] + [good[:-1], good + b"\x00", b"\n"]
    @tf.function  # as inside the serving signature
    def check(examples):
        with tf.control_dependencies([assert_example_framing(examples)]):
            return tf.identity(examples)

    for bad in bad_inputs:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="(?s)not a serialized tf.Example.*index.*1"):
            check(tf.constant([good, bad]))


def _rich_example(rng):
    """An Example shaped like the ExampleGen's: id sequences, ints, a float, many entries."""
    feature = {"user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"2180"])),
               "timestamp": tf.train.Feature(int64_list=tf.train.Int64List(value=[1494000000])),
               "price": tf.train.Feature(float_list=tf.train.FloatList(value=[23.5]))}
    for kind in ("click", "unclick", "like", "dislike"):
        for field in ("item", "cate", "brand"):
            feature["%s_%s_seq" % (kind, field)] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[b"%d" % v for v in rng.integers(
                    0, 100000, size=int(rng.integers(0, 30)))]))
    # deterministic: map entries in key order, so the test sees the same bytes every run
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


def test_example_framing_refuses_the_corrupt_examples_the_parser_would_quote():
    # The independent expectation is TensorFlow's own parser: an input it cannot split into
    # feature entries makes it quote the bytes (a UnicodeDecodeError in Python). The check
    # must refuse every such input; it may refuse a corruption the parser would accept only
    # when that is a protobuf no serializer writes (an unknown field, fields out of order),
    # which random byte changes make rarely.
    from models.export import assert_example_framing
    rng = np.random.default_rng(7)
    spec = {"user_id": tf.io.VarLenFeature(tf.string), "timestamp": tf.io.VarLenFeature(tf.int64),
            "price": tf.io.VarLenFeature(tf.float32),
            "click_item_seq": tf.io.VarLenFeature(tf.string)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def check(examples):
        with tf.control_dependencies([assert_example_framing(examples)]):
            return tf.identity(examples)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def parse(examples):
        return tf.io.parse_example(examples, spec)["user_id"].values

    outcomes = collections.Counter()
    for trial in range(400):
        corrupt = bytearray(_rich_example(rng))
        for _ in range(int(rng.integers(1, 8))):
            corrupt[int(rng.integers(0 if trial % 3 == 0 else 3, len(corrupt)))] = int(
                rng.integers(0, 256))
        batch = tf.constant([bytes(corrupt)])
        try:
            check(batch)
            refused = False
        except tf.errors.InvalidArgumentError as error:
            assert "not a serialized tf.Example" in str(error)
            refused = True
        try:
            parse(batch)
            parsed = "parsed"
        except tf.errors.InvalidArgumentError:
            parsed = "feature error"   # names the feature, quotes nothing
        except UnicodeDecodeError:
            parsed = "quoted"
        outcomes[(refused, parsed)] += 1
    assert outcomes[(False, "quoted")] == 0, outcomes
    assert outcomes[(True, "parsed")] <= 4, outcomes
    assert outcomes[(True, "quoted")] >= 50 and outcomes[(False, "parsed")] >= 50, outcomes


def test_example_framing_accepts_an_empty_batch_and_rich_examples():
    from models.export import assert_example_framing
    rng = np.random.default_rng(3)
    assert_example_framing(tf.constant([], tf.string))
    assert_example_framing(tf.constant([_rich_example(rng) for _ in range(20)] + [b""]))
