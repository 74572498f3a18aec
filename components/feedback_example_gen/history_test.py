"""Per-user example building: histories, samples, splits and, above all, no leakage."""
import random

import pytest

from components.feedback_example_gen.history import (EVAL, TRAIN, HistoryConfig, serialize_example,
                                                     build_user_examples, to_tf_example)
from components.feedback_example_gen.readers import Event
from models import features as F


def ev(ts, feedback, item="", cate="c", brand="b", pid="p1", impression=None, price=None):
    if impression is None:
        impression = bool(item) and feedback in ("click", "unclick")
    return Event("u1", item, cate, brand, ts, feedback, pid, impression, price)


def build(events, T=100, K=5, seed=0, eval_start=10 ** 12, profile=None, fields=(),
          train_start=0):
    config = HistoryConfig(max_seq_len=T, num_samples=K, seed=seed,
                           eval_start_timestamp=eval_start, train_start_timestamp=train_start)
    return list(build_user_examples("u1", events, profile, fields, config))


def test_hand_made_histories_and_ties():
    events = [
        ev(10, "click", "A"),
        ev(20, "like", "A"),
        ev(20, "unclick", "B"),      # same second as the like: must not see it
        ev(30, "click", "C"),
        ev(30, "dislike", "B"),
        ev(40, "unclick", "D"),
    ]
    examples = build(events)
    assert [ex[F.ITEM_ID] for _, ex in examples] == [[b"A"], [b"B"], [b"C"], [b"D"]]
    assert [ex[F.LABEL] for _, ex in examples] == [[1], [0], [1], [0]]
    first, second, third, fourth = (ex for _, ex in examples)
    for f in F.FEEDBACK_TYPES:
        assert first[F.seq(f, "item")] == [] and first[F.full_length(f)] == [0]
    # At t=20: only the click at t=10; the like in the same second is not seen.
    assert second[F.seq("click", "item")] == [b"A"]
    assert second[F.seq("like", "item")] == []
    # At t=30: click A, like A, unclick B; the dislike and the click at t=30 are not seen.
    assert third[F.seq("click", "item")] == [b"A"]
    assert third[F.seq("like", "item")] == [b"A"]
    assert third[F.seq("unclick", "item")] == [b"B"]
    assert third[F.seq("dislike", "item")] == []
    # At t=40: everything before.
    assert fourth[F.seq("click", "item")] == [b"A", b"C"]
    assert fourth[F.seq("dislike", "item")] == [b"B"]
    assert fourth[F.full_length("click")] == [2]


def test_impressions_before_the_training_window_form_no_example_but_stay_history():
    events = [ev(10, "click", "A"), ev(20, "unclick", "B"), ev(25, "like", "Z"),
              ev(30, "click", "C"), ev(40, "unclick", "D"), ev(50, "click", "E")]
    examples = build(events, train_start=30, eval_start=50)
    # The impressions at 10 and 20 are outside the window: no example of theirs.
    assert [(split, ex[F.ITEM_ID]) for split, ex in examples] == [
        (TRAIN, [b"C"]), (TRAIN, [b"D"]), (EVAL, [b"E"])]
    # Their events still make the histories of the examples in the window.
    first = examples[0][1]
    assert first[F.seq("click", "item")] == [b"A"] and first[F.seq("unclick", "item")] == [b"B"]
    assert first[F.seq("like", "item")] == [b"Z"] and first[F.full_length("unclick")] == [1]
    # The same examples (features and all) as without a window, less the two before it.
    unwindowed = {ex[F.ITEM_ID][0]: ex for _, ex in build(events, eval_start=50)}
    for _, ex in examples:
        for name in (F.seq("click", "item"), F.seq("unclick", "item"), F.full_length("click")):
            assert list(ex[name]) == list(unwindowed[ex[F.ITEM_ID][0]][name])


def test_most_recent_T_oldest_first_and_full_length():
    events = [ev(t, "click", "i%d" % t, cate="c%d" % t, brand="b%d" % t) for t in range(1, 8)]
    events.append(ev(100, "unclick", "X"))
    _, last = build(events, T=3)[-1]
    assert last[F.seq("click", "item")] == [b"i5", b"i6", b"i7"]
    assert last[F.seq("click", "cate")] == [b"c5", b"c6", b"c7"]
    assert last[F.seq("click", "brand")] == [b"b5", b"b6", b"b7"]
    assert last[F.full_length("click")] == [7]


def test_samples_come_from_the_whole_history_not_only_the_last_T():
    events = [ev(t, "like", "i%d" % t) for t in range(1, 41)]
    events.append(ev(100, "unclick", "X"))
    seen = set()
    for seed in range(30):
        _, example = build(events, T=2, K=5, seed=seed)[-1]
        samples = example[F.sample("like", "item")]
        assert len(samples) == 5 and len(set(samples)) == 5  # without replacement
        assert samples == sorted(samples, key=lambda s: int(s[1:]))  # oldest first
        seen.update(samples)
    assert any(int(s[1:]) <= 38 for s in seen)  # older than the last T=2
    assert len(seen) > 20


def test_fewer_events_than_K_gives_all_of_them():
    events = [ev(1, "dislike", "A"), ev(2, "dislike", "B"), ev(3, "click", "X")]
    _, example = build(events, K=5)[-1]
    assert example[F.sample("dislike", "item")] == [b"A", b"B"]
    assert example[F.sample("like", "item")] == []


def test_samples_deterministic_by_seed_and_varying_with_it():
    events = [ev(t, "unclick", "i%d" % t) for t in range(1, 60)] + [ev(99, "click", "T")]
    a = build(events, K=4, seed=1)[-1][1][F.sample("unclick", "item")]
    b = build(events, K=4, seed=1)[-1][1][F.sample("unclick", "item")]
    c = build(events, K=4, seed=2)[-1][1][F.sample("unclick", "item")]
    assert a == b and a != c


def test_output_does_not_depend_on_input_order():
    rng = random.Random(0)
    events = [ev(rng.randint(1, 50), rng.choice(["click", "unclick", "like", "dislike"]),
                 "i%d" % rng.randint(1, 9)) for _ in range(200)]
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert build(events, T=10, K=3, seed=4) == build(shuffled, T=10, K=3, seed=4)


def test_category_level_click_is_history_not_example():
    events = [ev(1, "click", item="", cate="c9", brand=""), ev(2, "unclick", "X")]
    examples = build(events)
    assert len(examples) == 1
    _, example = examples[0]
    assert example[F.seq("click", "item")] == [b""]
    assert example[F.seq("click", "cate")] == [b"c9"]


def test_time_split_and_profile_and_price():
    events = [ev(5, "click", "A", price=9.5), ev(15, "unclick", "B")]
    examples = build(events, eval_start=10, profile={"age_level": "3"},
                     fields=("age_level", "pvalue_level"))
    assert [split for split, _ in examples] == [TRAIN, EVAL]
    first = examples[0][1]
    assert first["profile_age_level"] == [b"3"] and first["profile_pvalue_level"] == [b""]
    assert first[F.PRICE] == [9.5]
    assert F.PRICE not in examples[1][1]
    no_profile = build(events, profile=None, fields=("age_level",))[0][1]
    assert no_profile["profile_age_level"] == [b""]


def test_no_leakage_property_on_random_logs():
    """Ids encode their event's time, so every value in an example can be checked."""
    rng = random.Random(42)
    for trial in range(20):
        events = []
        for _ in range(rng.randint(1, 150)):
            ts = rng.randint(1, 60)  # many ties in the same second
            feedback = rng.choice(["click", "unclick", "like", "dislike"])
            item = "" if rng.random() < 0.1 else "i%d" % ts
            events.append(ev(ts, feedback, item, cate="c%d" % ts, brand="b%d" % ts))
        for split, example in build(events, T=rng.randint(1, 8), K=rng.randint(1, 6),
                                    seed=trial):
            t = example["timestamp"][0]
            for f in F.FEEDBACK_TYPES:
                earlier = [e for e in events if e.feedback == f and e.timestamp < t]
                assert example[F.full_length(f)] == [len(earlier)]
                for part in F.ITEM_PARTS:
                    values = example[F.seq(f, part)] + example[F.sample(f, part)]
                    if part != "item":  # item ids can be empty (category-level events)
                        assert all(values)
                    for value in filter(None, values):
                        assert int(value[1:]) < t, (f, part, value, t)


def test_tf_example_types_and_empty_lists_present():
    examples = build([ev(1, "click", "A", price=2.0), ev(2, "unclick", "B")])
    proto = to_tf_example(examples[0][1])
    feature = proto.features.feature
    assert feature[F.LABEL].int64_list.value == [1]
    assert feature[F.PRICE].float_list.value == [2.0]
    assert feature[F.full_length("click")].int64_list.value == [0]
    assert feature[F.ITEM_ID].bytes_list.value == [b"A"]
    # An empty history is an empty bytes list, not a feature without a kind.
    assert feature[F.seq("like", "item")].WhichOneof("kind") == "bytes_list"
    assert list(feature[F.seq("like", "item")].bytes_list.value) == []


def test_direct_serialization_matches_the_protobuf_library():
    import tensorflow as tf
    rng = random.Random(3)
    events = [ev(rng.randint(1, 40), rng.choice(["click", "unclick", "like", "dislike"]),
                 "" if rng.random() < 0.2 else "item-%d-é" % rng.randint(1, 300),
                 price=rng.choice([None, 0.5, 1e6]))
              for _ in range(120)]
    examples = build(events, T=7, K=3, profile={"age": "3"}, fields=("age", "city"))
    assert examples
    for _, example in examples:
        example["timestamp"] = [-5, 2 ** 40]  # negative and multi-byte varints
        direct = tf.train.Example.FromString(serialize_example(example))
        assert direct == to_tf_example(example)


def decode_merged(example):
    """The (feedback, item) events MERGED_EVENTS references, oldest first."""
    out = []
    for code in example[F.MERGED_EVENTS]:
        kind, rank = F.merged_event_parts(code)
        f = F.FEEDBACK_TYPES[kind]
        history = example[F.seq(f, "item")]
        out.append((f, history[len(history) - 1 - rank]))
    return out


def test_merged_events_hand_made():
    events = [
        ev(10, "click", "A"),
        ev(20, "like", "A"),
        ev(25, "unclick", "B"),
        ev(30, "click", "C"),
        ev(40, "dislike", "B"),
        ev(50, "unclick", "D"),
    ]
    examples = [ex for _, ex in build(events, T=3)]
    # At t=25: click A (rank 0 of click: code 1 + 0), like A (rank 0 of like: 1 + 2).
    assert examples[1][F.MERGED_EVENTS] == [1, 3]
    # At t=50: the 3 most recent of click A, like A, unclick B, click C, dislike B.
    assert examples[-1][F.MERGED_EVENTS] == [F.merged_event_code(1, 0),
                                             F.merged_event_code(0, 0),
                                             F.merged_event_code(3, 0)]
    assert decode_merged(examples[-1]) == [("unclick", b"B"), ("click", b"C"),
                                           ("dislike", b"B")]
    assert examples[0][F.MERGED_EVENTS] == []


def test_merged_events_are_the_latest_T_of_all_types_property():
    """Distinct timestamps: the decoded references are exactly the T latest earlier events."""
    rng = random.Random(7)
    for trial in range(20):
        times = rng.sample(range(1, 400), rng.randint(1, 120))
        events = [ev(ts, rng.choice(["click", "unclick", "like", "dislike"]), "i%d" % ts)
                  for ts in times]
        T = rng.randint(1, 10)
        for _, example in build(events, T=T, seed=trial):
            t = example["timestamp"][0]
            earlier = sorted((e for e in events if e.timestamp < t), key=lambda e: e.timestamp)
            expected = [(e.feedback, e.item_id.encode()) for e in earlier[-T:]]
            assert decode_merged(example) == expected
            # The wire format carries them as int64.
            parsed = to_tf_example(example).features.feature[F.MERGED_EVENTS]
            assert list(parsed.int64_list.value) == example[F.MERGED_EVENTS]


def test_dislike_task_examples_are_every_event_on_a_shown_item_with_point_in_time_histories():
    from components.feedback_example_gen.history import mark_task_examples
    events = [
        ev(10, "click", "A"),
        ev(15, "click", "", cate="k"),   # category-level browsing: history only
        ev(20, "unclick", "B"),
        ev(25, "dislike", "B"),
        ev(25, "like", "A"),             # same second as the dislike: neither sees the other
        ev(30, "unclick", "C"),
    ]
    marked = [mark_task_examples(e, "dislike") for e in events]
    assert [e.is_impression for e in marked] == [True, False, True, True, True, True]
    assert [mark_task_examples(e, "ctr") for e in events] == events  # the reader's choice
    config = HistoryConfig(max_seq_len=10, num_samples=2, positive_feedback="dislike")
    examples = [ex for _, ex in build_user_examples("u1", marked, None, (), config)]
    assert [(ex[F.ITEM_ID], ex[F.LABEL]) for ex in examples] == [
        ([b"A"], [0]), ([b"B"], [0]), ([b"B"], [1]), ([b"A"], [0]), ([b"C"], [0])]
    by_label = {(ex[F.ITEM_ID][0], ex[F.LABEL][0], ex["timestamp"][0]): ex for ex in examples}
    dislike = by_label[(b"B", 1, 25)]
    # (Events of one second in event_sort_key's order: dislike before like.)
    # The dislike at 25 sees the unclick of B at 20 and the earlier clicks, not itself, not
    # the like of the same second, nothing later.
    assert dislike[F.seq("unclick", "item")] == [b"B"]
    assert dislike[F.seq("click", "item")] == [b"A", b""]
    assert dislike[F.seq("dislike", "item")] == [] and dislike[F.seq("like", "item")] == []
    last = examples[-1]
    assert last[F.seq("dislike", "item")] == [b"B"] and last[F.seq("like", "item")] == [b"A"]
