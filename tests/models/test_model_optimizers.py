"""LazyAdam: Adam on the rows of a sparse gradient, nothing elsewhere."""
import numpy as np
import tensorflow as tf

from models.optimizers import LazyAdam, make_optimizer
from models.testing_utils import tiny_config


def numpy_lazy_adam(table, steps, lr=0.1, b1=0.9, b2=0.999, eps=1e-7):
    table = table.copy()
    m, v = np.zeros_like(table), np.zeros_like(table)
    for t, (rows, grads) in enumerate(steps, start=1):
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        summed = {}
        for r, g in zip(rows, grads):  # duplicate ids are summed first
            summed[r] = summed.get(r, 0) + g
        for r, g in summed.items():
            m[r] = b1 * m[r] + (1 - b1) * g
            v[r] = b2 * v[r] + (1 - b2) * g * g
            table[r] -= alpha * m[r] / (np.sqrt(v[r]) + eps)
    return table


def test_sparse_updates_touch_only_the_batch_rows():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(10, 3)).astype(np.float32)
    table = tf.Variable(initial)
    dense = tf.Variable(rng.normal(size=(3,)).astype(np.float32))
    optimizer = LazyAdam(learning_rate=0.1)
    steps = [([1, 4, 1], rng.normal(size=(3, 3)).astype(np.float32)),
             ([2, 4], rng.normal(size=(2, 3)).astype(np.float32))]
    for rows, grads in steps:
        sparse = tf.IndexedSlices(tf.constant(grads), tf.constant(rows), tf.constant([10, 3]))
        optimizer.apply_gradients([(sparse, table), (tf.ones(3), dense)])
    np.testing.assert_allclose(table.numpy(), numpy_lazy_adam(initial, steps), rtol=1e-5, atol=1e-6)
    untouched = [0, 3, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(table.numpy()[untouched], initial[untouched])
    # Row 1 had momentum after step 1 but no gradient in step 2: lazy Adam leaves it alone
    # (dense Adam would keep moving it).
    np.testing.assert_allclose(table.numpy()[1], numpy_lazy_adam(initial, steps[:1])[1], rtol=1e-5, atol=1e-6)


def test_dense_gradients_match_keras_adam():
    x0 = np.array([1.0, -2.0, 3.0], np.float32)
    a, b = tf.Variable(x0), tf.Variable(x0)
    lazy, adam = LazyAdam(0.01), tf.keras.optimizers.Adam(0.01)
    for g in ([0.5, -1.0, 2.0], [0.1, 0.2, -0.3]):
        lazy.apply_gradients([(tf.constant(g), a)])
        adam.apply_gradients([(tf.constant(g), b)])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_make_optimizer_uses_the_config():
    optimizer = make_optimizer(tiny_config(learning_rate=0.003))
    assert isinstance(optimizer, LazyAdam)
    assert np.isclose(float(optimizer.learning_rate.numpy()), 0.003)
    plain = make_optimizer(tiny_config(optimizer="adam"))
    assert type(plain) is tf.keras.optimizers.Adam
