"""TFX Trainer entry point: `run_fn` trains DUMN (or DIN) on transformed examples and exports it.

The examples are the ExampleGen's raw ones, transformed here by Transform's graph as they
are loaded (the pipeline's default: Transform only analyses), or Transform's materialised
output (custom config `materialized_transform`, the pipeline's --materialize-transform).

The exported SavedModel has two signatures:

* `serving_default(examples)`: serialized raw tf.Examples, as FeedbackExampleGen writes them
  without the label -> {'probability': float32 [B]}. The Transform layer inside maps raw ids
  to embedding rows (unknown ids to OOV buckets) and cuts histories longer than T to the most
  recent T, exactly as in training. A request whose examples lack a user or item id fails
  with a clear InvalidArgumentError; the serving process keeps running.
* `transform_features(examples)`: serialized raw tf.Examples -> the transformed features
  whose names the raw example does not have (e.g. `history_bucket`), for TFMA's slicing.

The model's memories are frozen at their trained values; serving never writes them.
"""
import logging
import os
from typing import Any, Dict, Iterable

import legacy_keras  # noqa: F401
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import export as model_export
from models import features as F
from models import example_order
from models import preprocessing
from models.config import ModelConfig
from models.diagnostics import (PROJECTIONS_FILE, START_LOG, memory_diagnostics_callback,
                                projections)
from models.progress import progress_callback
from models.model_factory import build_compiled_model
from models.warm_start import warm_start

REQUIRED_SERVING_IDS = (F.USER_ID, F.ITEM_ID)
# Eval batches the report's 2-D views are computed on.
PROJECTION_BATCHES = 8


def model_config_from(custom_config: Dict[str, Any],
                      tft_output: tft.TFTransformOutput) -> ModelConfig:
    """The pipeline's model settings completed with the vocabulary sizes Transform found."""
    settings = dict(custom_config.get("model_config", {}))
    settings.update(preprocessing.vocabulary_sizes(tft_output, custom_config))
    return ModelConfig.from_dict(settings)


def _dataset(file_pattern, data_accessor, tft_output: tft.TFTransformOutput, batch_size: int,
             shuffle: bool, seed: int, materialized: bool) -> tf.data.Dataset:
    """(features, label) batches of transformed examples streamed from the files, repeated
    forever; the files hold Transform's output when `materialized`, else raw examples that
    the transform graph maps in the input pipeline."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=F.LABEL if materialized else None, shuffle=shuffle,
        shuffle_seed=seed, shuffle_buffer_size=10000, num_epochs=None)
    if materialized:
        dataset = data_accessor.tf_dataset_factory(
            file_pattern, options, tft_output.transformed_metadata.schema)
    else:
        layer = tft_output.transform_features_layer()

        def transform(raw):
            transformed = dict(layer(raw))
            return transformed, transformed.pop(F.LABEL)

        dataset = data_accessor.tf_dataset_factory(
            file_pattern, options, tft_output.raw_metadata.schema).map(transform)
    return dataset.prefetch(tf.data.AUTOTUNE)


def split_columns(files, tft_output: tft.TFTransformOutput, materialized: bool,
                  max_bytes: int = example_order.DEFAULT_MAX_BYTES):
    """(columns, labels) of a split's transformed examples held in memory, or None when it
    takes more than `max_bytes`. `materialized`: the files are Transform's output; else raw
    examples, transformed here by the transform graph (the same graph Transform's Beam job
    would run: models/preprocessing_test.py compares the two)."""
    spec = tft_output.transformed_feature_spec()
    if materialized:
        return example_order.in_memory_columns(files, spec, F.LABEL, max_bytes=max_bytes)
    return example_order.in_memory_columns(
        files, spec, F.LABEL, max_bytes=max_bytes,
        transform=tft_output.transform_features_layer(),
        parse_spec=tft_output.raw_feature_spec())


def _split_batches(fn_args: tfx.components.FnArgs, patterns, tft_output: tft.TFTransformOutput,
                   batch_size: int, seed: int, custom: Dict[str, Any], shuffle: bool,
                   split: str) -> tf.data.Dataset:
    """A split's batches, repeated forever, in an order that depends on the examples alone
    (held in memory, models/example_order.py), so a rerun on the same data and seed trains
    and validates on the same batches; streamed from the files in Beam's order when the split
    is larger than `in_memory_max_bytes` (custom config, default 4 GiB)."""
    materialized = bool(custom.get("materialized_transform", True))
    max_bytes = int(custom.get("in_memory_max_bytes", example_order.DEFAULT_MAX_BYTES))
    files = [path for pattern in patterns for path in tf.io.gfile.glob(pattern)]
    loaded = (split_columns(files, tft_output, materialized, max_bytes)
              if max_bytes > 0 else None)
    if loaded is None:
        logging.warning("%s split streamed from %d files in the order Beam wrote them "
                        "(larger than in_memory_max_bytes=%d, or not of fixed length): a "
                        "rerun on the same data may use other batches", split, len(files),
                        max_bytes)
        return _dataset(patterns, fn_args.data_accessor, tft_output, batch_size,
                        shuffle=shuffle, seed=seed, materialized=materialized)
    columns, labels = example_order.sorted_columns(*loaded)
    size = sum(value.nbytes for value in columns.values())
    logging.info("%s split: %d examples held in memory (%.0f MB) in a canonical order%s",
                 split, len(labels), size / 1e6,
                 "" if materialized else ", transformed by the Trainer")
    return example_order.batches(columns, labels, batch_size, seed, shuffle=shuffle,
                                 repeat=True)


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs; the default strategy on CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        logging.info("training on %d GPU(s) with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    logging.info("no GPU visible: training on the CPU")
    return tf.distribute.get_strategy()


def _check_ids_present(parsed: Dict[str, Any]) -> list:
    """Assertions that every serialized example carried exactly one user id and item id."""
    checks = []
    for name in REQUIRED_SERVING_IDS:
        value = parsed[name]
        counts = (tf.math.bincount(tf.cast(value.indices[:, 0], tf.int32),
                                   minlength=tf.cast(value.dense_shape[0], tf.int32))
                  if isinstance(value, tf.SparseTensor) else tf.ones_like(value[:, 0], tf.int32))
        checks.append(tf.debugging.assert_equal(
            counts, tf.ones_like(counts),
            message="every example needs exactly one %s; got an empty or malformed "
                    "tf.Example" % name))
    return checks


def export_serving_model(model, tft_output: tft.TFTransformOutput, path: str) -> str:
    """SavedModel with the Transform layer attached (its vocabularies travel as assets)."""
    module = model_export.serving_module(model)
    module.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != F.LABEL}
    model_inputs = list(F.input_specs(model.config.user_fields, samples=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(examples):
        with tf.control_dependencies([model_export.assert_example_framing(examples)]):
            parsed = tf.io.parse_example(examples, serving_spec)
        with tf.control_dependencies(_check_ids_present(parsed)):
            transformed = module.tft_layer(parsed)
        return module.serve_transformed({name: transformed[name] for name in model_inputs})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        transformed = module.tft_layer(tf.io.parse_example(examples, raw_spec))
        # Only the features the raw example lacks (history_bucket, lengths, ...): TFMA merges
        # these with the raw features, and a transformed `pid` (an index) would otherwise
        # shadow the raw `pid` (a readable value) in slices.
        return {name: value for name, value in transformed.items() if name not in raw_spec}

    model_export.export_saved_model(
        model, path, module=module,
        signatures={"serving_default": serve_tf_examples,
                    "transform_features": transform_features})
    model_export.write_warmup_requests(
        path, warmup_examples(serving_spec, model.config.max_seq_len,
                              model.config.num_triplet_samples))
    return path


def warmup_examples(serving_spec: Dict[str, Any], max_seq_len: int, num_samples: int,
                    count: int = 8) -> list:
    """Serialized raw tf.Examples with every serving feature filled (full-length histories
    and samples), for TF Serving's warm-up: they run the whole graph, lookups included. The
    ids are made up ('warmup-<n>', out of vocabulary), so no user's data ships in the model."""
    examples = []
    for i in range(count):
        feature = {}
        for name, spec in serving_spec.items():
            n = (max_seq_len if name.endswith("_seq")
                 else num_samples if name.endswith("_samples") else 1)
            if spec.dtype == tf.string:
                values = [b"warmup-%d" % ((i + j) % 7) for j in range(n)]
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
            elif spec.dtype == tf.int64:
                value = max_seq_len if name.endswith("_len") else 1494000000 + i
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value] * n))
            else:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * n))
        examples.append(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains for fn_args.train_steps, evaluates for fn_args.eval_steps, exports."""
    # Something in the training stack raises the root and absl loggers' levels to WARNING
    # while it runs, which silenced TFX's INFO lines (component finished, ...) for the rest
    # of a local run: put them back afterwards.
    levels = {name: logging.getLogger(name).level for name in ("", "absl")}
    try:
        _train_and_export(fn_args)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _train_and_export(fn_args: tfx.components.FnArgs) -> None:
    custom = fn_args.custom_config or {}
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    config = model_config_from(custom, tft_output)
    batch_size = int(custom.get("batch_size", 256))
    tf.keras.utils.set_random_seed(config.seed)
    logging.info("run_fn: %s model, vocabularies item %d cate %d brand %d user %d",
                 config.model, config.item_vocab_size, config.cate_vocab_size,
                 config.brand_vocab_size, config.user_vocab_size)

    strategy = distribution_strategy()
    global_batch = batch_size * strategy.num_replicas_in_sync
    train = _split_batches(fn_args, fn_args.train_files, tft_output, global_batch, config.seed,
                           custom, shuffle=True, split="training")
    evaluation = _split_batches(fn_args, fn_args.eval_files, tft_output, global_batch,
                                config.seed, custom, shuffle=False, split="eval")
    with strategy.scope():
        model = build_compiled_model(config)
        features, labels = next(iter(train))
        model.build_for_training(features)
    if fn_args.base_model:
        warm_start(model, fn_args.base_model, tft_output,
                   preprocessing.TransformConfig.from_custom_config(custom).num_oov_buckets)
    elif custom.get("warm_start"):
        logging.info("run_fn: warm start asked for, but no model is blessed yet: a cold start")
    write_start_loss(model, features, labels, fn_args.model_run_dir,
                     "warm" if fn_args.base_model else "cold")
    tensorboard = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                 update_freq=50)
    # Slot similarity, addressing entropy and read spread of DUMN's memories (collapse shows
    # here), on the first training batch, every 100 steps.
    diagnostics = memory_diagnostics_callback(fn_args.model_run_dir, features, every_steps=100)
    progress = progress_callback(fn_args.train_steps, global_batch)
    model.fit(train, steps_per_epoch=fn_args.train_steps, epochs=1,
              validation_data=evaluation, validation_steps=fn_args.eval_steps,
              callbacks=[tensorboard, diagnostics, progress], verbose=2)
    # Timestamps in the log: a stall of about 50 s was seen between the validation line and
    # the projections (docs/benchmarks.md), not yet located.
    logging.info("run_fn: fit returned")
    write_projections(model, evaluation, os.path.join(fn_args.model_run_dir, PROJECTIONS_FILE))
    export_serving_model(model, tft_output, fn_args.serving_model_dir)
    logging.info("run_fn: exported to %s", fn_args.serving_model_dir)


def write_start_loss(model, features, labels, model_run_dir: str, start: str) -> float:
    """The BCE of the first training batch before any step (what a warm start saves), logged
    and written to TensorBoard as `start/first_batch_bce` (and `start/warm_start`, 1 or 0)
    at step 0."""
    probability = model(features, training=False)
    bce = float(tf.reduce_mean(tf.keras.losses.binary_crossentropy(
        tf.cast(tf.reshape(labels, [-1, 1]), tf.float32), tf.reshape(probability, [-1, 1]))))
    writer = tf.summary.create_file_writer(os.path.join(model_run_dir, START_LOG))
    with writer.as_default():
        tf.summary.scalar("first_batch_bce", bce, step=0)
        tf.summary.scalar("warm_start", 1.0 if start == "warm" else 0.0, step=0)
    writer.flush()
    logging.info("run_fn: BCE of the first training batch before training: %.4f (%s start)",
                 bce, start)
    return bce


def write_projections(model, evaluation: tf.data.Dataset, path: str,
                      batches: int = PROJECTION_BATCHES) -> None:
    """The report's 2-D views of the trained model (models/diagnostics.projections) on the
    first `batches` eval batches, as JSON. A failure is logged, not raised: the model is
    trained and exported all the same, and the report says the views are missing."""
    import json
    try:
        parts = [features for features, _ in evaluation.take(batches)]
        logging.info("run_fn: %d eval batches read for the projections", len(parts))
        features = {name: tf.concat([part[name] for part in parts], axis=0)
                    for name in parts[0]}
        views = projections(model, features, features[F.USER_ID].numpy())
        views["examples"] = int(features[F.USER_ID].shape[0])
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(views, f)
        logging.info("run_fn: projections of %d eval examples written to %s",
                     views["examples"], path)
    except Exception:  # noqa: BLE001 (a report view must not fail a trained model)
        logging.warning("run_fn: no projections for the report", exc_info=True)


def score_serialized(saved_model_dir: str, serialized: Iterable[bytes]):
    """Probabilities of a pushed model for raw serialized tf.Examples (for checks and tools)."""
    loaded = tf.saved_model.load(saved_model_dir)
    scores = loaded.signatures["serving_default"](examples=tf.constant(list(serialized)))
    return scores[model_export.OUTPUT_KEY].numpy()
