"""Root pytest configuration: select Keras 2 before any test module imports TensorFlow."""
import legacy_keras  # noqa: F401
