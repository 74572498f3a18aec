"""`build_model(config)`: the registered model of kind `config.model` (models/registry.py)."""
from typing import Optional, Sequence

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import registry
from models.base import CtrModel
from models.config import ModelConfig


def build_model(config: ModelConfig) -> CtrModel:
    """A new, uncompiled model for `config` (the class models/zoo/<config.model>.py registers)."""
    return registry.build(config)


def build_compiled_model(config: ModelConfig,
                         metrics: Optional[Sequence[tf.keras.metrics.Metric]] = None) -> CtrModel:
    """`build_model` compiled with the configured optimizer and, by default, an AUC metric."""
    model = build_model(config)
    if metrics is None:
        metrics = [tf.keras.metrics.AUC(name="auc")]
    model.compile(metrics=list(metrics))
    return model
