"""DIEN (Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
AAAI 2019).

* Interest extractor layer (§4.2): a GRU over the click history's elements e_b[t]
  (Concat(item, cate, brand), 3E) gives interest states h_t (width 3E, so that the auxiliary
  loss can take inner products with elements). Auxiliary loss (eq. 4):
      L_aux = -1/N sum_i sum_t [log sigma(<h_t, e_b[t+1]>) + log(1 - sigma(<h_t, e^_b[t+1]>))]
  with the next click as the positive and, as the negative e^_b[t+1], the unclick history's
  element at the same index (DIEN samples negatives from the items the user did not click;
  the logs hold exactly those). Terms exist where both are real; the mean over them is
  weighted by `dien_aux_weight` (alpha, 1 in the paper) in L = L_target + alpha L_aux.
* Interest evolving layer (§4.3): attention a_t = softmax_t(h_t W e_a) (eq. 6) over the real
  steps, then AUGRU (eq. 7-8): the update gate scaled by the attention score,
  u'_t = a_t u_t, h'_t = (1 - u'_t) h'_{t-1} + u'_t h~_t; the final state h'_T at the last
  real step is the evolved interest (0 for an empty history).
* Prediction: an MLP on Concat(e_user, e_item, h'_T, e_pid, price), 200-80 with Dice (as the
  project's DIN), then one unit.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.dice import activation_layer, call_activation
from models.fields import check_units, ctr_output

DIEN_ACTIVATIONS = ("dice", "prelu", "relu")


@dataclasses.dataclass(frozen=True)
class DienSettings:
    dien_hidden_units: Tuple[int, ...] = (200, 80)
    dien_activation: str = "dice"
    dien_aux_weight: float = 1.0

    def problems(self) -> List[str]:
        errors = check_units("dien_hidden_units", self.dien_hidden_units)
        if self.dien_activation not in DIEN_ACTIVATIONS:
            errors.append("dien_activation=%r, expected one of %s"
                          % (self.dien_activation, DIEN_ACTIVATIONS))
        if self.dien_aux_weight < 0:
            errors.append("dien_aux_weight=%r, expected >= 0" % (self.dien_aux_weight,))
        return errors


class AUGRUCell(tf.keras.layers.Layer):
    """GRU with attentional update gate (DIEN eq. 7-8). Input per step: Concat(x_t, a_t),
    the attention score last.

        u_t = sigmoid(W_u x_t + U_u h + b_u),  r_t = sigmoid(W_r x_t + U_r h + b_r)
        h~_t = tanh(W_h x_t + r_t * (U_h h) + b_h)
        u'_t = a_t u_t,   h_t = (1 - u'_t) * h + u'_t * h~_t
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        d = int(input_shape[-1]) - 1
        self.kernel = self.add_weight("kernel", (d, 3 * self.units), initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, 3 * self.units),
                                                initializer="orthogonal")
        self.bias = self.add_weight("bias", (3 * self.units,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs, states):
        x, a = inputs[:, :-1], inputs[:, -1:]
        h = states[0] if isinstance(states, (list, tuple)) else states
        xz, xr, xh = tf.split(tf.matmul(x, self.kernel) + self.bias, 3, axis=-1)
        hz, hr, hh = tf.split(tf.matmul(h, self.recurrent_kernel), 3, axis=-1)
        update = tf.sigmoid(xz + hz) * a  # eq. 7: the attention scales the update gate
        reset = tf.sigmoid(xr + hr)
        candidate = tf.tanh(xh + reset * hh)
        new = (1.0 - update) * h + update * candidate  # eq. 8
        return new, [new]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


def auxiliary_loss(states, clicks, click_mask, negatives, negative_mask):
    """DIEN eq. 4 on [B, T, D] interest states, next clicks (positives) and the unclick
    elements at the same index (negatives): mean over the (t, t+1) pairs where the next click
    and the negative are real."""
    h = states[:, :-1]
    positive, negative = clicks[:, 1:], negatives[:, 1:]
    valid = tf.cast(click_mask[:, 1:] & negative_mask[:, 1:], h.dtype)
    pos_logit = tf.reduce_sum(h * positive, axis=-1)
    neg_logit = tf.reduce_sum(h * negative, axis=-1)
    terms = (tf.nn.softplus(-pos_logit) + tf.nn.softplus(neg_logit)) * valid  # -log sig, -log(1-sig)
    return tf.reduce_sum(terms) / tf.maximum(tf.reduce_sum(valid), 1.0)


class DienModel(CtrModel):
    """DIEN on the project's input contract; see the module docstring."""

    MODEL_KIND = "dien"
    Settings = DienSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s, d = config.settings, config.sequence_element_dim
        self.extractor = tf.keras.layers.GRU(d, return_sequences=True, name="interest_extractor")
        self.attention_kernel = tf.keras.layers.Dense(d, use_bias=False, name="attention_w")
        self.evolution = tf.keras.layers.RNN(AUGRUCell(d), name="interest_evolution")
        self.hidden = [tf.keras.layers.Dense(u, name="dnn_%d" % i)
                       for i, u in enumerate(s.dien_hidden_units)]
        self.activations = [activation_layer(s.dien_activation, "dnn_activation_%d" % i)
                            for i in range(len(s.dien_hidden_units))]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")

    def read_feedback_types(self):
        return ("click", "unclick")

    def forward(self, inputs, training=False, triplet_seed=None):
        emb = self.embedding(inputs, feedback_types=("click", "unclick"))
        clicks, mask = emb["sequences"]["click"], emb["masks"]["click"]
        states = self.extractor(clicks, mask=mask)  # eq. 1-3: h_t, held over padding
        # eq. 6: a_t = softmax(h_t W e_a) over the real steps.
        scores = tf.einsum("btd,bd->bt", states, self.attention_kernel(emb["item"]))
        scores += (1.0 - tf.cast(mask, scores.dtype)) * -1e9
        attention = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, scores.dtype)
        evolved = self.evolution(tf.concat([states, attention[..., None]], axis=-1), mask=mask)
        has_history = tf.cast(tf.reduce_any(mask, axis=1), evolved.dtype)[:, None]
        evolved *= has_history
        x = tf.concat([emb["user"], emb["item"], evolved, emb["pid"], emb["price"]], axis=-1)
        for dense, act in zip(self.hidden, self.activations):
            x = call_activation(act, dense(x), training=training)
        logit = self.output_layer(x)[:, 0]
        aux = tf.constant(0.0)
        weight = self.config.settings.dien_aux_weight
        if weight > 0:
            unclick_width = tf.shape(emb["sequences"]["unclick"])[1]
            width = tf.shape(clicks)[1]
            # The negatives at the clicks' indices: pad or cut the unclick history to T'.
            pad = tf.maximum(width - unclick_width, 0)
            negatives = tf.pad(emb["sequences"]["unclick"], [[0, 0], [0, pad], [0, 0]])[:, :width]
            negative_mask = tf.pad(emb["masks"]["unclick"], [[0, 0], [0, pad]])[:, :width]
            aux = weight * auxiliary_loss(states, clicks, mask, negatives, negative_mask)
        return ctr_output(logit, aux_loss=aux, attention_weights=attention,
                          evolved_interest=evolved)


MODEL = DienModel
