"""Shared fixtures of the model tests (Keras 2 is selected before TensorFlow loads)."""
import legacy_keras  # noqa: F401  (must precede the first TensorFlow import)

import pytest
import tensorflow as tf

from models.testing_utils import tiny_config


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed():
    # Every test starts from the same global seeds (weights, Keras shuffling).
    tf.keras.utils.set_random_seed(1234)
    yield
