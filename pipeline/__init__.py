"""pipeline package."""
import legacy_keras  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import beam_fixes  # noqa: F401,E402  (Beam data-plane race that drops data)
