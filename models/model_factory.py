"""`build_model(config)`: DUMN or DIN, selected by `config.model`."""
from typing import Optional, Sequence

import legacy_keras  # noqa: F401
import tensorflow as tf

from models.base import CtrModel
from models.config import ModelConfig


def build_model(config: ModelConfig) -> CtrModel:
    """A new, uncompiled model for `config` ('dumn' -> DumnModel, 'din' -> DinModel)."""
    if config.model == "dumn":
        from models.dumn import build_dumn
        return build_dumn(config)
    if config.model == "din":
        from models.din import build_din
        return build_din(config)
    raise ValueError("unknown model %r; expected 'dumn' or 'din'" % (config.model,))


def build_compiled_model(config: ModelConfig,
                         metrics: Optional[Sequence[tf.keras.metrics.Metric]] = None) -> CtrModel:
    """`build_model` compiled with the configured optimizer and, by default, an AUC metric."""
    model = build_model(config)
    if metrics is None:
        metrics = [tf.keras.metrics.AUC(name="auc")]
    model.compile(metrics=list(metrics))
    return model
