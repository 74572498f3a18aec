"""Dice, DIN's data-adaptive activation (Zhou et al., KDD'18, §4.3), shared by the models.

DIN's hidden layers use it (models/zoo/din.py); DUMN's prediction head can (ModelConfig
`prediction_activation='dice'`, models/layers.PredictionHead).
"""
import legacy_keras  # noqa: F401
import tensorflow as tf


class Dice(tf.keras.layers.Layer):
    """DIN's data-adaptive activation: f(s) = p(s) s + (1 - p(s)) alpha s,
    p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps)).

    E and Var are the batch moments per unit in training (over the positions where `mask` is
    True when a mask is given) and moving averages at inference, like batch normalisation
    without scale and shift. alpha is learned per unit, initialised to 0.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        units = int(input_shape[-1])
        self.alpha = self.add_weight("alpha", (units,), initializer="zeros")
        stat = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN)
        self.moving_mean = self.add_weight("moving_mean", (units,), initializer="zeros", **stat)
        self.moving_variance = self.add_weight("moving_variance", (units,), initializer="ones",
                                               **stat)
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        if training:
            flat = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
            if mask is None:
                weight = tf.ones_like(flat[:, :1])
            else:
                weight = tf.reshape(tf.cast(mask, inputs.dtype), [-1, 1])
            count = tf.maximum(tf.reduce_sum(weight), 1.0)
            mean = tf.reduce_sum(flat * weight, axis=0) / count
            variance = tf.reduce_sum(tf.square(flat - mean) * weight, axis=0) / count
            self.moving_mean.assign(self.momentum * self.moving_mean
                                    + (1 - self.momentum) * mean)
            self.moving_variance.assign(self.momentum * self.moving_variance
                                        + (1 - self.momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        p = tf.sigmoid((inputs - mean) * tf.math.rsqrt(variance + self.epsilon))
        return p * inputs + (1 - p) * self.alpha * inputs

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon)
        return config


def activation_layer(name: str, layer_name: str) -> tf.keras.layers.Layer:
    """'dice' (DIN), 'prelu' or 'relu' as a layer; call Dice with `training` (and a mask)."""
    if name == "dice":
        return Dice(name=layer_name)
    if name == "prelu":
        return tf.keras.layers.PReLU(name=layer_name)
    if name == "relu":
        return tf.keras.layers.ReLU(name=layer_name)
    raise ValueError("unknown activation %r; expected 'dice', 'prelu' or 'relu'" % (name,))


def call_activation(layer: tf.keras.layers.Layer, x: tf.Tensor, training=None, mask=None):
    """Applies an activation layer of `activation_layer`; Dice also gets `training` (batch or
    moving statistics) and `mask` (the positions its batch statistics count)."""
    if isinstance(layer, Dice):
        return layer(x, training=training, mask=mask)
    return layer(x)
