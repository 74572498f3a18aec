"""DIN baseline (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD'18).

Same input contract and training loop as DUMN (models/base.py), selected by
`ModelConfig(model='din')`; its own hyper-parameters are `DinModel.Settings` (`din_*`). DIN reads the user profile, the target item, pid, price and the
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
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models.base import CtrModel
from models.config import ModelConfig
from models.dice import Dice, call_activation  # noqa: F401  (Dice: DIN §4.3)
from models.dice import activation_layer as _activation
from models.fields import check_history_types, check_units


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
            x = call_activation(act, x, training=training, mask=mask)
        weights = self.score(x)[..., 0] * tf.cast(mask, x.dtype)  # padding gets no weight
        return tf.einsum("bt,btd->bd", weights, history), weights

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, activation=self.activation_name)
        return config


DIN_ACTIVATIONS = ("dice", "prelu")


@dataclasses.dataclass(frozen=True)
class DinSettings:
    """DIN's hyper-parameters (the DIN paper's sizes)."""

    din_attention_units: Tuple[int, ...] = (80, 40)
    din_hidden_units: Tuple[int, ...] = (200, 80)
    din_activation: str = "dice"  # 'dice' | 'prelu'
    # The histories DIN pools, each with its own local activation unit (the DIN paper's
    # behaviour sequence is the click history; more types make a stronger, DFN-like baseline
    # that tells whether the other histories carry signal at all).
    din_feedback_types: Tuple[str, ...] = ("click",)

    def problems(self) -> List[str]:
        errors = []
        if self.din_activation not in DIN_ACTIVATIONS:
            errors.append("din_activation=%r, expected one of %s"
                          % (self.din_activation, DIN_ACTIVATIONS))
        for name in ("din_attention_units", "din_hidden_units"):
            errors += check_units(name, getattr(self, name))
        errors += check_history_types("din_feedback_types", self.din_feedback_types,
                                      allow_empty=False)
        return errors


class DinModel(CtrModel):
    """DIN on the project's input contract; see the module docstring."""

    MODEL_KIND = "din"
    Settings = DinSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config.settings
        # One local activation unit per pooled history (config.din_feedback_types); the
        # paper's DIN pools the click history alone, under the name it has always had.
        self.attentions = {
            f: LocalActivationUnit(c.din_attention_units, c.din_activation,
                                   name="local_activation_unit" + ("" if f == "click"
                                                                   else "_" + f))
            for f in c.din_feedback_types}
        self.hidden = [tf.keras.layers.Dense(u, name="dnn_%d" % i)
                       for i, u in enumerate(c.din_hidden_units)]
        self.hidden_activations = [_activation(c.din_activation, "dnn_activation_%d" % i)
                                   for i in range(len(c.din_hidden_units))]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")

    def read_feedback_types(self):
        return self.config.settings.din_feedback_types

    def forward(self, inputs, training=False, triplet_seed=None):
        types = self.config.settings.din_feedback_types
        emb = self.embedding(inputs, feedback_types=types)
        pooled = {f: self.attentions[f](emb["sequences"][f], emb["masks"][f], emb["item"],
                                        training=training) for f in types}
        interest, weights = pooled[types[0]]
        x = tf.concat([emb["user"], emb["item"]] + [pooled[f][0] for f in types]
                      + [emb["pid"], emb["price"]], axis=-1)
        for dense, act in zip(self.hidden, self.hidden_activations):
            x = dense(x)
            x = call_activation(act, x, training=training)
        logit = self.output_layer(x)[:, 0]
        return {"logit": logit, "probability": tf.sigmoid(logit), "aux_loss": tf.constant(0.0),
                "triplet_loss": tf.constant(0.0), "memory_updates": {},
                "interest": interest, "attention_weights": weights}


def build_din(config: ModelConfig) -> DinModel:
    """A new, uncompiled DinModel."""
    return DinModel(config)


MODEL = DinModel
