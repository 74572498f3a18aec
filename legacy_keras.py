"""The one place that selects Keras 2 (tf_keras) for TensorFlow.

TFT 1.16 and TFMA 0.47 are built on Keras 2, while TensorFlow 2.16 defaults to Keras 3. The
switch is the environment variable TF_USE_LEGACY_KERAS, which TensorFlow reads once, when it
is first imported. Every package of this project that can lead to a TensorFlow import
(`pipeline`, `components`, `models`, `kubeflow`) and the test suite import this module first.
Setting the variable in os.environ also carries it to Beam worker processes started from here.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def check() -> None:
    """Fails loudly when TensorFlow was imported before Keras 2 was selected."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "TF_USE_LEGACY_KERAS is set to %r; this project needs TF_USE_LEGACY_KERAS=1 "
            "(TFT/TFMA 1.16 are built on Keras 2)." % os.environ.get("TF_USE_LEGACY_KERAS"))
    tf = sys.modules.get("tensorflow")
    if tf is not None and "tf_keras" not in getattr(getattr(tf, "keras", None), "__name__", "tf_keras"):
        raise RuntimeError(
            "TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, so tf.keras is "
            "Keras 3. Import `legacy_keras` (or any package of this project) before tensorflow.")


check()
