"""DFN (Xie et al., "Deep Feedback Network for Recommendation", IJCAI 2020).

DFN reads the implicit positive (click), implicit negative (unclick) and explicit negative
(dislike) feedback histories; the structure follows the paper's Fig. 2 and the authors'
released TF1 code (which the DUMN paper ran "per their GitHub settings"):

* Feedback elements: e_j = Concat(item_j, position_j) W_f, one W_f per feedback type, with
  a learned embedding of the event's recency rank (the code's position feature), D = 3E.
* Internal feedback interaction (§3.2): a transformer per history over the candidate item
  followed by the history's events, T + 1 tokens: `dfn_heads` (4) heads of width D / heads,
  scores scaled by sqrt(D) as in the code, keys masked to the candidate and the real events,
  then the FFN D -> 4D -> D (ReLU) per token, averaged over the candidate and the real
  events (`dfn_pooling='mean'`, the default; `'sum'` is the code's sum, which measured 0.007
  AUC lower on the built-in data, docs/model.md). The code pools padded tokens' FFN outputs
  too, whose value depends on the padding width; here they are masked, so a history pools
  only what it holds.
* External feedback interaction (§3.3): attention of the unclick sequence on the click
  transformer's output and on the dislike transformer's output (a DIN-like unit on
  Concat(q, h, q * h, q - h), 32 ReLU units, softmax over the real unclick events scaled by
  sqrt(D)): the unclicks that resemble what the user clicked, and those that resemble what
  they disliked. An empty unclick history gives 0 (the code's softmax over padding alone
  would average padding rows).
* Feature interaction (§3.4): Wide (one weight per user, profile, context and candidate id,
  models/fields.LinearTerms without histories), FM over the fields of
  Concat(user fields, candidate, the five feedback vectors) cut into E-wide fields (the
  code's vector form 1/2 [(sum v)^2 - sum v^2], E values), Deep (ReLU 32, 16, the code's),
  concatenated into one logistic unit.

The project's optimiser replaces the code's AdaGrad (lr 0.01) as for every model.
ModelConfig(umn_plugin=True) is the DUMN paper's DFN+UMN (Table 3): a user memory per
history DFN reads (models/umn_plugin.py), its controller on the history's transformer output
with e_user; the reads join the fields of the FM and the deep part, the triplet loss the loss.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.fields import LinearTerms, check_units, ctr_output, recency_ranks, vocab_sizes
from models.umn_plugin import FORWARDED, UserMemoryPlugin

# The histories DFN reads, by their role in the paper.
CLICK, UNCLICK, DISLIKE = "click", "unclick", "dislike"
DFN_TYPES = (CLICK, UNCLICK, DISLIKE)


@dataclasses.dataclass(frozen=True)
class DfnSettings:
    dfn_heads: int = 4
    dfn_ffn_multiplier: int = 4
    dfn_attention_units: int = 32
    dfn_hidden_units: Tuple[int, ...] = (32, 16)
    # How a transformer pools its tokens over the candidate and the real events: 'mean'
    # (default: the stronger baseline on the built-in data) or 'sum' (the authors' code).
    dfn_pooling: str = "mean"

    def problems(self) -> List[str]:
        errors = check_units("dfn_hidden_units", self.dfn_hidden_units)
        if self.dfn_pooling not in ("sum", "mean"):
            errors.append("dfn_pooling=%r, expected 'sum' or 'mean'" % (self.dfn_pooling,))
        for name in ("dfn_heads", "dfn_ffn_multiplier", "dfn_attention_units"):
            if getattr(self, name) < 1:
                errors.append("%s=%r, expected >= 1" % (name, getattr(self, name)))
        return errors


class FeedbackTransformer(tf.keras.layers.Layer):
    """DFN's internal feedback interaction for one history (see the module docstring):
    tokens [candidate, h_1..h_T], masked multi-head self-attention, a token-wise FFN, `pooling`
    (mean or sum) over the candidate and the real events.
    candidate [B, D], history [B, T, D], mask [B, T]."""

    def __init__(self, heads: int = 4, ffn_multiplier: int = 4, pooling: str = "mean",
                 **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.ffn_multiplier = ffn_multiplier
        self.pooling = pooling

    def build(self, input_shape):
        d = int(input_shape[-1])
        if d % self.heads:
            raise ValueError("width %d is not divisible by dfn_heads=%d" % (d, self.heads))
        init = "glorot_uniform"
        self.w_query = self.add_weight("w_query", (d, d), initializer=init)
        self.w_key = self.add_weight("w_key", (d, d), initializer=init)
        self.w_value = self.add_weight("w_value", (d, d), initializer=init)
        self.ffn_in = tf.keras.layers.Dense(self.ffn_multiplier * d, activation="relu",
                                            name="ffn_in")
        self.ffn_out = tf.keras.layers.Dense(d, name="ffn_out")
        super().build(input_shape)

    def call(self, candidate, history, mask):
        tokens = tf.concat([candidate[:, None, :], history], axis=1)  # [B, T+1, D]
        real = tf.concat([tf.ones_like(mask[:, :1]), mask], axis=1)  # the candidate is real
        b, n, d = tf.shape(tokens)[0], tf.shape(tokens)[1], tokens.shape[-1]
        width = d // self.heads

        def heads(w):
            x = tf.reshape(tf.einsum("bnd,de->bne", tokens, w), [b, n, self.heads, width])
            return tf.transpose(x, [0, 2, 1, 3])  # [B, H, N, d/H]

        scores = tf.einsum("bhqd,bhkd->bhqk", heads(self.w_query), heads(self.w_key))
        scores = scores / tf.sqrt(tf.cast(d, scores.dtype))  # the code's sqrt(D)
        scores += (1.0 - tf.cast(real, scores.dtype))[:, None, None, :] * -1e9
        attended = tf.einsum("bhqk,bhkd->bhqd", tf.nn.softmax(scores, axis=-1),
                             heads(self.w_value))
        attended = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [b, n, d])
        out = self.ffn_out(self.ffn_in(attended))
        weight = tf.cast(real, out.dtype)
        if self.pooling == "mean":
            weight /= tf.reduce_sum(weight, axis=1, keepdims=True)
        return tf.einsum("bn,bnd->bd", weight, out)

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads, ffn_multiplier=self.ffn_multiplier,
                      pooling=self.pooling)
        return config


class FeedbackAttention(tf.keras.layers.Layer):
    """DFN's external feedback interaction: attention of a history (keys, values) on a query
    vector, weights softmax(MLP(Concat(q, h, q * h, q - h)) / sqrt(D)) over the real events;
    0 for an empty history. query [B, D], history [B, T, D], mask [B, T] -> [B, D]."""

    def __init__(self, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = tf.keras.layers.Dense(units, activation="relu", name="hidden")
        self.score = tf.keras.layers.Dense(1, name="score")

    def call(self, query, history, mask, return_weights=False):
        q = tf.broadcast_to(query[:, None, :], tf.shape(history))
        x = tf.concat([q, history, q * history, q - history], axis=-1)
        scores = self.score(self.hidden(x))[..., 0]
        scores = scores / tf.sqrt(tf.cast(history.shape[-1], scores.dtype))
        scores += (1.0 - tf.cast(mask, scores.dtype)) * -1e9
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, scores.dtype)  # empty -> 0
        out = tf.einsum("bt,btd->bd", weights, history)
        return (out, weights) if return_weights else out

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


class DfnModel(CtrModel):
    """DFN on the project's input contract; see the module docstring."""

    MODEL_KIND = "dfn"
    Settings = DfnSettings
    SUPPORTS_UMN = True

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s, d = config.settings, config.sequence_element_dim
        self.position_table = tf.keras.layers.Embedding(config.max_seq_len + 1,
                                                        config.embedding_dim,
                                                        name="position_embedding")
        self.projections = {f: tf.keras.layers.Dense(d, use_bias=False, name="feedback_" + f)
                            for f in DFN_TYPES}
        self.transformers = {f: FeedbackTransformer(s.dfn_heads, s.dfn_ffn_multiplier,
                                                    s.dfn_pooling, name="transformer_" + f)
                             for f in DFN_TYPES}
        self.unclick_on_click = FeedbackAttention(s.dfn_attention_units,
                                                  name="unclick_on_click")
        self.unclick_on_dislike = FeedbackAttention(s.dfn_attention_units,
                                                    name="unclick_on_dislike")
        self.wide = LinearTerms(vocab_sizes(config), config.user_fields, (), name="wide")
        self.price_vector = tf.keras.layers.Dense(config.embedding_dim, use_bias=False,
                                                  name="price_field")
        self.deep = [tf.keras.layers.Dense(u, activation="relu", name="deep_%d" % i)
                     for i, u in enumerate(s.dfn_hidden_units)]
        self.output_layer = tf.keras.layers.Dense(1, name="logit")
        self.umn = UserMemoryPlugin(config, DFN_TYPES, name="umn") if config.umn_plugin else None

    def memory_variables(self):
        return self.umn.memory_variables() if self.umn is not None else {}

    def id_tables(self):
        return self.wide.id_tables()

    def read_feedback_types(self):
        return DFN_TYPES

    def feedback_elements(self, emb, inputs, f):
        """Concat(item_j, position_j) W_f for history f -> [B, T', D], mask [B, T']."""
        sequence, mask = emb["sequences"][f], emb["masks"][f]
        ranks = recency_ranks(inputs[F.length(f)], tf.shape(sequence)[1])
        x = tf.concat([sequence, self.position_table(ranks)], axis=-1)
        return self.projections[f](x), mask

    def forward(self, inputs, training=False, triplet_seed=None):
        sample_types = self.umn.sample_types(inputs) if self.umn is not None else ()
        emb = self.embedding(inputs, feedback_types=DFN_TYPES, sample_types=sample_types)
        candidate = emb["item"]
        elements = {f: self.feedback_elements(emb, inputs, f) for f in DFN_TYPES}
        outputs = {f: self.transformers[f](candidate, *elements[f]) for f in DFN_TYPES}
        unclicks, unclick_mask = elements[UNCLICK]
        on_click = self.unclick_on_click(outputs[CLICK], unclicks, unclick_mask)
        on_dislike = self.unclick_on_dislike(outputs[DISLIKE], unclicks, unclick_mask)
        parts = [emb["user"], emb["pid"], self.price_vector(emb["price"]), candidate,
                 outputs[CLICK], outputs[UNCLICK], outputs[DISLIKE], on_click, on_dislike]
        umn = {}
        if self.umn is not None:
            umn = self.umn(outputs, emb["user"], emb["masks"], emb["samples"],
                           emb["sample_counts"], seed=triplet_seed)
            parts += [umn["reads"][f] for f in DFN_TYPES]
        x = tf.concat(parts, axis=1)
        fields = tf.reshape(x, [-1, x.shape[1] // self.config.embedding_dim,
                                self.config.embedding_dim])
        fm = 0.5 * (tf.square(tf.reduce_sum(fields, axis=1))
                    - tf.reduce_sum(tf.square(fields), axis=1))  # [B, E], the code's form
        deep = x
        for layer in self.deep:
            deep = layer(deep)
        wide = self.wide(inputs)
        logit = self.output_layer(tf.concat([deep, fm, wide[:, None]], axis=1))[:, 0]
        extra = {}
        if umn:
            extra = {k: umn[k] for k in FORWARDED}
            extra["long_term"] = umn["reads"]
        return ctr_output(logit, feedback_outputs=outputs, unclick_on_click=on_click,
                          unclick_on_dislike=on_dislike, **extra)


MODEL = DfnModel
