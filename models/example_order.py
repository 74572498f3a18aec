"""Training batches that do not depend on the order the pipeline wrote the examples in.

Beam writes Transform's examples in a different order, and over differently cut shards, on
every run, and a seeded shuffle permutes positions: so the same data and seed used to give
other batches, and another model, after a rerun (eval AUC 0.8281, 0.8317, 0.8281 on three
runs of one small log; about ±0.01 on the main job). Here the training split is held in
memory as columns, sorted into a canonical order that depends on the examples' contents
alone (a hash of every feature's values, row by row), and batched from a seeded
permutation. Two runs on the same examples then train on the same batches, however the
files were cut.

Memory: the split's transformed values (about 5 KB per example at T = 100, 4 histories of
3 ids, stored as int32). Above `max_bytes` the Trainer falls back to streaming from the
files (`in_memory_columns` returns None), which is reproducible only up to Beam's order.
"""
import hashlib
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

Columns = Dict[str, np.ndarray]

# The default cap on the in-memory training split (bytes of its values).
DEFAULT_MAX_BYTES = 4 << 30


def in_memory_columns(files: Iterable[str], feature_spec: Dict[str, tf.io.FixedLenFeature],
                      label_key: str, max_bytes: int = DEFAULT_MAX_BYTES,
                      batch: int = 2048, transform: Optional[Callable] = None,
                      parse_spec: Optional[Dict[str, Any]] = None
                      ) -> Optional[Tuple[Columns, np.ndarray]]:
    """(features, labels) of every example in `files` (GZIP TFRecords of tf.Examples) as
    numpy columns of `feature_spec`, int64 values narrowed to int32 where they fit; None once
    they would take more than `max_bytes`, or when a feature is not of fixed length.

    With `transform` (e.g. TFTransformOutput.transform_features_layer()), the files hold raw
    examples: each batch is parsed with `parse_spec` (the raw feature spec) and transformed
    in TensorFlow, and `feature_spec` names the transformed features to keep (the
    transformed feature spec); the Trainer then needs no materialised Transform output.
    """
    if not all(isinstance(spec, tf.io.FixedLenFeature) for spec in feature_spec.values()):
        return None
    if transform is not None and parse_spec is None:
        raise ValueError("a transform needs the parse_spec of the raw examples")
    spec = parse_spec if transform is not None else feature_spec

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        if transform is not None:
            parsed = transform(parsed)
        return {name: parsed[name] for name in feature_spec}

    parts: Dict[str, list] = {name: [] for name in feature_spec}
    size = 0
    dataset = (tf.data.TFRecordDataset(sorted(files), compression_type="GZIP").batch(batch)
               .map(parse).prefetch(2))
    if not all(isinstance(value, tf.TensorSpec) for value in dataset.element_spec.values()):
        return None  # a sparse or ragged transformed feature
    for parsed in dataset:
        for name in feature_spec:
            value = parsed[name].numpy()
            if value.dtype == np.int64 and _fits_int32(value):
                value = value.astype(np.int32)
            parts[name].append(value)
            size += value.nbytes
        if size > max_bytes:
            return None
    columns = {name: (np.concatenate(chunks) if chunks
                      else np.zeros((0,) + tuple(feature_spec[name].shape),
                                    feature_spec[name].dtype.as_numpy_dtype))
               for name, chunks in parts.items()}
    labels = columns.pop(label_key).reshape(-1).astype(np.int64)
    return columns, labels


def _fits_int32(value: np.ndarray) -> bool:
    info = np.iinfo(np.int32)
    return value.size == 0 or (value.min() >= info.min and value.max() <= info.max)


def canonical_order(columns: Columns, labels: np.ndarray) -> np.ndarray:
    """The permutation that sorts the examples by `row_digests`. Identical rows hash alike
    and are interchangeable, so the order does not depend on the input's (short of a hash
    collision between two different rows)."""
    digests = row_digests(columns, labels)
    return np.lexsort((digests[:, 1], digests[:, 0]))


def row_digests(columns: Columns, labels: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """[n, 2] uint64: a 128-bit BLAKE2b hash of each example's contents, the bytes of its
    label and of every feature in name order. Hashed a chunk of rows at a time, so the extra
    memory is a chunk's bytes and 16 bytes per example, not a copy of the split."""
    n = len(labels)
    blocks = [labels.reshape(n, -1)] + [columns[name].reshape(n, -1) for name in sorted(columns)]
    digests = np.empty((n, 2), dtype=np.uint64)
    for start in range(0, n, chunk):
        rows = np.concatenate(
            [np.ascontiguousarray(block[start:start + chunk].astype(block.dtype.newbyteorder("<")))
             .view(np.uint8).reshape(-1, block.shape[1] * block.dtype.itemsize)
             for block in blocks], axis=1)
        for offset, row in enumerate(rows):
            digests[start + offset] = np.frombuffer(
                hashlib.blake2b(row.tobytes(), digest_size=16).digest(), dtype="<u8")
    return digests


def sorted_columns(columns: Columns, labels: np.ndarray) -> Tuple[Columns, np.ndarray]:
    order = canonical_order(columns, labels)
    return {name: value[order] for name, value in columns.items()}, labels[order]


def batches(columns: Columns, labels: np.ndarray, batch_size: int, seed: int, shuffle: bool,
            repeat: bool) -> tf.data.Dataset:
    """(features, label) batches of the in-memory examples: a new permutation from
    numpy's generator seeded with `seed` at every pass (or the stored order), int32 columns
    widened back to int64; while repeating, full batches only (the whole split when it is
    smaller than one batch)."""
    n = len(labels)
    names = sorted(columns)

    def spec(value: np.ndarray) -> tf.TensorSpec:
        dtype = tf.int64 if value.dtype in (np.int32, np.int64) else tf.as_dtype(value.dtype)
        return tf.TensorSpec((None,) + value.shape[1:], dtype)

    signature = ({name: spec(columns[name]) for name in names}, tf.TensorSpec((None,), tf.int64))

    def generate():
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(n) if shuffle else np.arange(n)
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                if repeat and len(index) < batch_size and n >= batch_size:
                    break
                yield ({name: (columns[name][index].astype(np.int64)
                               if columns[name].dtype == np.int32 else columns[name][index])
                        for name in names}, labels[index])
            if not repeat or n == 0:
                return

    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)
