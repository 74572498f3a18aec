"""Builds one user's training examples from that user's events, without leakage.

For each impression (a click or unclick of a shown item; for the dislike task every
feedback event on a shown item, `mark_task_examples`) at time t, every history and every
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
  whole earlier history of type f (not only the last T), oldest first, drawn from a generator
  seeded by (seed, user) in the user's total event order, so that reruns give the same samples
  however the input was sharded.
* `merged_event_seq` (int64): the most recent T earlier events of all four types, oldest
  first, each a reference (type, rank within its type) into the histories above
  (feedback_contract.MERGED_EVENTS); events of one second in the total order below.
"""
import functools
import random
import struct
from typing import (Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple)

from components.feedback_example_gen.readers import CLICK, Event, FEEDBACK_VALUES
import feedback_contract as F

TRAIN, EVAL = "train", "eval"
TIMESTAMP = F.TIMESTAMP
profile_feature = F.profile_feature


class HistoryConfig(NamedTuple):
    max_seq_len: int = 100          # T
    num_samples: int = 5            # K
    seed: int = 0
    eval_start_timestamp: int = 2 ** 62  # impressions at or after this time form the eval split
    # Impressions before this time form no example (a rolling training window,
    # --window-days); like every event they still join the histories of later ones.
    train_start_timestamp: int = 0
    # The feedback labelled 1 (feedback_contract.TASKS): click for CTR, dislike for the
    # dislike task, whose examples (events marked is_impression) the reader chose.
    positive_feedback: str = CLICK


def mark_task_examples(event: Event, task: str) -> Event:
    """The event with `is_impression` (= forms an example) set for `task`: an event on a shown
    item (it has an item id) of one of the task's example feedback types."""
    is_example = bool(event.item_id) and event.feedback in F.task_example_feedback(task)
    return event if is_example == event.is_impression else event._replace(is_impression=is_example)


def event_sort_key(event: Event) -> tuple:
    """A total order on a user's events that does not depend on input order."""
    return (event.timestamp, event.feedback, event.item_id, event.cate_id, event.brand_id,
            event.pid, not event.is_impression)


class Ids(Sequence):
    """A read-only view of some of a history's ids (bytes), with their BytesList wire payload.

    Each id was encoded once, when its event joined the history; serialising a history of T
    ids is then one bytes join (`wire`) rather than T encodings, and the id values themselves
    are only materialised when someone reads them (tests, `to_tf_example`).
    """

    __slots__ = ("_ids", "_wire", "_positions", "entries")

    def __init__(self, ids: List[bytes], wire: List[bytes], positions: Sequence[int]):
        self._ids, self._wire, self._positions = ids, wire, positions
        # feature name -> serialized map entry, filled by serialize_example: a view shared by
        # several examples (a history unchanged between impressions) is serialized once.
        self.entries: Optional[Dict[str, bytes]] = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if isinstance(self._positions, range):
            p = self._positions
            return b"".join(wire[p.start:p.stop])
        return b"".join([wire[i] for i in self._positions])

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._ids[i] for i in self._positions[index]]
        return self._ids[self._positions[index]]

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __add__(self, other) -> list:
        return list(self) + list(other)

    def __repr__(self) -> str:
        return "Ids(%r)" % list(self)


class UserConstant(list):
    """A feature value that is the same in all of a user's examples (user id, profile fields).

    A list like any other value, plus the cache serialize_example fills, so the feature is
    serialized once per user rather than once per impression.
    """

    __slots__ = ("entries",)

    def __init__(self, values):
        super().__init__(values)
        self.entries: Optional[Dict[str, bytes]] = None


class _TypedHistory:
    """One feedback type's history: per part (item, cate, brand) the ids and their encodings.

    Views of a contiguous range are cached until the history grows: a user's like or dislike
    history often stays the same over many impressions, and then so do its recent-T views.
    """

    __slots__ = ("ids", "wire", "_range_views")

    def __init__(self):
        self.ids: Dict[str, List[bytes]] = {part: [] for part in F.ITEM_PARTS}
        self.wire: Dict[str, List[bytes]] = {part: [] for part in F.ITEM_PARTS}
        self._range_views: Dict[Tuple[str, int, int], Ids] = {}

    def __len__(self) -> int:
        return len(self.ids["item"])

    def append(self, event: Event) -> None:
        for part, value in zip(F.ITEM_PARTS, (event.item_id, event.cate_id, event.brand_id)):
            encoded = value.encode()
            self.ids[part].append(encoded)
            self.wire[part].append(_field(1, encoded))
        self._range_views.clear()

    def view(self, part: str, positions: Sequence[int]) -> Ids:
        return Ids(self.ids[part], self.wire[part], positions)

    def range_view(self, part: str, start: int, stop: int) -> Ids:
        key = (part, start, stop)
        view = self._range_views.get(key)
        if view is None:
            view = self._range_views[key] = self.view(part, range(start, stop))
        return view


SEQ_NAMES = {(f, p): F.seq(f, p) for f in FEEDBACK_VALUES for p in F.ITEM_PARTS}
SAMPLE_NAMES = {(f, p): F.sample(f, p) for f in FEEDBACK_VALUES for p in F.ITEM_PARTS}
FULL_LENGTH_NAMES = {f: F.full_length(f) for f in FEEDBACK_VALUES}


def build_user_examples(user_id: str, events: Iterable[Event],
                        profile: Optional[Mapping[str, str]], profile_fields: Tuple[str, ...],
                        config: HistoryConfig) -> Iterator[Tuple[str, Dict[str, list]]]:
    """Yields (split, raw example as {feature: list of values}) for each impression.

    `profile_fields` is the full list of profile fields of the dataset, so that every example
    carries every field ('' when this user has no value or no profile row).
    """
    ordered = sorted(events, key=event_sort_key)
    user_value = UserConstant([user_id.encode()])
    profile = profile or {}
    profile_values = {profile_feature(name): UserConstant([profile.get(name, "").encode()])
                      for name in profile_fields}
    histories = {feedback: _TypedHistory() for feedback in FEEDBACK_VALUES}
    T, K = config.max_seq_len, config.num_samples
    # One generator per user, seeded by (seed, user), drawn from in the user's total event
    # order: samples do not depend on which worker or bundle ran, and seeding once per user
    # rather than per impression saves ~10 us per example (Mersenne Twister set-up).
    rng = random.Random("%d|%s" % (config.seed, user_id))
    # Every earlier event of any type, in the order it joined its history: (type index,
    # position in that type's history), for the time-ordered merged sequence.
    joined: List[Tuple[int, int]] = []
    type_index = {feedback: i for i, feedback in enumerate(FEEDBACK_VALUES)}
    start = 0
    while start < len(ordered):
        # The events of one second: impressions in it see the history before it, then the
        # whole second joins the history.
        end = start
        timestamp = ordered[start].timestamp
        while end < len(ordered) and ordered[end].timestamp == timestamp:
            end += 1
        merged = None  # the same for every impression of this second; built on first use
        for event in ordered[start:end]:
            if not event.is_impression or timestamp < config.train_start_timestamp:
                continue
            example = {
                F.USER_ID: user_value,
                F.ITEM_ID: [event.item_id.encode()],
                F.CATE_ID: [event.cate_id.encode()],
                F.BRAND_ID: [event.brand_id.encode()],
                F.PID: [event.pid.encode()],
                TIMESTAMP: [timestamp],
                F.LABEL: [1 if event.feedback == config.positive_feedback else 0],
            }
            if event.price is not None:
                example[F.PRICE] = [float(event.price)]
            example.update(profile_values)
            if merged is None:
                counts = [len(histories[f]) for f in FEEDBACK_VALUES]
                merged = [F.merged_event_code(t, counts[t] - 1 - position)
                          for t, position in joined[-T:]]
            example[F.MERGED_EVENTS] = merged
            for feedback, history in histories.items():
                n = len(history)
                example[FULL_LENGTH_NAMES[feedback]] = [n]
                first_recent = n - T if n > T else 0
                # A short history is sampled whole (a cached view, like the recent-T one).
                picks = sorted(rng.sample(range(n), K)) if n > K else None
                for part in F.ITEM_PARTS:
                    example[SEQ_NAMES[feedback, part]] = history.range_view(part, first_recent, n)
                    example[SAMPLE_NAMES[feedback, part]] = (
                        history.range_view(part, 0, n) if picks is None
                        else history.view(part, picks))
            yield (EVAL if timestamp >= config.eval_start_timestamp else TRAIN), example
        for event in ordered[start:end]:
            history = histories[event.feedback]
            joined.append((type_index[event.feedback], len(history)))
            history.append(event)
        start = end


INT64_FEATURES = frozenset([TIMESTAMP, F.LABEL, F.MERGED_EVENTS]
                           + [F.full_length(f) for f in FEEDBACK_VALUES])
FLOAT_FEATURES = frozenset([F.PRICE])


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 values are encoded as their two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths and small ints are looked up: serialisation is hot, varint loops in Python are not.
_SMALL = 1 << 14
_SMALL_VARINTS = [_encode_varint(i) for i in range(_SMALL)]
# Tags of length-delimited fields 1, 2 and 3: (field << 3) | wire type 2.
_TAG = [b"", b"\x0a", b"\x12", b"\x1a"]


def _varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if 0 <= value < _SMALL else _encode_varint(value)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) with field number 1, 2 or 3."""
    n = len(payload)
    return _TAG[tag] + (_SMALL_VARINTS[n] if n < _SMALL else _encode_varint(n)) + payload


@functools.lru_cache(maxsize=None)
def _key(name: str) -> bytes:
    return _field(1, name.encode())


_CACHEABLE = (Ids, UserConstant)


def serialize_example(example: Dict[str, list]) -> bytes:
    """The wire bytes of the tf.train.Example of a raw example dict, built directly.

    Equivalent to `to_tf_example(example).SerializeToString()` (tests parse both back and
    compare) but about ten times faster, which makes the ExampleGen's per-example cost a
    fraction of Beam's. Wire layout: Example.features(1) > Features.feature(1, map entry:
    key 1, value 2) > Feature.{bytes_list 1, float_list 2, int64_list 3} > value(1), with
    floats and int64s packed.
    """
    small, tag = _SMALL_VARINTS, _TAG
    pieces = []
    for name, values in example.items():
        cacheable = isinstance(values, _CACHEABLE)
        if cacheable and values.entries is not None and name in values.entries:
            pieces.append(values.entries[name])
            continue
        if cacheable and type(values) is Ids:
            payload = values.wire
            n = len(payload)
            feature = b"\x0a" + (small[n] if n < _SMALL else _encode_varint(n)) + payload
        elif name in FLOAT_FEATURES:
            packed = struct.pack("<%df" % len(values), *values)
            feature = _field(2, _field(1, packed) if values else b"")
        elif name in INT64_FEATURES:
            packed = b"".join([_varint(v) for v in values])
            feature = _field(3, _field(1, packed) if values else b"")
        else:
            feature = _field(1, b"".join([_field(1, v) for v in values]))
        n = len(feature)
        entry = _key(name) + tag[2] + (small[n] if n < _SMALL else _encode_varint(n)) + feature
        n = len(entry)
        framed = tag[1] + (small[n] if n < _SMALL else _encode_varint(n)) + entry
        if cacheable:
            if values.entries is None:
                values.entries = {}
            values.entries[name] = framed
        pieces.append(framed)
    return _field(1, b"".join(pieces))


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
