"""Export a trained DUMN / DIN model as a TF SavedModel with explicit signatures.

Uses `tf.saved_model.save` on a small tf.Module, never `model.save` (SPEC §2: Keras 3 cannot
save/load TF SavedModels that way, and Keras-2 model saving would also trace every layer).
The module holds the model's variables (weights, and DUMN's memories, which are exported
with the values they have at export time) and the serving functions. No exported function
writes a memory: they are frozen.

Default signature 'serving_default': keyword inputs = the transformed features of
models/features.py without the triplet samples and the label (`features.input_specs(...,
samples=False)`), output {'probability': float32 [B]}. The same function is kept as the
module attribute `serve_transformed` (a tf.function taking the feature dict), so a pipeline
can wrap its Transform layer around it:

    module = serving_module(model)
    module.tft_layer = tft_output.transform_features_layer()
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve_tf_examples(examples):
        transformed = module.tft_layer(tf.io.parse_example(examples, raw_feature_spec))
        return module.serve_transformed(transformed)
    export_saved_model(model, path, module=module,
                       signatures={'serving_default': serve_tf_examples})
"""
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F

OUTPUT_KEY = "probability"
# Where TF Serving looks for warm-up requests (replayed before the model takes traffic).
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _model_variables(model: tf.keras.Model):
    """The variables the forward pass reads (metric accumulators and optimizer slots left out)."""
    metric_ids = {id(v) for m in model.metrics for v in m.variables}
    return [v for v in model.variables if id(v) not in metric_ids]


def serving_module(model: tf.keras.Model) -> tf.Module:
    """A tf.Module tracking `model`'s variables with `serve_transformed(features)`.

    The model must be built (called once or trained).
    """
    if not model.built:
        raise ValueError("build the model (call it on a batch or train it) before exporting")
    config = model.config
    specs = F.input_specs(config.user_fields, samples=False)

    @tf.function(input_signature=[specs])
    def serve_transformed(features):
        return {OUTPUT_KEY: model(features, training=False)}

    module = tf.Module()
    module.model_variables = _model_variables(model)
    module.serve_transformed = serve_transformed
    module.config_json = tf.Variable(config.to_json(), trainable=False, name="model_config")
    return module


def export_saved_model(model: tf.keras.Model, path: str,
                       signatures: Optional[Mapping[str, Any]] = None,
                       module: Optional[tf.Module] = None,
                       extra_objects: Optional[Dict[str, Any]] = None) -> str:
    """Saves `model` for serving at `path` with tf.saved_model.save and returns `path`.

    signatures: {name: tf.function with an input_signature, or a concrete function}; by
      default {'serving_default': the transformed-feature signature}.
    module: a module from `serving_module(model)` to reuse (e.g. with a Transform layer
      attached); built here when None.
    extra_objects: more trackables to attach to the module (e.g. {'tft_layer': layer}), so
      their assets and variables travel with the SavedModel.
    """
    if module is None:
        module = serving_module(model)
    for name, obj in (extra_objects or {}).items():
        setattr(module, name, obj)
    if signatures is None:
        # A dict input_signature becomes flat keyword inputs named by the TensorSpec names.
        signatures = {"serving_default": module.serve_transformed}
    tf.saved_model.save(module, path, signatures=dict(signatures))
    return path


def write_warmup_requests(saved_model_dir: str, serialized_examples: Sequence[bytes],
                          batch_sizes: Sequence[int] = (1, 100),
                          input_key: str = "examples",
                          signature_name: str = "serving_default") -> str:
    """Writes TF Serving warm-up requests next to a SavedModel; returns the file's path.

    One PredictLog per batch size, each a PredictRequest on `signature_name` with
    `batch_sizes[i]` of `serialized_examples` (cycled) as the `input_key` tensor. TF Serving
    replays them when it loads the model, so the first real request does not pay for the
    graph's first run (kernel set-up, lazily built lookup tables).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    if not serialized_examples:
        raise ValueError("need at least one serialized example for the warm-up requests")
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for size in batch_sizes:
            batch = [serialized_examples[i % len(serialized_examples)] for i in range(size)]
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature_name))
            request.inputs[input_key].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def assert_example_framing(examples: tf.Tensor) -> tf.Operation:
    """An assertion that every string of `examples` is framed as a serialized tf.Example:
    empty, or the tag of field 1 (0x0A) followed by a varint length equal to the bytes left.

    Why: `tf.io.parse_example` quotes an unparseable input's bytes in its error message, and
    a Python caller of the SavedModel then gets a UnicodeDecodeError instead of the
    InvalidArgumentError (TF Serving itself returns INVALID_ARGUMENT either way). Random bytes
    fail this check with a plain message; bytes framed right but corrupt inside still reach
    the parser (a tf.Example merged from several field-1 records, valid protobuf but never
    written by a serializer, is refused here too).
    """
    length = tf.cast(tf.strings.length(examples), tf.int64)
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(examples, 0, 6), tf.uint8,
                                    fixed_length=6), tf.int64)  # zero-padded
    value = tf.zeros_like(length)
    varint_bytes = tf.zeros_like(length)
    active = tf.ones_like(length, dtype=tf.bool)  # still inside the varint
    for k in range(1, 6):
        byte = head[:, k]
        value += tf.where(active, tf.bitwise.left_shift(tf.bitwise.bitwise_and(byte, 127),
                                                        7 * (k - 1)), 0)
        varint_bytes += tf.cast(active, tf.int64)
        active = active & (byte >= 128)
    framed = (tf.equal(head[:, 0], 10) & ~active
              & tf.equal(value, length - 1 - varint_bytes))
    ok = tf.equal(length, 0) | framed
    first_bad = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int64)
    return tf.debugging.Assert(
        tf.reduce_all(ok),
        ["serving input is not a serialized tf.Example; the first such input is at index",
         first_bad], name="assert_example_framing")
