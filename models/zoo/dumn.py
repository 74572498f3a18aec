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
  M_c, M_u; 'merged' (AF): one sequence of the user's T most recent events of all four types
  in time order, without a type tag (merged_order='time', `time_ordered_history`; §4.3.5),
  or the four histories concatenated (4T slots), each element tagged with a learned
  feedback-type embedding (merged_order='tagged'); one attention, one memory M_a; its
  triplet loss takes click samples as positives and unclick samples as negatives (the CTR
  label's own pair).
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


def time_ordered_history(inputs) -> Dict[str, tf.Tensor]:
    """AF's one sequence (§4.3.5): the T most recent events of all four types, oldest first.

    Gathers each element's ids from the per-type histories through the MERGED_EVENTS codes
    (1 + type + 4 * rank -> position length(type) - 1 - rank of seq(type, part)); a code
    whose event the history no longer holds (rank >= length) is dropped and the real
    elements are moved to the front, so the result follows the contract of one history:
    {seq(MERGED, part): int64 [B, T] per part, length(MERGED): int64 [B]}.
    """
    codes = tf.cast(inputs[F.MERGED_EVENTS], tf.int64)
    lengths = tf.stack([tf.cast(inputs[F.length(f)], tf.int64) for f in F.FEEDBACK_TYPES],
                       axis=1)  # [B, 4]
    kind, rank = F.merged_event_parts(codes)
    position = tf.gather(lengths, kind, batch_dims=1) - 1 - rank  # [B, T]
    width = tf.shape(inputs[F.seq(F.FEEDBACK_TYPES[0], F.ITEM_PARTS[0])])[1]
    real = (codes > 0) & (position >= 0) & (position < tf.cast(width, tf.int64))
    # Real elements first, in their (time) order: a stable sort on "is padding".
    order = tf.argsort(tf.cast(~real, tf.int32), axis=1, stable=True)
    index = tf.stack([tf.gather(tf.where(real, kind, 0), order, batch_dims=1),
                      tf.gather(tf.where(real, position, 0), order, batch_dims=1)], axis=-1)
    real = tf.gather(real, order, batch_dims=1)
    out = {F.length(MERGED): tf.reduce_sum(tf.cast(real, tf.int64), axis=1)}
    for part in F.ITEM_PARTS:
        stacked = tf.stack([inputs[F.seq(f, part)] for f in F.FEEDBACK_TYPES], axis=1)
        ids = tf.gather_nd(stacked, index, batch_dims=1)  # [B, T]
        out[F.seq(MERGED, part)] = tf.where(real, ids, tf.zeros_like(ids))
    return out


class DumnModel(CtrModel):
    """The DUMN network; see the module docstring."""

    MODEL_KIND = "dumn"

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.channels = c.channels
        merged = c.feedback_mode == "merged"
        self.time_ordered = merged and c.merged_order == "time"
        if merged and not self.time_ordered:
            # AF tagged: a feedback-type ("segment") embedding added to each element, so the
            # concatenated sequence still tells click from unclick/like/dislike.
            self.type_embedding = tf.keras.layers.Embedding(
                len(F.FEEDBACK_TYPES), c.sequence_element_dim, name="feedback_type_embedding")
        self.purification = FeaturePurification(
            self.channels, c.num_heads, scale=c.attention_scale,
            scale_length=c.max_seq_len * (len(F.FEEDBACK_TYPES)
                                          if merged and not self.time_ordered else 1),
            orthogonal=c.orthogonal_mapping, name="feature_purification",
            attention_options=dict(
                scorer=c.target_attention, scorer_units=c.target_attention_units,
                pooling=c.attention_pooling, residual=c.attention_residual,
                recency_embedding=c.recency_embedding, self_attention=c.self_attention))
        self.memories = {}
        if c.use_memory:
            groups = ({"shared": self.channels} if c.shared_memory
                      else {ch: (ch,) for ch in self.channels})
            for name, chans in groups.items():
                self.memories[name] = UserMemory(
                    c.memory_slots, c.memory_dim, c.ffn_units, chans,
                    init_stddev=c.memory_init_stddev,
                    # The auxiliary terms (triplet, slot diversity) train the write path;
                    # they reach f^o and e_user only with triplet_gradient='full'.
                    write_input_gradient=c.triplet_gradient == "full",
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
        if self.time_ordered:
            inputs = dict(inputs)
            inputs.update(time_ordered_history(inputs))
            emb = self.embedding(inputs, feedback_types=(MERGED,), sample_types=sample_types)
        else:
            emb = self.embedding(inputs, feedback_types=c.feedback_types,
                                 sample_types=sample_types)
        e_user, e_item = emb["user"], emb["item"]
        sequences, masks = emb["sequences"], emb["masks"]
        if c.feedback_mode == "merged" and not self.time_ordered:
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
        # Slot diversity of each memory as this batch writes it (config.memory_diversity_weight):
        # its gradient reaches the write path (write key, erase, add) through eq. 12.
        diversity = tf.constant(0.0)
        if updates and c.memory_diversity_weight > 0:
            diversity = tf.add_n([UserMemory.slot_cosine(m) for m in updates.values()])
        return {
            "logit": logit,
            "probability": probability,
            "aux_loss": c.triplet_weight * triplet + c.memory_diversity_weight * diversity,
            "triplet_loss": triplet,
            "slot_diversity_loss": diversity,
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


MODEL = DumnModel
