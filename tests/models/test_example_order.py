"""Training batches that do not depend on the order the pipeline wrote the examples in."""
import os

import numpy as np
import pytest
import tensorflow as tf

from models import example_order

T = 4
SPEC = {
    "label": tf.io.FixedLenFeature([], tf.int64),
    "user_id": tf.io.FixedLenFeature([], tf.int64),
    "click_item_seq": tf.io.FixedLenFeature([T], tf.int64),
    "price": tf.io.FixedLenFeature([], tf.float32),
}


def random_examples(n, seed):
    rng = np.random.default_rng(seed)
    rows = [{"label": int(rng.integers(0, 2)), "user_id": int(rng.integers(0, 5)),
             "click_item_seq": rng.integers(0, 4, size=T).tolist(),
             "price": float(rng.choice([0.5, -1.25, 2.0]))} for _ in range(n)]
    rows += rows[:7]  # exact duplicates are interchangeable
    return rows


def serialize(row):
    feature = {
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[row["label"]])),
        "user_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[row["user_id"]])),
        "click_item_seq": tf.train.Feature(int64_list=tf.train.Int64List(
            value=row["click_item_seq"])),
        "price": tf.train.Feature(float_list=tf.train.FloatList(value=[row["price"]])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(folder, rows, num_shards):
    os.makedirs(folder)
    paths = []
    for shard in range(num_shards):
        path = os.path.join(folder, "part-%05d.gz" % shard)
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for row in rows[shard::num_shards]:
                writer.write(serialize(row))
        paths.append(path)
    return paths


def test_loaded_columns_hold_every_value_narrowed_to_int32(tmp_path):
    rows = random_examples(50, seed=1)
    columns, labels = example_order.in_memory_columns(
        write_shards(str(tmp_path / "a"), rows, 1), SPEC, "label")
    assert columns["click_item_seq"].dtype == np.int32 and columns["price"].dtype == np.float32
    np.testing.assert_array_equal(labels, [r["label"] for r in rows])
    np.testing.assert_array_equal(columns["click_item_seq"], [r["click_item_seq"] for r in rows])
    np.testing.assert_array_equal(columns["price"], np.float32([r["price"] for r in rows]))
    assert "label" not in columns


def test_sorted_split_is_the_same_however_the_files_were_cut_and_ordered(tmp_path):
    rows = random_examples(300, seed=2)
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    one = example_order.sorted_columns(*example_order.in_memory_columns(
        write_shards(str(tmp_path / "one"), rows, 1), SPEC, "label"))
    three = example_order.sorted_columns(*example_order.in_memory_columns(
        write_shards(str(tmp_path / "three"), shuffled, 3), SPEC, "label"))
    np.testing.assert_array_equal(one[1], three[1])
    for name in one[0]:
        np.testing.assert_array_equal(one[0][name], three[0][name])
    # And the seeded batches drawn from them are the same, batch by batch.
    draw = lambda split: list(example_order.batches(*split, batch_size=64, seed=5,
                                                    shuffle=True, repeat=True).take(12))
    for (fa, la), (fb, lb) in zip(draw(one), draw(three)):
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
        for name in fa:
            np.testing.assert_array_equal(fa[name].numpy(), fb[name].numpy())


def test_row_digests_read_every_field_and_nothing_else():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=6)
    columns = {"seq": rng.integers(0, 9, size=(6, 3)).astype(np.int32),
               "price": rng.normal(size=(6,)).astype(np.float32)}
    base = example_order.row_digests(columns, labels)
    assert len({tuple(d) for d in base}) == 6
    for name, index in [("seq", (2, 1)), ("price", (4,))]:
        changed = {key: value.copy() for key, value in columns.items()}
        changed[name][index] += 1
        moved = example_order.row_digests(changed, labels)
        row = index[0]
        assert not np.array_equal(moved[row], base[row]), name
        np.testing.assert_array_equal(np.delete(moved, row, axis=0), np.delete(base, row, axis=0))
    flipped = labels.copy()
    flipped[0] = 1 - flipped[0]
    assert not np.array_equal(example_order.row_digests(columns, flipped)[0], base[0])


def test_canonical_order_depends_on_the_contents_alone():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 2, size=40)
    columns = {"seq": rng.integers(0, 1000, size=(40, 2)).astype(np.int32)}
    columns["seq"][10:15] = columns["seq"][0]  # duplicates of row 0 ...
    labels[10:15] = labels[0]                  # ... in every field
    permutation = rng.permutation(40)
    a = example_order.sorted_columns(columns, labels)
    b = example_order.sorted_columns({"seq": columns["seq"][permutation]}, labels[permutation])
    np.testing.assert_array_equal(a[0]["seq"], b[0]["seq"])
    np.testing.assert_array_equal(a[1], b[1])
    # The six copies sit side by side.
    order = example_order.canonical_order(columns, labels).tolist()
    positions = sorted(order.index(row) for row in [0, 10, 11, 12, 13, 14])
    assert positions == list(range(positions[0], positions[0] + 6))


def test_batches_cover_each_example_once_per_pass_and_follow_the_seed():
    n, batch = 100, 25
    columns = {"x": np.arange(n, dtype=np.int32)[:, None]}
    labels = np.arange(n) % 2
    first = [f["x"].numpy()[:, 0] for f, _ in
             example_order.batches(columns, labels, batch, seed=1, shuffle=True,
                                   repeat=True).take(8)]
    assert first[0].dtype == np.int64
    for epoch in (first[:4], first[4:]):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(n))
    assert not np.array_equal(np.concatenate(first[:4]), np.concatenate(first[4:]))
    again = [f["x"].numpy()[:, 0] for f, _ in
             example_order.batches(columns, labels, batch, seed=1, shuffle=True,
                                   repeat=True).take(8)]
    other = [f["x"].numpy()[:, 0] for f, _ in
             example_order.batches(columns, labels, batch, seed=2, shuffle=True,
                                   repeat=True).take(8)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    # Smaller than one batch: the whole split each time, not an empty dataset.
    small = list(example_order.batches({"x": columns["x"][:10]}, labels[:10], batch, seed=1,
                                       shuffle=True, repeat=True).take(2))
    assert [len(lab) for _, lab in small] == [10, 10]


def test_too_large_or_variable_length_splits_are_left_to_streaming(tmp_path):
    paths = write_shards(str(tmp_path / "a"), random_examples(40, seed=3), 2)
    assert example_order.in_memory_columns(paths, SPEC, "label", max_bytes=100) is None
    ragged = dict(SPEC, click_item_seq=tf.io.VarLenFeature(tf.int64))
    assert example_order.in_memory_columns(paths, ragged, "label") is None


@pytest.mark.parametrize("bad", [2 ** 31, -(2 ** 31) - 1])
def test_values_beyond_int32_stay_int64(tmp_path, bad):
    rows = random_examples(5, seed=4)
    rows[0]["user_id"] = bad
    columns, _ = example_order.in_memory_columns(
        write_shards(str(tmp_path / "a"), rows, 1), SPEC, "label")
    assert columns["user_id"].dtype == np.int64 and columns["user_id"][0] == bad
