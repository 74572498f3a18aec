"""pipeline package."""
import warnings

# google-auth / google-api-core announce their own deprecations (Python 3.10, grpcio) as
# FutureWarnings when Beam imports them: nothing a pipeline user can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")

import legacy_keras  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)
import beam_fixes  # noqa: F401,E402  (Beam data-plane race that drops data)
