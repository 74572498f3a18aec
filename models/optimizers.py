"""Optimizers for models with large sparse embedding tables.

tf.keras Adam (tf_keras 2.16) handles a tf.IndexedSlices gradient by decaying the moments of
the WHOLE table (`m.assign_add(-m * (1 - beta_1))`) and then updating every row of the
variable: O(vocabulary) work per step, which dominates a step with Taobao-sized tables
(0.8M items, 1.14M users). `LazyAdam` keeps Adam's update for dense gradients and, for
sparse ones, updates moments and rows only where the batch has ids (as TF Addons' LazyAdam
and PyTorch's SparseAdam do). The paper's optimizer is Adam with lr 0.005; lazy moment decay
is the standard way to run Adam on sparse embeddings and is recorded in docs/model.md.
"""
import legacy_keras  # noqa: F401
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="dumn")
class LazyAdam(tf.keras.optimizers.Adam):
    """Adam whose sparse (IndexedSlices) updates touch only the rows of the batch.

    The base optimizer has already summed duplicate indices (`_deduplicate_sparse_grad`)
    before `update_step`, so the scatter updates below see unique indices.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="LazyAdam", **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam does not support amsgrad")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, local_step)) / (1 - tf.pow(beta_1, local_step))
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        indices, values = gradient.indices, tf.cast(gradient.values, dtype)
        m_rows = beta_1 * tf.gather(m, indices) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, indices) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, indices))
        v.scatter_update(tf.IndexedSlices(v_rows, indices))
        variable.scatter_sub(tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), indices))


def make_optimizer(config) -> tf.keras.optimizers.Optimizer:
    """The optimizer named by `config.optimizer` with `config.learning_rate` (paper: 0.005)."""
    if config.optimizer == "lazy_adam":
        return LazyAdam(learning_rate=config.learning_rate)
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=config.learning_rate)
    raise ValueError("unknown optimizer %r" % (config.optimizer,))
