"""Builds one user's training examples from that user's events, without leakage.

For each impression (a click or unclick of a shown item) at time t, every history and every
triplet sample is drawn only from the user's events with timestamp < t — strictly earlier:
events in the same second, the impression itself included, are never seen. Events are first
put in a total order that does not depend on the order of the input files, so the output
(and the random triplet samples) are the same however the logs were sharded or shuffled.

The raw example (the ExampleGen's output, the input of Transform and of serving):

* `user_id`, `profile_<field>` for each profile field ('' when unknown or the user has no
  profile row), the target `item_id`, `cate_id`, `brand_id`, `pid` (bytes), and `price`
  (float, absent when the item table has none);
* `timestamp` and `label` (int64; label 1 = click);
* per feedback type f: `f_item_seq`, `f_cate_seq`, `f_brand_seq` — the most recent T earlier
  events of type f, oldest first, '' where the event had no such id; `f_full_len` — the
  number of all earlier events of type f; `f_item_samples`, `f_cate_samples`,
  `f_brand_samples` — min(K, f_full_len) events drawn uniformly without replacement from the
  whole earlier history of type f (not only the last T), oldest first, seeded by
  (seed, user, impression time, impression index) so that reruns give the same samples.
"""
import random
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from components.feedback_example_gen.readers import CLICK, Event, FEEDBACK_VALUES
from models import features as F

TRAIN, EVAL = "train", "eval"
TIMESTAMP = "timestamp"
PROFILE_PREFIX = "profile_"


class HistoryConfig(NamedTuple):
    max_seq_len: int = 100          # T
    num_samples: int = 5            # K
    seed: int = 0
    eval_start_timestamp: int = 2 ** 62  # impressions at or after this time form the eval split


def event_sort_key(event: Event) -> tuple:
    """A total order on a user's events that does not depend on input order."""
    return (event.timestamp, event.feedback, event.item_id, event.cate_id, event.brand_id,
            event.pid, not event.is_impression)


class _TypedHistory:
    """One feedback type's history as three parallel lists of encoded ids."""

    __slots__ = ("items", "cates", "brands")

    def __init__(self):
        self.items: List[bytes] = []
        self.cates: List[bytes] = []
        self.brands: List[bytes] = []

    def append(self, event: Event) -> None:
        self.items.append(event.item_id.encode())
        self.cates.append(event.cate_id.encode())
        self.brands.append(event.brand_id.encode())


def profile_feature(field: str) -> str:
    return PROFILE_PREFIX + field


def build_user_examples(user_id: str, events: Iterable[Event],
                        profile: Optional[Mapping[str, str]], profile_fields: Tuple[str, ...],
                        config: HistoryConfig) -> Iterator[Tuple[str, Dict[str, list]]]:
    """Yields (split, raw example as {feature: list of values}) for each impression.

    `profile_fields` is the full list of profile fields of the dataset, so that every example
    carries every field ('' when this user has no value or no profile row).
    """
    ordered = sorted(events, key=event_sort_key)
    user = user_id.encode()
    profile = profile or {}
    profile_values = {profile_feature(name): [profile.get(name, "").encode()]
                      for name in profile_fields}
    histories = {feedback: _TypedHistory() for feedback in FEEDBACK_VALUES}
    T, K = config.max_seq_len, config.num_samples
    start = 0
    impression_index = 0
    while start < len(ordered):
        # The events of one second: impressions in it see the history before it, then the
        # whole second joins the history.
        end = start
        timestamp = ordered[start].timestamp
        while end < len(ordered) and ordered[end].timestamp == timestamp:
            end += 1
        for event in ordered[start:end]:
            if not event.is_impression:
                continue
            rng = random.Random("%d|%s|%d|%d" % (config.seed, user_id, timestamp,
                                                 impression_index))
            impression_index += 1
            example = {
                F.USER_ID: [user],
                F.ITEM_ID: [event.item_id.encode()],
                F.CATE_ID: [event.cate_id.encode()],
                F.BRAND_ID: [event.brand_id.encode()],
                F.PID: [event.pid.encode()],
                TIMESTAMP: [timestamp],
                F.LABEL: [1 if event.feedback == CLICK else 0],
            }
            if event.price is not None:
                example[F.PRICE] = [float(event.price)]
            example.update(profile_values)
            for feedback, history in histories.items():
                n = len(history.items)
                example[F.seq(feedback, "item")] = history.items[-T:] if T else []
                example[F.seq(feedback, "cate")] = history.cates[-T:] if T else []
                example[F.seq(feedback, "brand")] = history.brands[-T:] if T else []
                example[F.full_length(feedback)] = [n]
                picks = sorted(rng.sample(range(n), min(K, n)))
                example[F.sample(feedback, "item")] = [history.items[i] for i in picks]
                example[F.sample(feedback, "cate")] = [history.cates[i] for i in picks]
                example[F.sample(feedback, "brand")] = [history.brands[i] for i in picks]
            yield (EVAL if timestamp >= config.eval_start_timestamp else TRAIN), example
        for event in ordered[start:end]:
            histories[event.feedback].append(event)
        start = end


INT64_FEATURES = frozenset([TIMESTAMP, F.LABEL] + [F.full_length(f) for f in FEEDBACK_VALUES])
FLOAT_FEATURES = frozenset([F.PRICE])


def to_tf_example(example: Dict[str, list]):
    """tf.train.Example of a raw example dict; every other feature is a bytes list."""
    import tensorflow as tf  # imported here: history building itself needs no TensorFlow

    proto = tf.train.Example()
    feature_map = proto.features.feature
    for name, values in example.items():
        feature = feature_map[name]
        if name in FLOAT_FEATURES:
            kind = feature.float_list
        elif name in INT64_FEATURES:
            kind = feature.int64_list
        else:
            kind = feature.bytes_list
        kind.SetInParent()  # an empty history is an empty list, not a missing feature
        kind.value.extend(values)
    return proto
