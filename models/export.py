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


def model_variables(model: tf.keras.Model):
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
    module.model_variables = model_variables(model)
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


_VARINT_MAX_BYTES = 4  # field lengths below 2**28 bytes (256 MiB), in int32
_PAST_END = 256        # the byte grid's value beyond a string's end: no byte has it
# Tags of the length-delimited fields: Example.features (1), Features.feature (1, one map
# entry), the entry's key (1) and value (2).
_FEATURES_TAG, _ENTRY_TAG, _KEY_TAG, _VALUE_TAG = 0x0A, 0x0A, 0x0A, 0x12


def _fields_at(grid: tf.Tensor, rows: tf.Tensor, columns: tf.Tensor, expected_tag: int):
    """The length-delimited field that would start at (rows[i], columns[i]) of `grid`, the
    strings' bytes [B, width] padded with _PAST_END: (payload start, payload end, well
    formed), each like `columns`. Ill formed: another tag, or a length varint that runs past
    the string or beyond _VARINT_MAX_BYTES bytes."""
    width = tf.shape(grid)[1]
    offsets = tf.range(_VARINT_MAX_BYTES + 1)[None, :]   # the tag, then the varint's bytes
    position = rows[:, None] * width + tf.minimum(columns[:, None] + offsets, width - 1)
    head = tf.gather(tf.reshape(grid, [-1]), position)     # past a row's end: _PAST_END
    varint = head[:, 1:]
    # Byte k belongs to the varint when every byte before it has the continuation bit.
    continues = tf.cast((varint >= 128) & (varint < _PAST_END), tf.int32)
    belongs = tf.math.cumprod(continues, axis=1, exclusive=True)
    complete = tf.reduce_any(tf.equal(belongs, 1) & (varint < 128), axis=1)
    shifts = 7 * tf.range(_VARINT_MAX_BYTES)[None, :]
    value = tf.reduce_sum(belongs * tf.bitwise.left_shift(tf.bitwise.bitwise_and(varint, 127),
                                                          shifts), axis=1)
    start = columns + 1 + tf.reduce_sum(belongs, axis=1)
    return start, start + value, complete & tf.equal(head[:, 0], expected_tag)


def assert_example_framing(examples: tf.Tensor) -> tf.Operation:
    """An assertion that every string of `examples` is framed as a serialized tf.Example down
    to its feature entries: empty, or field 1 (Features) spanning the whole string, whose
    bytes are a run of field-1 entries, each exactly a key (field 1) then a value (field 2)
    with lengths that add up.

    Why: `tf.io.parse_example` quotes the whole input in its error message when it cannot
    split an Example into feature entries, and a Python caller of the SavedModel then gets a
    UnicodeDecodeError instead of the InvalidArgumentError (TF Serving returns
    INVALID_ARGUMENT either way). With this check in front, such bytes fail with a plain
    message. What lies inside a feature's value is left to the parser, whose errors there name
    the feature and quote nothing. The check follows what serializers write: a valid protobuf
    that no serializer writes (several field-1 records merged, fields out of order, unknown
    fields) is refused too.

    How, without a loop over entries (a tf.while_loop over them cost ~13 ms per request on
    2 CPUs): every byte 0x0A followed by a length varint and the key's tag is a candidate
    entry start (about two per real entry); the entry each candidate would be is decoded at
    once, giving it a jump to the next entry (a candidate), to the Features' end, or to a
    dead end; jumps are then composed by doubling, so the chain from each Example's first
    entry is followed in log2(entries) steps. Cost on 2 CPUs: about 0.7 ms per request of 1
    example and 10 ms per 100 (benchmarks/serving_latency.py prints it).
    """
    length = tf.strings.length(examples)
    batch = tf.shape(examples)[0]
    width = tf.reduce_max(tf.concat([length, [0]], 0)) + _VARINT_MAX_BYTES + 2
    grid = tf.cast(tf.io.decode_raw(examples, tf.uint8, fixed_length=width), tf.int32)
    grid = tf.where(tf.range(width)[None, :] < length[:, None], grid, _PAST_END)
    rows = tf.range(batch)
    features_start, features_end, framed = _fields_at(grid, rows, tf.zeros_like(rows),
                                                      _FEATURES_TAG)
    framed &= tf.equal(features_end, length)
    # Candidate entry starts, in row-major order (so their flat positions are sorted): a
    # byte 0x0A whose length varint is followed by the key's tag. A cheap dense filter that
    # passes every true entry start; candidates outside a Features field are harmless (no
    # chain from a first entry reaches them).
    columns = width - _VARINT_MAX_BYTES - 1  # every position inside the longest string
    is_tag = tf.equal(grid, _ENTRY_TAG)
    top_bit = grid >= 128  # also past the end (_PAST_END), where no key tag can follow

    def shifted(mask, k):
        return mask[:, k:k + columns]

    key_tag_follows = tf.zeros_like(shifted(is_tag, 0))
    continued = tf.ones_like(key_tag_follows)  # the varint's bytes so far had the top bit
    for k in range(1, _VARINT_MAX_BYTES + 1):
        key_tag_follows |= continued & ~shifted(top_bit, k) & shifted(is_tag, k + 1)
        continued &= shifted(top_bit, k)
    candidates = tf.cast(tf.where(shifted(is_tag, 0) & key_tag_follows), tf.int32)
    cand_rows, cand_columns = candidates[:, 0], candidates[:, 1]
    key_start, entry_end, entry_ok = _fields_at(grid, cand_rows, cand_columns, _ENTRY_TAG)
    _, key_end, key_ok = _fields_at(grid, cand_rows, key_start, _KEY_TAG)
    _, value_end, value_ok = _fields_at(grid, cand_rows, key_end, _VALUE_TAG)
    cand_features_end = tf.gather(features_end, cand_rows)
    entry_ok &= (key_ok & value_ok & tf.equal(value_end, entry_end)
                 & (entry_end <= cand_features_end))
    # Nodes: candidates 0..n-1, then one end node per row, then the dead end.
    n = tf.shape(cand_rows)[0]
    dead = n + batch

    def node_at(node_rows, node_columns, ends):
        """The node for an entry starting at (row, column): the row's end node at the
        Features' end, else the candidate there, else the dead end."""
        flat = tf.cast(cand_rows, tf.int64) * tf.cast(width, tf.int64) + tf.cast(
            cand_columns, tf.int64)
        target = tf.cast(node_rows, tf.int64) * tf.cast(width, tf.int64) + tf.cast(
            tf.clip_by_value(node_columns, 0, width - 1), tf.int64)
        found = tf.cast(tf.searchsorted(flat, target), tf.int32)
        found_ok = (found < n) & tf.equal(
            tf.gather(tf.concat([flat, [-1]], 0), tf.minimum(found, n)), target)
        return tf.where(tf.equal(node_columns, ends), n + node_rows,
                        tf.where(found_ok & (node_columns < width), found, dead))

    jump = tf.where(entry_ok, node_at(cand_rows, entry_end, cand_features_end), dead)
    jump = tf.concat([jump, n + rows, [dead]], 0)   # end nodes and the dead end stay put
    cursor = node_at(rows, features_start, features_end)

    def unfinished(cursor, jump):
        return tf.reduce_any(cursor < n)

    def double(cursor, jump):
        return tf.gather(jump, cursor), tf.gather(jump, jump)

    cursor, _ = tf.while_loop(unfinished, double, [cursor, jump])
    ok = tf.equal(length, 0) | (framed & tf.equal(cursor, n + rows))
    # (An appended False keeps argmin defined for an empty batch.)
    first_bad = tf.argmin(tf.cast(tf.concat([ok, [False]], 0), tf.int32),
                          output_type=tf.int64)
    return tf.debugging.Assert(
        tf.reduce_all(ok),
        ["serving input is not a serialized tf.Example; the first such input is at index",
         first_bad], name="assert_example_framing")
