"""DIN baseline (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD'18).

Same input contract and training loop as DUMN (models/base.py), selected by
`ModelConfig(model='din')`. DIN reads the user profile, the target item, pid, price and the
CLICK history only (its behaviour sequence); the other histories and the triplet samples are
ignored.

* Embedding: the same FeatureEmbedding as DUMN (an element is Concat(item, cate, brand), 3E).
* Local activation unit (DIN §4.3, Fig. 2): for each history element h_j and the target t,
  a_j = MLP(Concat(h_j, t, h_j - t, h_j * t)), hidden `din_attention_units` (80, 40) with the
  configured activation, then a linear unit. As in the DIN paper the weights are NOT
  normalised by a softmax ("to reserve the intensity of user interests"); padded positions
  get weight 0, so an empty history pools to 0.
* Interest = sum_j a_j h_j. DNN on Concat(e_user, e_item, interest, e_pid, price) with
  `din_hidden_units` (200, 80) and Dice (DIN §4.3) or PReLU, then a sigmoid unit.

Dice's statistics are computed over the real positions only (the mask), with moving averages
for inference, so padding never influences the output.
"""
import legacy_keras  # noqa: F401
import tensorflow as tf

from models.base import CtrModel
from models.config import ModelConfig


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


def _activation(name: str, layer_name: str) -> tf.keras.layers.Layer:
    if name == "dice":
        return Dice(name=layer_name)
    if name == "prelu":
        return tf.keras.layers.PReLU(name=layer_name)
    raise ValueError("unknown DIN activation %r" % (name,))


class LocalActivationUnit(tf.keras.layers.Layer):
    """DIN's attention: weights a_j = MLP(Concat(h_j, t, h_j - t, h_j * t)), masked, no softmax.

    Returns (interest [B, D] = sum_j a_j h_j, weights [B, T]).
    """

    def __init__(self, hidden_units=(80, 40), activation: str = "dice", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation_name = activation
        self.dense = [tf.keras.layers.Dense(u, name="dense_%d" % i)
                      for i, u in enumerate(self.hidden_units)]
        self.activations = [_activation(activation, "activation_%d" % i)
                            for i in range(len(self.hidden_units))]
        self.score = tf.keras.layers.Dense(1, name="score")

    def call(self, history, mask, target, training=None):
        """history [B, T, D], mask bool [B, T], target [B, D]."""
        t = tf.broadcast_to(target[:, None, :], tf.shape(history))
        x = tf.concat([history, t, history - t, history * t], axis=-1)
        for dense, act in zip(self.dense, self.activations):
            x = dense(x)
            x = act(x, training=training, mask=mask) if isinstance(act, Dice) else act(x)
        weights = self.score(x)[..., 0] * tf.cast(mask, x.dtype)  # padding gets no weight
        return tf.einsum("bt,btd->bd", weights, history), weights

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, activation=self.activation_name)
        return config


class DinModel(CtrModel):
    """DIN on the project's input contract; see the module docstring."""

    MODEL_KIND = "din"

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.attention = LocalActivationUnit(c.din_attention_units, c.din_activation,
                                             name="local_activation_unit")
        self.hidden = [tf.keras.layers.Dense(u, name="dnn_%d" % i)
                       for i, u in enumerate(c.din_hidden_units)]
        self.hidden_activations = [_activation(c.din_activation, "dnn_activation_%d" % i)
                                   for i in range(len(c.din_hidden_units))]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")

    def forward(self, inputs, training=False, triplet_seed=None):
        emb = self.embedding(inputs, feedback_types=("click",))
        interest, weights = self.attention(emb["sequences"]["click"], emb["masks"]["click"],
                                           emb["item"], training=training)
        x = tf.concat([emb["user"], emb["item"], interest, emb["pid"], emb["price"]], axis=-1)
        for dense, act in zip(self.hidden, self.hidden_activations):
            x = dense(x)
            x = act(x, training=training) if isinstance(act, Dice) else act(x)
        logit = self.output_layer(x)[:, 0]
        return {"logit": logit, "probability": tf.sigmoid(logit), "aux_loss": tf.constant(0.0),
                "triplet_loss": tf.constant(0.0), "memory_updates": {},
                "interest": interest, "attention_weights": weights}


def build_din(config: ModelConfig) -> DinModel:
    """A new, uncompiled DinModel."""
    return DinModel(config)
