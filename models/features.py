"""The model's input contract: names and shapes of the transformed features.

This is the interface between the Transform step (`models/preprocessing.py`, fed by the
feedback-history ExampleGen) and the Keras models (`models/zoo/`). Every id feature is
already an integer index into an embedding table:

* index 0 is reserved: padding in a sequence, and "no value" for an empty field (an empty
  `item_id` of a category-level event, an empty `brand_id`);
* vocabulary entries follow from index 1, out-of-vocabulary buckets after them, so a table
  has `vocab_size` rows with `vocab_size = 1 + vocabulary entries + OOV buckets`.

Shapes (B = batch, T = history length, K = triplet samples per feedback type):

* `USER_ID` and each profile field in `ModelConfig.user_fields`: int64 [B]
* `ITEM_ID`, `CATE_ID`, `BRAND_ID` (the target item), `PID`: int64 [B]
* `PRICE`: float32 [B], already normalised (log1p then z-score)
* for each feedback type f in FEEDBACK_TYPES:
    - `seq(f, part)` for part in ITEM_PARTS: int64 [B, T], oldest first, the most recent
      event at position `length - 1`, padding (0) after it
    - `length(f)`: int64 [B], number of real events in the sequence, in [0, T]
    - `sample(f, part)` for part in ITEM_PARTS: int64 [B, K], triplet samples drawn from the
      user's whole earlier history of type f, padding (0) after the real ones
    - `sample_count(f)`: int64 [B], number of real samples, in [0, K]
* `MERGED_EVENTS`: int64 [B, T], the most recent T events of all four types in time order,
  oldest first, each a code 1 + type + 4 * rank pointing into `seq(FEEDBACK_TYPES[type], .)`
  at position `length(type) - 1 - rank`; 0 = padding after them (feedback_contract)
* `LABEL`: int64 [B], 1 = click, 0 = unclick (training only)

Item, category and brand ids share one embedding table each between the target item, the
four histories and the triplet samples.
"""
from typing import Dict, Iterable, List, Optional

# The names the raw example shares with this contract are declared once, there.
from feedback_contract import (BRAND_ID, CATE_ID, FEEDBACK_TYPES, ITEM_ID,  # noqa: F401
                               ITEM_PARTS, LABEL, MERGED_EVENTS, PID, PRICE, TARGET_ITEM_PARTS,
                               USER_ID, full_length, merged_event_code,
                               merged_event_parts, sample, seq)

# Opposite pairs used by the triplet loss (eq. 17): the negative of type f is OPPOSITE[f].
OPPOSITE = {"click": "unclick", "unclick": "click", "like": "dislike", "dislike": "like"}


def length(feedback: str) -> str:
    """Name of a history's length clipped to T, e.g. 'click_len'."""
    return "%s_len" % feedback


def sample_count(feedback: str) -> str:
    """Name of the number of real triplet samples, e.g. 'like_sample_count'."""
    return "%s_sample_count" % feedback


def sequence_feature_names() -> List[str]:
    return [seq(f, p) for f in FEEDBACK_TYPES for p in ITEM_PARTS]


def sample_feature_names() -> List[str]:
    return [sample(f, p) for f in FEEDBACK_TYPES for p in ITEM_PARTS]


def input_names(user_fields: Iterable[str], *, samples: bool = True,
                label: bool = False) -> List[str]:
    """Names of the transformed features a model reads, in a stable order.

    `samples=False` leaves out the triplet samples (only the training loss reads them, so a
    serving signature does not need them); `label=True` adds LABEL.
    """
    names = [USER_ID] + list(user_fields) + [ITEM_ID, CATE_ID, BRAND_ID, PID, PRICE]
    for f in FEEDBACK_TYPES:
        names += [seq(f, p) for p in ITEM_PARTS] + [length(f)]
    names.append(MERGED_EVENTS)
    if samples:
        for f in FEEDBACK_TYPES:
            names += [sample(f, p) for p in ITEM_PARTS] + [sample_count(f)]
    if label:
        names.append(LABEL)
    return names


def input_specs(user_fields: Iterable[str], *, samples: bool = True, label: bool = False,
                max_seq_len: Optional[int] = None,
                num_samples: Optional[int] = None) -> Dict[str, "tf.TensorSpec"]:
    """tf.TensorSpec per feature of the contract above (batch dimension None).

    Sequence and sample widths are None (any T, K) unless given.
    """
    import tensorflow as tf  # local: this module stays importable without TensorFlow

    specs = {}
    for name in input_names(user_fields, samples=samples, label=label):
        if name == PRICE:
            specs[name] = tf.TensorSpec([None], tf.float32, name=name)
        elif name.endswith("_seq"):
            specs[name] = tf.TensorSpec([None, max_seq_len], tf.int64, name=name)
        elif name.endswith("_samples"):
            specs[name] = tf.TensorSpec([None, num_samples], tf.int64, name=name)
        else:
            specs[name] = tf.TensorSpec([None], tf.int64, name=name)
    return specs
