"""DUMN's user memory network as a plug-in for other models (DUMN paper §4.2.2, Table 3).

The paper adds the user memory network (UMN, §3.4, eq. 8-12) and its triplet loss
(eq. 17-20) to AutoInt and DFN (AutoInt+UMN, DFN+UMN). `UserMemoryPlugin` is that network
for any host model with one short-term vector per feedback channel: a memory per channel,
written after each training step with the batch mean of eq. 12 (CtrModel.train_step), read
with the controller's input Concat(f_x, e_user) (eq. 8), the triplet loss anchoring each
channel's write (and read) on the user's own samples of that feedback type against the
opposite type's. It takes every UMN setting of ModelConfig (memory_slots, memory_dim,
ffn_units, key strength, masked write, triplet margin/weight/sampling/gradient, slot
diversity), so DUMN's memory and the plug-in are configured the same way.

A host enables it with ModelConfig(umn_plugin=True); it must declare SUPPORTS_UMN = True,
pass its short-term vectors and add the reads to its representation (AutoInt and DFN add
them as fields: models/zoo/autoint.py, dfn.py).
"""
from typing import Dict, Mapping, Sequence

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.layers import TripletLoss, UserMemory


class UserMemoryPlugin(tf.keras.layers.Layer):
    """UMN (eq. 8-12, 17-20) over a host's channels; see the module docstring."""

    def __init__(self, config, channels: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        c = config
        self.config = config
        self.channels = tuple(channels)
        self.memories = {ch: UserMemory(
            c.memory_slots, c.memory_dim, c.ffn_units, (ch,), init_stddev=c.memory_init_stddev,
            write_input_gradient=c.triplet_gradient == "full",
            key_strength=c.memory_key_strength, key_strength_init=c.memory_key_strength_init,
            read_strength_init=c.memory_read_strength_init, name="memory_" + ch)
            for ch in self.channels}
        self.triplet = (TripletLoss(c.memory_dim, [(ch, ch, F.OPPOSITE[ch]) for ch in self.channels],
                                    margin=c.triplet_margin, sampling=c.triplet_sampling,
                                    name="triplet_loss") if c.triplet_loss else None)

    def memory_variables(self) -> Dict[str, tf.Variable]:
        return {ch: layer.memory for ch, layer in self.memories.items()}

    def sample_types(self, inputs) -> tuple:
        """The feedback types whose triplet samples the loss needs, when the inputs hold
        them (training and evaluation; never serving)."""
        if self.triplet is None:
            return ()
        needed = sorted({t for ch in self.channels for t in (ch, F.OPPOSITE[ch])})
        if all(F.sample(t, p) in inputs for t in needed for p in F.ITEM_PARTS) and \
                all(F.sample_count(t) in inputs for t in needed):
            return tuple(needed)
        return ()

    def call(self, short: Mapping[str, tf.Tensor], e_user: tf.Tensor,
             masks: Mapping[str, tf.Tensor], samples=None, sample_counts=None,
             seed=None) -> Dict[str, object]:
        """short {channel: f [B, D]}, e_user [B, *], masks {channel: bool [B, T]}; samples and
        sample_counts: FeatureEmbedding's for `sample_types` (empty: no triplet loss).

        Returns {'reads': {channel: r [B, Z]}, 'aux_loss', 'triplet_loss',
        'slot_diversity_loss', 'memory_updates', 'memory_write_sums', 'memory' (each
        UserMemory's output, for models/diagnostics.py)}."""
        c = self.config
        reads, anchors, read_anchors, updates, write_sums, outputs = {}, {}, {}, {}, {}, {}
        for ch, memory in self.memories.items():
            writers = ({ch: tf.reduce_any(masks[ch], axis=1)} if c.memory_masked_write else None)
            out = memory({ch: tf.concat([short[ch], e_user], axis=-1)}, writers=writers)  # eq. 8
            reads[ch] = out["read"][ch]
            anchors[ch] = out["anchor"][ch]
            read_anchors[ch] = out["read_anchor"][ch]
            updates[ch] = out["new_memory"]
            write_sums[ch] = out["write_sums"]
            outputs[ch] = out
        triplet = tf.constant(0.0)
        if samples:
            if seed is None:
                seed = tf.constant([c.seed, 0], tf.int64)
            if c.triplet_gradient == "write_path":
                samples = {t: tf.stop_gradient(s) for t, s in samples.items()}
            triplet = self.triplet(anchors, samples, sample_counts, seed=seed)
            if c.triplet_on_read:
                triplet += self.triplet(read_anchors, samples, sample_counts,
                                        seed=seed + tf.constant([0, 1], tf.int64))
        diversity = tf.constant(0.0)
        if c.memory_diversity_weight > 0:
            diversity = tf.add_n([UserMemory.slot_cosine(m) for m in updates.values()])
        return {"reads": reads, "triplet_loss": triplet, "slot_diversity_loss": diversity,
                "aux_loss": c.triplet_weight * triplet + c.memory_diversity_weight * diversity,
                "memory_updates": updates, "memory_write_sums": write_sums, "memory": outputs}


# The entries of the plug-in's output a host passes on in its forward() dict.
FORWARDED = ("aux_loss", "triplet_loss", "slot_diversity_loss", "memory_updates",
             "memory_write_sums", "memory")


def read_fields(reads: Mapping[str, tf.Tensor], channels: Sequence[str],
                embedding_dim: int) -> tf.Tensor:
    """The reads as E-wide fields [B, len(channels) * Z / E, E] (Z a multiple of E)."""
    x = tf.concat([reads[ch] for ch in channels], axis=-1)
    return tf.reshape(x, [-1, x.shape[-1] // embedding_dim, embedding_dim])
