"""TensorFlow Transform preprocessing: raw ExampleGen examples -> the model's input contract.

Input: the raw features of models/raw_features.py (the feedback-history ExampleGen's
output). Output: the transformed features of models/features.py, plus `history_bucket`:

=====================================  =======  ==========================================
output                                 dtype    shape / meaning
=====================================  =======  ==========================================
user_id, profile_<field>, item_id,     int64    [B]; 0 = empty value, vocabulary 1..V,
cate_id, brand_id, pid                          OOV buckets V+1..V+N
price                                  float32  [B]; z-score of log1p(price); missing -> 0
<f>_{item,cate,brand}_seq              int64    [B, T]; most recent T events, oldest first,
                                                padding 0 after
<f>_len                                int64    [B]; real events in the sequence, in [0, T]
<f>_{item,cate,brand}_samples          int64    [B, K]; first K samples, padding 0 after
<f>_sample_count                       int64    [B]; real samples, in [0, K]
merged_event_seq                       int64    [B, T]; the most recent T events of all
                                                types (codes into the <f>_seq, see
                                                models/features.py), padding 0 after;
                                                only when the input has it
label                                  int64    [B]; only when the input has a label
history_bucket                         int64    [B]; bucket of click_full_len (see below)
=====================================  =======  ==========================================

Vocabularies (tft.vocabulary, text files, ordered by decreasing frequency, named
deterministically so that `vocabulary_sizes` and a pipeline can find them):

* 'item_id', 'cate_id', 'brand_id': ONE vocabulary each, shared by the target item, the four
  histories and the triplet samples (the model shares the embedding tables the same way), so
  an item seen only in someone's history has the same index as when it is a target. Counted
  over what the model reads: the target, the kept (most recent T) history events and the
  first K samples;
* 'user_id', 'pid' and 'profile_<field>' for each profile field of the input (the fields are
  discovered from the input keys starting with 'profile_', so any dataset's profile columns
  work).

Every id output records its range [0, V + num_oov_buckets] as the int_domain of the
transformed schema, so the embedding-table sizes can be read from the Transform artifact
(`vocabulary_sizes`).

Index 0 is reserved: b'' (an unknown value, an event without an item or brand id) maps to 0,
and so does the padding of sequences and samples. Values below the frequency threshold and
values first seen at serving time go to one of `num_oov_buckets` hash buckets after the
vocabulary (with num_oov_buckets=0 they map to 0 like an empty value). Values containing
'\\n' or '\\r' cannot be stored in a text vocabulary (TFT drops them) and are treated as OOV.

`history_bucket` slices the Evaluator's metrics by how much click history a user had:
bucket i counts the impressions whose full click history length (`click_full_len`, all
earlier clicks, not only the last T) lies in [b_{i-1}, b_i) for the fixed boundaries
HISTORY_BUCKET_BOUNDARIES = (1, 5, 20, 50, 100):

    0: no click yet, 1: 1-4, 2: 5-19, 3: 20-49, 4: 50-99, 5: 100 or more.

Boundaries are fixed, not quantiles of the data, so slices mean the same thing across
model versions and datasets. The model does not read it.

Serving. The same graph runs in the exported model (TFTransformOutput
.transform_features_layer()). Sequences are cut with `rt[:, -T:]` on the raw lists, so a
request carrying a longer history than T is cut exactly as training data was. Outputs whose
inputs a request lacks are pruned by TFT (no label at serving -> no `label` output).

Configuration through TFX Transform's `custom_config` (other keys are ignored, so a pipeline
may pass one dict to several components): `max_seq_len` (T, default 100), `num_samples`
(K, default 5), `num_oov_buckets` (default 10), `vocab_frequency_threshold` (default 1 =
keep every value seen).
"""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import legacy_keras  # noqa: F401  (Keras 2 before TensorFlow; TFT is built on it)
import tensorflow as tf
import tensorflow_transform as tft
# How TFT's own mappers (apply_vocabulary, apply_buckets) record an output's value range in
# the transformed schema; used to make every id output carry its embedding-table size.
from tensorflow_transform import schema_inference

from models import features as F
from models.raw_features import profile_features
import beam_fixes  # noqa: F401,I100  (Transform runs Beam: data-plane race fix)

HISTORY_BUCKET = "history_bucket"
HISTORY_BUCKET_BOUNDARIES = (1, 5, 20, 50, 100)
# The history whose full length `history_bucket` buckets.
HISTORY_BUCKET_SOURCE = F.full_length("click")

# Vocabulary file names (tft.vocabulary's vocab_filename) of the shared item-part tables.
ITEM_PART_VOCABULARIES = {"item": F.ITEM_ID, "cate": F.CATE_ID, "brand": F.BRAND_ID}
USER_VOCABULARY = F.USER_ID
PID_VOCABULARY = F.PID


class TransformConfig(NamedTuple):
    """The settings of `preprocessing_fn`, read from TFX Transform's custom_config."""

    max_seq_len: int = 100  # T
    num_samples: int = 5  # K
    num_oov_buckets: int = 10
    vocab_frequency_threshold: int = 1

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "TransformConfig":
        """Reads the known keys of `custom_config` (others are ignored); validates them."""
        values = {key: custom_config[key] for key in cls._fields
                  if custom_config and key in custom_config}
        config = cls(**values)
        minimum = {"max_seq_len": 1, "num_samples": 1, "num_oov_buckets": 0,
                   "vocab_frequency_threshold": 1}
        errors = []
        for key, low in minimum.items():
            value = getattr(config, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                errors.append("%s=%r, expected an integer >= %d" % (key, value, low))
        if errors:
            raise ValueError("Invalid Transform custom_config: " + "; ".join(errors))
        return config


# ----------------------------------------------------------------------------------------
# Shape helpers
# ----------------------------------------------------------------------------------------
def _single_value_column(x) -> tf.SparseTensor:
    """A raw single-valued feature as a SparseTensor of dense shape exactly [B, 1].

    The one place that handles the SPEC §2 pitfall: when a feature is empty in every row of
    a batch (all prices missing; a serving request without the feature), the parsed
    SparseTensor has dense shape [B, 0], and densifying it gives [B, 0] — zero values per
    row, so the batch silently loses its rows (or a squeeze fails). Resetting the dense
    shape to [B, 1] first (the TFX templates' `fill_in_missing` idiom) keeps one value per
    row. Only column 0 is kept, so a stray second value (the schema allows one) cannot make
    densifying fail.
    """
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if isinstance(x, tf.SparseTensor):
        first = tf.sparse.retain(x, tf.equal(x.indices[:, 1], 0))
        return tf.SparseTensor(first.indices, first.values,
                               tf.stack([x.dense_shape[0], tf.constant(1, tf.int64)]))
    # A dense input (FixedLenFeature: [B] or [B, 1]) has a value in every row.
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 2:
        x = x[:, 0]
    rows = tf.range(tf.shape(x, out_type=tf.int64)[0])
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    return tf.SparseTensor(indices, x, tf.stack([tf.size(x, out_type=tf.int64),
                                                 tf.constant(1, tf.int64)]))


def dense_scalar(x, default_value) -> tf.Tensor:
    """A raw single-valued feature as a dense [B] tensor, `default_value` where missing."""
    column = _single_value_column(x)
    return tf.squeeze(tf.sparse.to_dense(column, default_value=default_value), axis=1)


def _as_ragged(x) -> tf.RaggedTensor:
    """A raw list feature (SparseTensor [B, None], RaggedTensor or dense) as a RaggedTensor."""
    if isinstance(x, tf.RaggedTensor):
        return x
    if isinstance(x, tf.SparseTensor):
        # Row-major sorted indices (what tf.io.parse_example and TFXIO produce).
        return tf.RaggedTensor.from_sparse(x)
    x = tf.convert_to_tensor(x)
    return tf.RaggedTensor.from_tensor(x if x.shape.rank == 2 else x[:, None])


def _ragged_to_padded(rt: tf.RaggedTensor, width: int) -> tf.Tensor:
    """[B, width] int64, the ragged rows left-aligned, 0 after them."""
    return rt.to_tensor(default_value=0, shape=[None, width])


# ----------------------------------------------------------------------------------------
# Vocabulary helpers
# ----------------------------------------------------------------------------------------
def _non_empty(values: tf.Tensor) -> tf.Tensor:
    """The values other than b'' (b'' maps to index 0 and must not take a vocabulary slot)."""
    return tf.boolean_mask(values, tf.not_equal(values, b""))


def _vocabulary(values: tf.Tensor, name: str, config: TransformConfig):
    """tft.vocabulary over the non-empty `values` (any shape), saved as `name`.

    Every value has weight 1, so the vocabulary is the frequency-ordered one of an unweighted
    call (the weighted count of a value is its count, summed exactly in float64). The weight
    is there for speed: without one, TFT hands Beam every value of the batch as a Python
    element to count (about 200 per example here, 70% of the analysis pass on the built-in
    data); with one, the graph reduces each batch to its unique values and their counts
    first (tf_utils.reduce_batch_weighted_counts).
    """
    flat = _non_empty(tf.reshape(values, [-1]))
    return tft.vocabulary(flat, vocab_filename=name, weights=tf.ones_like(flat, tf.float64),
                          frequency_threshold=config.vocab_frequency_threshold, name=name)


def _lookup(values: tf.Tensor, vocabulary, config: TransformConfig) -> tf.Tensor:
    """int64 indices: b'' -> 0, vocabulary entry i -> i + 1, others -> an OOV bucket after."""
    indices = tft.apply_vocabulary(values, vocabulary, default_value=-1,
                                   num_oov_buckets=config.num_oov_buckets)
    # Shift by one to free index 0; with no OOV buckets, unseen values (-1) land on 0 too.
    return tf.where(tf.equal(values, b""), tf.zeros_like(indices), indices + 1)


def _annotate_index_range(ids: tf.Tensor, vocab_name: str, config: TransformConfig) -> tf.Tensor:
    """Records ids' range [0, V + num_oov_buckets] as the int_domain of the output feature.

    The transformed schema then says how many embedding rows each id feature needs
    (`TFTransformOutput.num_buckets_for_transformed_feature`), so `vocabulary_sizes` reads
    the sizes from the Transform artifact itself rather than trusting a config.
    """
    vocabulary_entries = tf.cast(tft.experimental.get_vocabulary_size_by_name(vocab_name),
                                 tf.int64)
    schema_inference.set_tensor_schema_override(
        ids, tf.constant(0, tf.int64), vocabulary_entries + config.num_oov_buckets)
    return ids


def _lookup_many(pieces: Sequence[tf.Tensor], vocabulary,
                 config: TransformConfig) -> List[tf.Tensor]:
    """`_lookup` of several 1-D tensors with one table lookup (one table in the graph)."""
    sizes = [tf.size(p) for p in pieces]
    indices = _lookup(tf.concat(list(pieces), axis=0), vocabulary, config)
    return tf.split(indices, tf.stack(sizes), num=len(pieces))


# ----------------------------------------------------------------------------------------
# preprocessing_fn
# ----------------------------------------------------------------------------------------
def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """The Transform step: see the module docstring for the outputs and their meaning."""
    config = TransformConfig.from_custom_config(custom_config)
    T, K = config.max_seq_len, config.num_samples
    outputs: Dict[str, tf.Tensor] = {}

    # Sequences keep the most recent T events (the raw lists are oldest first; a serving
    # request may carry more than T), samples the first K.
    sequences = {(f, p): _as_ragged(inputs[F.seq(f, p)])[:, -T:]
                 for f in F.FEEDBACK_TYPES for p in F.ITEM_PARTS}
    samples = {(f, p): _as_ragged(inputs[F.sample(f, p)])[:, :K]
               for f in F.FEEDBACK_TYPES for p in F.ITEM_PARTS}
    for f in F.FEEDBACK_TYPES:
        # Item, category and brand lists are parallel (one entry per event, '' where an
        # event lacks the id), so the item list's length is the history's.
        outputs[F.length(f)] = sequences[f, "item"].row_lengths()
        outputs[F.sample_count(f)] = samples[f, "item"].row_lengths()

    # Item, category and brand: one vocabulary (and one lookup) across target, histories
    # and samples.
    for part, vocab_name in ITEM_PART_VOCABULARIES.items():
        target = dense_scalar(inputs[F.TARGET_ITEM_PARTS[part]], b"")
        lists = ([sequences[f, part] for f in F.FEEDBACK_TYPES]
                 + [samples[f, part] for f in F.FEEDBACK_TYPES])
        pieces = [target] + [rt.flat_values for rt in lists]
        vocabulary = _vocabulary(tf.concat(pieces, axis=0), vocab_name, config)
        looked_up = _lookup_many(pieces, vocabulary, config)
        part_outputs = {F.TARGET_ITEM_PARTS[part]: looked_up[0]}
        for f, ids in zip(F.FEEDBACK_TYPES, looked_up[1:1 + len(F.FEEDBACK_TYPES)]):
            part_outputs[F.seq(f, part)] = _ragged_to_padded(
                sequences[f, part].with_flat_values(ids), T)
        for f, ids in zip(F.FEEDBACK_TYPES, looked_up[1 + len(F.FEEDBACK_TYPES):]):
            part_outputs[F.sample(f, part)] = _ragged_to_padded(
                samples[f, part].with_flat_values(ids), K)
        for name, ids in part_outputs.items():
            outputs[name] = _annotate_index_range(ids, vocab_name, config)

    # User id, pid and each profile field: a vocabulary of their own.
    for name in [USER_VOCABULARY, PID_VOCABULARY] + profile_features(inputs):
        values = dense_scalar(inputs[name], b"")
        ids = _lookup(values, _vocabulary(values, name, config), config)
        outputs[name] = _annotate_index_range(ids, name, config)

    # Price: log1p (prices are heavy-tailed), then z-score over the present values only;
    # a missing price becomes 0.0, the mean. Negative prices (invalid) count as 0.
    # The mean and variance are accumulated in float64: Beam combines the partial sums in
    # another order on every run, and in float32 that moved some z-scores by an ULP, so a
    # rerun on the same data trained on other values (and in another canonical order).
    price = _single_value_column(inputs[F.PRICE])
    log_price = tf.SparseTensor(price.indices,
                                tf.math.log1p(tf.maximum(tf.cast(price.values, tf.float64), 0.0)),
                                price.dense_shape)
    scaled = tft.scale_to_z_score(log_price, name="price_z_score", output_dtype=tf.float64)
    outputs[F.PRICE] = tf.cast(
        tf.squeeze(tf.sparse.to_dense(scaled, default_value=0.0), axis=1), tf.float32)

    # The time-ordered references of AF: passed through, cut and padded like a history
    # (examples written before the ExampleGen carried them have none).
    if F.MERGED_EVENTS in inputs:
        merged = _as_ragged(inputs[F.MERGED_EVENTS])[:, -T:]
        outputs[F.MERGED_EVENTS] = _ragged_to_padded(tf.cast(merged, tf.int64), T)

    # Label: passed through; absent from serving requests (TFT then prunes this output).
    if F.LABEL in inputs:
        outputs[F.LABEL] = tf.cast(dense_scalar(inputs[F.LABEL], 0), tf.int64)

    full_click_length = dense_scalar(inputs[HISTORY_BUCKET_SOURCE], 0)
    outputs[HISTORY_BUCKET] = tf.cast(tf.raw_ops.Bucketize(
        input=full_click_length, boundaries=[float(b) for b in HISTORY_BUCKET_BOUNDARIES]),
        tf.int64)
    return outputs


# ----------------------------------------------------------------------------------------
# Vocabulary sizes for the model
# ----------------------------------------------------------------------------------------
def embedding_rows(vocabulary_entries: int, config: TransformConfig) -> int:
    """Rows of an embedding table: index 0, the vocabulary entries, the OOV buckets."""
    return 1 + vocabulary_entries + config.num_oov_buckets


def vocabulary_sizes(tf_transform_output: "tft.TFTransformOutput",
                     custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Embedding-table row counts per vocabulary, as ModelConfig fields.

    Returns {'item_vocab_size', 'cate_vocab_size', 'brand_vocab_size', 'user_vocab_size',
    'pid_vocab_size': int, 'user_fields': {'profile_<field>': int}}; `user_fields` keys are
    the transformed feature names the model looks up.

    The sizes come from the Transform artifact: every id output's int_domain in the
    transformed schema is [0, V + num_oov_buckets], so rows = max + 1 = 1 + V + OOV buckets.
    When `custom_config` states `num_oov_buckets`, it is checked against the artifact, so a
    Trainer configured differently from the Transform that produced its data fails here
    instead of indexing past its embedding tables. An empty vocabulary holds TFT's one dummy
    entry, so every size is at least 2.
    """
    check_oov = custom_config is not None and "num_oov_buckets" in custom_config
    config = TransformConfig.from_custom_config(custom_config)

    def rows(feature_name: str, vocab_name: str) -> int:
        size = tf_transform_output.num_buckets_for_transformed_feature(feature_name)
        if check_oov:
            expected = embedding_rows(tf_transform_output.vocabulary_size_by_name(vocab_name),
                                      config)
            if size != expected:
                raise ValueError(
                    "%s: the Transform output has %d index values, but 1 + %d vocabulary "
                    "entries + num_oov_buckets=%d = %d: custom_config's num_oov_buckets differs "
                    "from the one Transform ran with" % (
                        feature_name, size, tf_transform_output.vocabulary_size_by_name(
                            vocab_name), config.num_oov_buckets, expected))
        return size

    sizes: Dict[str, Any] = {
        "%s_vocab_size" % part: rows(F.TARGET_ITEM_PARTS[part], vocab)
        for part, vocab in ITEM_PART_VOCABULARIES.items()}
    sizes["user_vocab_size"] = rows(F.USER_ID, USER_VOCABULARY)
    sizes["pid_vocab_size"] = rows(F.PID, PID_VOCABULARY)
    fields = profile_features(tf_transform_output.transformed_feature_spec())
    sizes["user_fields"] = {name: rows(name, name) for name in fields}
    return sizes


__all__ = ["HISTORY_BUCKET", "HISTORY_BUCKET_BOUNDARIES", "TransformConfig",
           "dense_scalar", "embedding_rows", "preprocessing_fn", "vocabulary_sizes"]
