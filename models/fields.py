"""The feature-field view of the input contract, for the field-interaction baselines.

Wide&Deep, PNN, DeepFM and AutoInt model interactions between FIELDS, one E-wide embedding per
categorical feature. `FieldEmbedding` turns the project's shared embedding tables
(models/layers.FeatureEmbedding, §3.2 of the DUMN paper) into that view, so every model reads
the same rows:

    user id, each profile field, item, cate, brand, pid, price (v_price * price, AutoInt's
    numeric-field embedding, §4.1 of Song et al. 2019), and for each pooled feedback history
    the masked mean of its item, cate and brand embeddings (three fields per history).

The DUMN paper lists Wide&Deep, PNN and DeepFM as "non-sequence" methods; they still see the
click history here, mean-pooled into fields, as the DIN paper's base model and the public
Taobao benchmarks (DeepCTR, FuxiCTR/BARS) give it to them: a baseline without the history
would be weaker than the ones it is compared against. `<kind>_history_types` sets which
histories (none: the strictly non-sequence reading).

`DeepTower` is the multi-layer perceptron each of these models ends in; `LinearTerms` the
first-order (wide) part; `recency_ranks` the position feature of the sequence models.
"""
from typing import Dict, List, Sequence, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.dice import activation_layer, call_activation


def recency_ranks(lengths, width):
    """[B] lengths -> int [B, width]: 1 + rank from the most recent real event (1 = latest),
    0 in the padding (histories are oldest first)."""
    positions = tf.range(width, dtype=tf.int64)[None, :]
    lengths = tf.cast(lengths, tf.int64)[:, None]
    return tf.where(positions < lengths, lengths - positions, tf.zeros_like(positions))


def masked_mean(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, T, D], bool [B, T] -> [B, D]: mean over the real positions (0 for none)."""
    weight = tf.cast(mask, sequence.dtype)
    total = tf.einsum("bt,btd->bd", weight, sequence)
    return total / tf.maximum(tf.reduce_sum(weight, axis=1, keepdims=True), 1.0)


class FieldEmbedding(tf.keras.layers.Layer):
    """Fields [B, N, E] from the shared FeatureEmbedding's output (see the module docstring).

    `field_names` lists the N fields in order. Price becomes a field through a learned vector
    (AutoInt's e = v x for a numeric feature)."""

    def __init__(self, embedding_dim: int, user_fields: Sequence[str],
                 history_types: Sequence[str] = ("click",), **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.user_fields = tuple(user_fields)
        self.history_types = tuple(history_types)
        self.field_names: Tuple[str, ...] = (
            (F.USER_ID,) + tuple(user_fields) + tuple(F.ITEM_PARTS) + (F.PID, F.PRICE)
            + tuple("%s_%s_mean" % (f, p) for f in self.history_types for p in F.ITEM_PARTS))

    def build(self, input_shape):
        self.price_vector = self.add_weight("price_vector", (self.embedding_dim,),
                                            initializer="glorot_uniform")
        super().build(input_shape)

    @property
    def num_fields(self) -> int:
        return len(self.field_names)

    def call(self, embedded: Dict[str, object]) -> tf.Tensor:
        """`embedded`: FeatureEmbedding(inputs, feedback_types=history_types)'s output."""
        e = self.embedding_dim
        user = embedded["user"]  # Concat(user id, profile fields), E each
        fields: List[tf.Tensor] = [user[:, i * e:(i + 1) * e]
                                   for i in range(user.shape[-1] // e)]
        item = embedded["item"]  # Concat(item, cate, brand)
        fields += [item[:, i * e:(i + 1) * e] for i in range(3)]
        fields.append(embedded["pid"])
        fields.append(embedded["price"] * self.price_vector[None, :])
        for f in self.history_types:
            pooled = masked_mean(embedded["sequences"][f], embedded["masks"][f])
            fields += [pooled[:, i * e:(i + 1) * e] for i in range(3)]
        return tf.stack(fields, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, user_fields=list(self.user_fields),
                      history_types=list(self.history_types))
        return config


class LinearTerms(tf.keras.layers.Layer):
    """The first-order (linear, logistic-regression) part: b + sum of one weight per field.

    One scalar weight per id of each table (its own 1-wide tables: the wide part of
    Wide&Deep and FM's first-order term w_i x_i have weights of their own, not embedding
    rows), a weight on price, and for each pooled history the mean of its items', cates' and
    brands' weights, the linear counterpart of FieldEmbedding's pooled fields. Index 0 (no
    value / padding) has weight 0. Returns [B]."""

    def __init__(self, vocab_sizes: Dict[str, int], user_fields: Dict[str, int],
                 history_types: Sequence[str] = ("click",), **kwargs):
        super().__init__(**kwargs)
        self.vocab_sizes = dict(vocab_sizes)
        self.user_fields = dict(user_fields)
        self.history_types = tuple(history_types)
        self.tables = {name: tf.keras.layers.Embedding(size, 1, embeddings_initializer="zeros",
                                                       name="linear_" + name)
                       for name, size in list(self.vocab_sizes.items())
                       + list(self.user_fields.items())}
        self.price_weight = tf.keras.layers.Dense(1, use_bias=True, name="linear_price_and_bias")

    def id_tables(self) -> Dict[str, tf.keras.layers.Embedding]:
        """The weight tables by the vocabulary they index (CtrModel.id_tables)."""
        return dict(self.tables)

    def weight(self, name: str, ids: tf.Tensor) -> tf.Tensor:
        """Weights of ids (any shape) in table `name`, 0 for index 0."""
        w = self.tables[name](ids)[..., 0]
        return w * tf.cast(ids > 0, w.dtype)

    def call(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        total = self.price_weight(tf.reshape(tf.cast(inputs[F.PRICE], tf.float32), [-1, 1]))[:, 0]
        total += self.weight("user", inputs[F.USER_ID]) + self.weight("pid", inputs[F.PID])
        for name in self.user_fields:
            total += self.weight(name, inputs[name])
        for part, key in F.TARGET_ITEM_PARTS.items():
            total += self.weight(part, inputs[key])
        for f in self.history_types:
            lengths = inputs[F.length(f)]
            width = tf.shape(inputs[F.seq(f, F.ITEM_PARTS[0])])[1]
            mask = tf.cast(tf.sequence_mask(lengths, maxlen=width), tf.float32)
            count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            for part in F.ITEM_PARTS:
                total += tf.reduce_sum(self.weight(part, inputs[F.seq(f, part)]) * mask,
                                       axis=1) / count
        return total

    def get_config(self):
        config = super().get_config()
        config.update(vocab_sizes=self.vocab_sizes, user_fields=self.user_fields,
                      history_types=list(self.history_types))
        return config


def vocab_sizes(config) -> Dict[str, int]:
    """{table: rows} of a ModelConfig, for LinearTerms."""
    return {"user": config.user_vocab_size, "item": config.item_vocab_size,
            "cate": config.cate_vocab_size, "brand": config.brand_vocab_size,
            "pid": config.pid_vocab_size}


class DeepTower(tf.keras.layers.Layer):
    """The deep part: Dense layers of `units` with `activation` ('relu', 'dice', 'prelu'),
    dropout `dropout` on each hidden layer's output in training, then one linear unit."""

    def __init__(self, units: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(units)
        self.activation_name = activation
        self.dropout_rate = dropout
        self.dense = [tf.keras.layers.Dense(u, name="dense_%d" % i)
                      for i, u in enumerate(self.units)]
        self.activations = [activation_layer(activation, "activation_%d" % i)
                            for i in range(len(self.units))]
        self.dropout = tf.keras.layers.Dropout(dropout) if dropout > 0 else None
        self.output_unit = tf.keras.layers.Dense(1, name="output")

    def call(self, x, training=None):
        for dense, act in zip(self.dense, self.activations):
            x = call_activation(act, dense(x), training=training)
            if self.dropout is not None:
                x = self.dropout(x, training=training)
        return self.output_unit(x)[:, 0]

    def get_config(self):
        config = super().get_config()
        config.update(units=list(self.units), activation=self.activation_name,
                      dropout=self.dropout_rate)
        return config


HISTORY_TYPES_HELP = "feedback histories mean-pooled into fields (models/fields.py)"


def check_history_types(name: str, types: Sequence[str], allow_empty: bool = True) -> List[str]:
    """Errors for a setting naming feedback histories: distinct known types (empty only if
    `allow_empty`: a field model may read no history, an attention model needs one)."""
    if (not types and not allow_empty) or len(set(types)) != len(types) or \
            any(t not in F.FEEDBACK_TYPES for t in types):
        return ["%s=%r, expected distinct types of %s" % (name, tuple(types), F.FEEDBACK_TYPES)]
    return []


def check_units(name: str, units: Sequence[int]) -> List[str]:
    if any(u < 1 for u in units):
        return ["%s=%r, expected positive widths" % (name, tuple(units))]
    return []


def ctr_output(logit: tf.Tensor, **extra) -> Dict[str, object]:
    """The dict CtrModel.forward returns for a model without auxiliary loss or memory."""
    out = {"logit": logit, "probability": tf.sigmoid(logit), "aux_loss": tf.constant(0.0),
           "triplet_loss": tf.constant(0.0), "memory_updates": {}}
    out.update(extra)
    return out
