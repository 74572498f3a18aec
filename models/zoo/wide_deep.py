"""Wide&Deep (Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016).

    P(y = 1 | x) = sigmoid(w_wide^T [x, phi(x)] + w_deep^T a^(l_f) + b)        (paper eq. 3)

* Wide part: a linear model on the raw sparse features x (one weight per id of the user,
  profile fields, target item, cate, brand, pid, plus price; the pooled histories'
  mean weights, models/fields.LinearTerms) and the cross-product transformations phi(x)
  (eq. 1). The paper's example cross is AND(user_installed_app, impression_app); the same
  cross here is AND(target cate, cate of an event in the history), one weight per pair,
  hashed into `wide_deep_cross_buckets` when the pairs do not fit, averaged over the
  history's events (a pair's weight counts with its share of the history).
* Deep part: the fields of the shared embedding tables (models/fields.FieldEmbedding),
  concatenated, through ReLU layers of 1024, 512, 256 units (the paper's §3 app-store model),
  then one unit.
* Trained jointly on the sum of both logits (§3.3). The paper's per-part optimisers (FTRL
  with L1 for the wide part, AdaGrad for the deep) are replaced by the project's optimiser
  for every model, so the comparison differs in architecture only.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.fields import (DeepTower, FieldEmbedding, LinearTerms, check_history_types,
                           check_units, ctr_output, vocab_sizes)


@dataclasses.dataclass(frozen=True)
class WideDeepSettings:
    wide_deep_hidden_units: Tuple[int, ...] = (1024, 512, 256)
    wide_deep_history_types: Tuple[str, ...] = ("click",)
    wide_deep_cross_buckets: int = 2 ** 18  # rows of the cross-product weight table at most
    wide_deep_dropout: float = 0.0

    def problems(self) -> List[str]:
        errors = check_units("wide_deep_hidden_units", self.wide_deep_hidden_units)
        errors += check_history_types("wide_deep_history_types", self.wide_deep_history_types)
        if self.wide_deep_cross_buckets < 1:
            errors.append("wide_deep_cross_buckets=%r, expected >= 1"
                          % (self.wide_deep_cross_buckets,))
        if not 0.0 <= self.wide_deep_dropout < 1.0:
            errors.append("wide_deep_dropout=%r, expected in [0, 1)" % (self.wide_deep_dropout,))
        return errors


class CrossProduct(tf.keras.layers.Layer):
    """Wide&Deep's cross-product transformation (eq. 1) of the target's cate with each cate
    of a history: phi = AND(target cate = a, history cate = b), one learned weight per pair
    (a, b), id a * C + b (C = cate table rows), hashed modulo `buckets` when C^2 is larger.
    Returns the mean of the pair weights over the history's real events [B] (0 if none)."""

    def __init__(self, cate_vocab_size: int, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.cate_vocab_size = cate_vocab_size
        self.buckets = int(min(buckets, cate_vocab_size * cate_vocab_size))
        self.weights_table = tf.keras.layers.Embedding(
            self.buckets, 1, embeddings_initializer="zeros", name="cross_weights")

    def pair_ids(self, target_cate, history_cates):
        """[B], [B, T] -> [B, T] row of each (target, history) pair."""
        ids = (tf.cast(target_cate, tf.int64)[:, None] * self.cate_vocab_size
               + tf.cast(history_cates, tf.int64))
        return ids % self.buckets

    def call(self, target_cate, history_cates, lengths):
        mask = tf.cast(tf.sequence_mask(lengths, maxlen=tf.shape(history_cates)[1]), tf.float32)
        w = self.weights_table(self.pair_ids(target_cate, history_cates))[..., 0]
        return tf.reduce_sum(w * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(cate_vocab_size=self.cate_vocab_size, buckets=self.buckets)
        return config


class WideDeepModel(CtrModel):
    """Wide&Deep on the project's input contract; see the module docstring."""

    MODEL_KIND = "wide_deep"
    Settings = WideDeepSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s = config.settings
        types = s.wide_deep_history_types
        self.fields = FieldEmbedding(config.embedding_dim, config.user_fields, types,
                                     name="fields")
        self.linear = LinearTerms(vocab_sizes(config), config.user_fields, types, name="wide")
        self.crosses = {f: CrossProduct(config.cate_vocab_size, s.wide_deep_cross_buckets,
                                        name="cross_" + f) for f in types}
        self.deep = DeepTower(s.wide_deep_hidden_units, "relu", s.wide_deep_dropout,
                              name="deep")

    def id_tables(self):
        return self.linear.id_tables()

    def warm_start_excluded(self):
        # A pair's row is a function of two cate ids: a new cate vocabulary moves it in a
        # way no row remap follows; the cross weights start afresh.
        return {layer.weights_table.embeddings.name: "cross of cate ids, not remappable"
                for layer in self.crosses.values()}

    def read_feedback_types(self):
        return self.config.settings.wide_deep_history_types

    def forward(self, inputs, training=False, triplet_seed=None):
        types = self.config.settings.wide_deep_history_types
        fields = self.fields(self.embedding(inputs, feedback_types=types))
        wide = self.linear(inputs)
        for f in types:
            wide += self.crosses[f](inputs[F.CATE_ID], inputs[F.seq(f, "cate")],
                                    inputs[F.length(f)])
        deep = self.deep(tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]]),
                         training=training)
        return ctr_output(wide + deep, wide_logit=wide, deep_logit=deep)


MODEL = WideDeepModel
