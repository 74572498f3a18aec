"""DUMN (Bian et al., RecSys '21, §3) as a tf.keras Model with a custom train_step.

    embedding (§3.2) -> feature purification (eq. 1-7) -> user memory (eq. 8-12)
      -> PAIR (eq. 13-14) -> prediction head (eq. 15);  L = BCE (eq. 16) + lambda L2 (eq. 17-20)

`build_dumn(config)` returns a `DumnModel`. Input: a dict of transformed features as in
models/features.py (the label is not needed to predict; the triplet samples only to train).
Output of `model(features)`: the click probability, float32 [B]. `model(features,
return_aux=True)` returns every intermediate (short-term f and f^o, memory reads, anchors,
the memory updates, the triplet loss) for tests and analysis.

Ablations (models/config.py) change only their part:
* orthogonal_mapping=False (-FP): f_c, f_u pass unpurified;
* use_memory=False (-UMN): no memory, no reads, U_x = f_x * sigmoid(f_x W_1);
* shared_memory=True (+UMN1): one memory read and written by all channels' controllers;
* pair_mode: the fusion of eq. 13 (see PreferenceAwareInteraction);
* triplet_loss=False (-TL): L = BCE; triplet_sampling='random' (RS); triplet_gradient
  'write_path' (default) lets L2 train only the memory write path, 'full' everything;
* feedback_mode='implicit' (IF): click and unclick only (like/dislike inputs unread), memories
  M_c, M_u; 'merged' (AF): the four histories concatenated into one sequence of length 4T,
  each element tagged with a learned feedback-type embedding added to it, one attention, one
  memory M_a; its triplet loss takes click samples as positives and unclick samples as
  negatives (the CTR label's own pair).
"""
from typing import Dict

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.base import CtrModel
from models.config import ModelConfig
from models.layers import (FeaturePurification, PredictionHead, PreferenceAwareInteraction,
                           TripletLoss, UserMemory)

MERGED = "all"


class DumnModel(CtrModel):
    """The DUMN network; see the module docstring."""

    MODEL_KIND = "dumn"

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.channels = c.channels
        merged = c.feedback_mode == "merged"
        if merged:
            # AF: a feedback-type ("segment") embedding added to each element, so the merged
            # sequence still tells click from unclick/like/dislike.
            self.type_embedding = tf.keras.layers.Embedding(
                len(F.FEEDBACK_TYPES), c.sequence_element_dim, name="feedback_type_embedding")
        self.purification = FeaturePurification(
            self.channels, c.num_heads, scale=c.attention_scale,
            scale_length=c.max_seq_len * (len(F.FEEDBACK_TYPES) if merged else 1),
            orthogonal=c.orthogonal_mapping, name="feature_purification",
            attention_options=dict(
                scorer=c.target_attention, scorer_units=c.target_attention_units,
                pooling=c.attention_pooling, residual=c.attention_residual,
                recency_embedding=c.recency_embedding))
        self.memories = {}
        if c.use_memory:
            groups = ({"shared": self.channels} if c.shared_memory
                      else {ch: (ch,) for ch in self.channels})
            for name, chans in groups.items():
                self.memories[name] = UserMemory(
                    c.memory_slots, c.memory_dim, c.ffn_units, chans,
                    init_stddev=c.memory_init_stddev,
                    write_input_gradient=c.triplet_gradient == "full" or not c.triplet_loss,
                    key_strength=c.memory_key_strength,
                    key_strength_init=c.memory_key_strength_init,
                    read_strength_init=c.memory_read_strength_init,
                    name="memory_" + name)
        self.pair = PreferenceAwareInteraction(self.channels, c.pair_mode, c.use_memory,
                                               name="pair")
        self.head = PredictionHead(c.prediction_units, activation=c.prediction_activation,
                                   dropout=c.prediction_dropout, name="prediction_head")
        self.triplet = None
        if c.use_memory and c.triplet_loss:
            if merged:
                pairs = ((MERGED, "click", "unclick"),)
            else:
                pairs = tuple((ch, ch, F.OPPOSITE[ch]) for ch in self.channels)
            self.triplet = TripletLoss(c.memory_dim, pairs, margin=c.triplet_margin,
                                       sampling=c.triplet_sampling, name="triplet_loss")

    def memory_variables(self) -> Dict[str, tf.Variable]:
        return {name: layer.memory for name, layer in self.memories.items()}

    def _sample_types(self, inputs):
        """Feedback types whose triplet samples the loss needs, if they are in the inputs."""
        if self.triplet is None:
            return ()
        needed = sorted({t for _, pos, neg in self.triplet.pairs for t in (pos, neg)})
        if all(F.sample(t, p) in inputs for t in needed for p in F.ITEM_PARTS) and \
                all(F.sample_count(t) in inputs for t in needed):
            return tuple(needed)
        return ()

    def forward(self, inputs, training=False, triplet_seed=None):
        c = self.config
        sample_types = self._sample_types(inputs)
        emb = self.embedding(inputs, feedback_types=c.feedback_types, sample_types=sample_types)
        e_user, e_item = emb["user"], emb["item"]
        sequences, masks = emb["sequences"], emb["masks"]
        if c.feedback_mode == "merged":
            tagged = [sequences[f] + self.type_embedding(tf.constant(i))
                      for i, f in enumerate(F.FEEDBACK_TYPES)]
            sequences = {MERGED: tf.concat(tagged, axis=1)}
            masks = {MERGED: tf.concat([masks[f] for f in F.FEEDBACK_TYPES], axis=1)}

        # Feature purification (eq. 1-7).
        fp = self.purification(sequences, masks, e_user, e_item)
        short = fp["purified"]

        # User memory (eq. 8-12), reading the memory as it stood before this batch.
        reads, anchors, read_anchors, updates, memory_outputs = None, {}, {}, {}, {}
        write_sums = {}
        if self.memories:
            reads = {}
            for name, memory in self.memories.items():
                controller_inputs = {ch: tf.concat([short[ch], e_user], axis=-1)  # eq. 8
                                     for ch in memory.channels}
                writers = ({ch: tf.reduce_any(masks[ch], axis=1) for ch in memory.channels}
                           if c.memory_masked_write else None)
                out = memory(controller_inputs, writers=writers)
                reads.update(out["read"])
                anchors.update(out["anchor"])
                read_anchors.update(out["read_anchor"])
                updates[name] = out["new_memory"]
                write_sums[name] = out["write_sums"]
                memory_outputs[name] = out

        # PAIR (eq. 13-14) and prediction (eq. 15).
        r_cross = self.pair(short, reads, context=tf.concat([e_user, e_item], axis=-1))
        head_input = tf.concat([e_user, e_item, r_cross, emb["pid"], emb["price"]], axis=-1)
        logit, probability = self.head(head_input, training=training)

        # Triplet loss (eq. 17-20), only where the samples are fed (training / evaluation).
        triplet = tf.constant(0.0)
        if sample_types:
            if triplet_seed is None:
                triplet_seed = tf.constant([c.seed, 0], tf.int64)
            samples = emb["samples"]
            if c.triplet_gradient == "write_path":
                # The paper "records" the samples' embedding-layer outputs: the triplet loss
                # shapes the memory write (controller, W_s), not the shared item tables.
                samples = {t: tf.stop_gradient(s) for t, s in samples.items()}
            triplet = self.triplet(anchors, samples, emb["sample_counts"], seed=triplet_seed)
            if c.triplet_on_read:
                triplet += self.triplet(read_anchors, samples, emb["sample_counts"],
                                        seed=triplet_seed + tf.constant([0, 1], tf.int64))
        return {
            "logit": logit,
            "probability": probability,
            "aux_loss": c.triplet_weight * triplet,
            "triplet_loss": triplet,
            "memory_updates": updates,
            "memory_write_sums": write_sums,
            "short_term_raw": fp["raw"],
            "short_term": short,
            "long_term": reads or {},
            "anchors": anchors,
            "memory": memory_outputs,
            "r_cross": r_cross,
            "e_user": e_user,
            "e_item": e_item,
        }


def build_dumn(config: ModelConfig) -> DumnModel:
    """A new, uncompiled DumnModel (compile() defaults to LazyAdam at config.learning_rate)."""
    return DumnModel(config)
