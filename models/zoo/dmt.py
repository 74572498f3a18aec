"""DMT (Gu et al., "Deep Multifaceted Transformers for Multi-objective Ranking in Large-Scale
E-commerce Recommender Systems", CIKM 2020), with one objective (CTR).

* One Transformer per behaviour sequence (§3.2): here the four feedback histories. Each
  element is Concat(item, cate, brand) plus a learned embedding of its recency rank (DMT's
  position is the time since the event; the logs' histories carry the order). The encoder is
  one Transformer layer (multi-head self-attention over the real events, residual and layer
  normalisation, a ReLU FFN, residual and layer normalisation); the decoder attends from
  the target item to the encoder's outputs (multi-head attention, the target as the only
  query), giving one interest vector per sequence, 0 for an empty history.
* Multi-gate Mixture-of-Experts (§3.3, Ma et al. 2018) on Concat(e_user, e_item, the
  interest vectors, e_pid, price): `dmt_experts` ReLU experts, a softmax gate over them per
  task (one task here, so one gate), a tower per task, then one unit. DMT's bias network
  for position and neighbour bias is not built: the logs carry no display position beyond
  pid, which every model reads as a feature.
* Sizes: the paper does not state them in a form that carries to this data; 2 heads, an FFN
  of 4 x 3E, 4 experts of 128 units, a tower of 64 (chosen, not tuned on the eval split).
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.fields import check_history_types, check_units, ctr_output, recency_ranks


@dataclasses.dataclass(frozen=True)
class DmtSettings:
    dmt_heads: int = 2
    dmt_ffn_multiplier: int = 4
    dmt_experts: int = 4
    dmt_expert_units: Tuple[int, ...] = (128,)
    dmt_tower_units: Tuple[int, ...] = (64,)
    dmt_feedback_types: Tuple[str, ...] = F.FEEDBACK_TYPES

    def problems(self) -> List[str]:
        errors = check_units("dmt_expert_units", self.dmt_expert_units)
        errors += check_units("dmt_tower_units", self.dmt_tower_units)
        for name in ("dmt_heads", "dmt_ffn_multiplier", "dmt_experts"):
            if getattr(self, name) < 1:
                errors.append("%s=%r, expected >= 1" % (name, getattr(self, name)))
        errors += check_history_types("dmt_feedback_types", self.dmt_feedback_types,
                                      allow_empty=False)
        return errors


class BehaviourTransformer(tf.keras.layers.Layer):
    """DMT's Transformer for one behaviour sequence: encoder layer over the events, decoder
    attention from the target item. history [B, T, D], mask [B, T], target [B, D] -> [B, D]."""

    def __init__(self, heads: int = 2, ffn_multiplier: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.ffn_multiplier = ffn_multiplier

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.self_attention = tf.keras.layers.MultiHeadAttention(
            self.heads, max(d // self.heads, 1), name="encoder_attention")
        self.norm_1 = tf.keras.layers.LayerNormalization(name="encoder_norm_1")
        self.ffn_in = tf.keras.layers.Dense(self.ffn_multiplier * d, activation="relu",
                                            name="encoder_ffn_in")
        self.ffn_out = tf.keras.layers.Dense(d, name="encoder_ffn_out")
        self.norm_2 = tf.keras.layers.LayerNormalization(name="encoder_norm_2")
        self.target_attention = tf.keras.layers.MultiHeadAttention(
            self.heads, max(d // self.heads, 1), name="decoder_attention")
        super().build(input_shape)

    def call(self, history, mask, target, training=None):
        pair_mask = mask[:, :, None] & mask[:, None, :]
        x = self.norm_1(history + self.self_attention(history, history,
                                                      attention_mask=pair_mask,
                                                      training=training))
        x = self.norm_2(x + self.ffn_out(self.ffn_in(x)))
        read = self.target_attention(target[:, None, :], x, attention_mask=mask[:, None, :],
                                     training=training)[:, 0]
        return read * tf.cast(tf.reduce_any(mask, axis=1), read.dtype)[:, None]

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads, ffn_multiplier=self.ffn_multiplier)
        return config


class MixtureOfExperts(tf.keras.layers.Layer):
    """MMoE for one task: out = sum_k g_k(x) expert_k(x), g = softmax(W_g x) -> [B, units]."""

    def __init__(self, experts: int, units, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = experts
        self.units = tuple(units)
        self.experts = [[tf.keras.layers.Dense(u, activation="relu", name="expert_%d_%d" % (k, i))
                         for i, u in enumerate(self.units)] for k in range(experts)]
        self.gate = tf.keras.layers.Dense(experts, name="gate")

    def call(self, x, return_gate=False):
        outputs = []
        for layers in self.experts:
            h = x
            for layer in layers:
                h = layer(h)
            outputs.append(h)
        gate = tf.nn.softmax(self.gate(x), axis=-1)  # [B, K]
        mixed = tf.einsum("bk,kbu->bu", gate, tf.stack(outputs, axis=0))
        return (mixed, gate, outputs) if return_gate else mixed

    def get_config(self):
        config = super().get_config()
        config.update(experts=self.num_experts, units=list(self.units))
        return config


class DmtModel(CtrModel):
    """DMT (one task) on the project's input contract; see the module docstring."""

    MODEL_KIND = "dmt"
    Settings = DmtSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s = config.settings
        self.position_table = tf.keras.layers.Embedding(
            config.max_seq_len + 1, config.sequence_element_dim, name="position_embedding")
        self.transformers = {f: BehaviourTransformer(s.dmt_heads, s.dmt_ffn_multiplier,
                                                     name="transformer_" + f)
                             for f in s.dmt_feedback_types}
        self.moe = MixtureOfExperts(s.dmt_experts, s.dmt_expert_units, name="mmoe")
        self.tower = [tf.keras.layers.Dense(u, activation="relu", name="tower_%d" % i)
                      for i, u in enumerate(s.dmt_tower_units)]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")

    def read_feedback_types(self):
        return self.config.settings.dmt_feedback_types

    def forward(self, inputs, training=False, triplet_seed=None):
        types = self.read_feedback_types()
        emb = self.embedding(inputs, feedback_types=types)
        reads = []
        for f in types:
            sequence, mask = emb["sequences"][f], emb["masks"][f]
            ranks = recency_ranks(inputs[F.length(f)], tf.shape(sequence)[1])
            reads.append(self.transformers[f](sequence + self.position_table(ranks), mask,
                                              emb["item"], training=training))
        x = tf.concat([emb["user"], emb["item"]] + reads + [emb["pid"], emb["price"]], axis=-1)
        x = self.moe(x)
        for layer in self.tower:
            x = layer(x)
        return ctr_output(self.output_layer(x)[:, 0])


MODEL = DmtModel
