"""AutoInt (Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
Neural Networks", CIKM 2019).

    alpha^(h)_{m,k} = softmax_k(<W_Q^(h) e_m, W_K^(h) e_k>)                    (paper eq. 5-6)
    e~^(h)_m = sum_k alpha^(h)_{m,k} W_V^(h) e_k                               (eq. 7)
    e~_m = e~^(1)_m (+) ... (+) e~^(H)_m                                       (eq. 8)
    e^Res_m = ReLU(e~_m + W_Res e_m)                                           (eq. 9)
    y = sigmoid(w^T (e^Res_1 (+) ... (+) e^Res_M) + b)                         (eq. 10)

* Fields e_m: models/fields.FieldEmbedding on the shared tables (numeric price as v * x, the
  paper's eq. 4).
* `InteractingLayer` is one layer of eq. 5-9; `autoint_layers` of them are stacked, with
  `autoint_heads` heads of width `autoint_attention_dim` (the paper's §5.1.4: 3 layers,
  2 heads, d' = 32).
* `autoint_hidden_units` non-empty adds the paper's AutoInt+ (§5.5): a feed-forward network
  on the concatenated fields beside the interacting layers, logits summed. Empty (default)
  is AutoInt as the DUMN paper's Table 1 names it.
* ModelConfig(umn_plugin=True) is the DUMN paper's AutoInt+UMN (Table 3): a user memory per
  feedback type (models/umn_plugin.py) whose controller reads the history's masked mean
  (AutoInt's own representation of a history) with e_user; the four reads join the fields
  (Z / E fields each) before the interacting layers, and the triplet loss joins the loss.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.fields import (DeepTower, FieldEmbedding, check_history_types, check_units,
                           ctr_output, masked_mean)
from models.umn_plugin import FORWARDED, UserMemoryPlugin, read_fields


@dataclasses.dataclass(frozen=True)
class AutoIntSettings:
    autoint_layers: int = 3
    autoint_heads: int = 2
    autoint_attention_dim: int = 32
    autoint_residual: bool = True
    autoint_hidden_units: Tuple[int, ...] = ()
    autoint_history_types: Tuple[str, ...] = ("click",)

    def problems(self) -> List[str]:
        errors = check_units("autoint_hidden_units", self.autoint_hidden_units)
        errors += check_history_types("autoint_history_types", self.autoint_history_types)
        for name in ("autoint_layers", "autoint_heads", "autoint_attention_dim"):
            if getattr(self, name) < 1:
                errors.append("%s=%r, expected >= 1" % (name, getattr(self, name)))
        return errors


class InteractingLayer(tf.keras.layers.Layer):
    """One interacting layer of AutoInt (eq. 5-9): multi-head self-attention over the fields
    [B, M, d] -> [B, M, H d'], with the residual projection W_Res and a ReLU."""

    def __init__(self, heads: int, attention_dim: int, residual: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.attention_dim = attention_dim
        self.residual = residual

    def build(self, input_shape):
        d, width = int(input_shape[-1]), self.heads * self.attention_dim
        init = "glorot_uniform"
        self.w_query = self.add_weight("w_query", (d, width), initializer=init)
        self.w_key = self.add_weight("w_key", (d, width), initializer=init)
        self.w_value = self.add_weight("w_value", (d, width), initializer=init)
        if self.residual:
            self.w_residual = self.add_weight("w_residual", (d, width), initializer=init)
        super().build(input_shape)

    def split_heads(self, x):
        """[B, M, H d'] -> [B, H, M, d']."""
        b, m = tf.shape(x)[0], tf.shape(x)[1]
        return tf.transpose(tf.reshape(x, [b, m, self.heads, self.attention_dim]), [0, 2, 1, 3])

    def call(self, fields, return_attention=False):
        q = self.split_heads(tf.einsum("bmd,dw->bmw", fields, self.w_query))
        k = self.split_heads(tf.einsum("bmd,dw->bmw", fields, self.w_key))
        v = self.split_heads(tf.einsum("bmd,dw->bmw", fields, self.w_value))
        # eq. 5-6: plain inner products, no scaling (the paper's psi is <.,.>).
        attention = tf.nn.softmax(tf.einsum("bhmd,bhkd->bhmk", q, k), axis=-1)
        heads = tf.einsum("bhmk,bhkd->bhmd", attention, v)  # eq. 7
        b, m = tf.shape(fields)[0], tf.shape(fields)[1]
        out = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]),
                         [b, m, self.heads * self.attention_dim])  # eq. 8
        if self.residual:
            out += tf.einsum("bmd,dw->bmw", fields, self.w_residual)
        out = tf.nn.relu(out)  # eq. 9
        return (out, attention) if return_attention else out

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads, attention_dim=self.attention_dim,
                      residual=self.residual)
        return config


class AutoIntModel(CtrModel):
    """AutoInt (AutoInt+ with hidden units) on the project's input contract."""

    MODEL_KIND = "autoint"
    Settings = AutoIntSettings
    SUPPORTS_UMN = True

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s = config.settings
        self.fields = FieldEmbedding(config.embedding_dim, config.user_fields,
                                     s.autoint_history_types, name="fields")
        self.interacting = [InteractingLayer(s.autoint_heads, s.autoint_attention_dim,
                                             s.autoint_residual, name="interacting_%d" % i)
                            for i in range(s.autoint_layers)]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")  # eq. 10
        self.deep = (DeepTower(s.autoint_hidden_units, "relu", name="deep")
                     if s.autoint_hidden_units else None)
        self.umn = (UserMemoryPlugin(config, F.FEEDBACK_TYPES, name="umn")
                    if config.umn_plugin else None)

    def memory_variables(self):
        return self.umn.memory_variables() if self.umn is not None else {}

    def read_feedback_types(self):
        types = self.config.settings.autoint_history_types
        if self.umn is not None:
            types += tuple(f for f in self.umn.channels if f not in types)
        return types

    def forward(self, inputs, training=False, triplet_seed=None):
        sample_types = self.umn.sample_types(inputs) if self.umn is not None else ()
        emb = self.embedding(inputs, feedback_types=self.read_feedback_types(),
                             sample_types=sample_types)
        fields = self.fields(emb)
        umn = {}
        if self.umn is not None:
            short = {f: masked_mean(emb["sequences"][f], emb["masks"][f])
                     for f in self.umn.channels}
            umn = self.umn(short, emb["user"], emb["masks"], emb["samples"],
                           emb["sample_counts"], seed=triplet_seed)
            fields = tf.concat([fields, read_fields(umn["reads"], self.umn.channels,
                                                    self.config.embedding_dim)], axis=1)
        x = fields
        for layer in self.interacting:
            x = layer(x)
        interacted = tf.reshape(x, [-1, x.shape[1] * x.shape[2]])
        logit = self.output_layer(interacted)[:, 0]
        if self.deep is not None:  # AutoInt+
            logit += self.deep(tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]]),
                               training=training)
        if umn:
            return ctr_output(logit, interacted=interacted, long_term=umn["reads"],
                              **{k: umn[k] for k in FORWARDED})
        return ctr_output(logit, interacted=interacted)


MODEL = AutoIntModel
