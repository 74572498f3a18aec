"""components package."""
import legacy_keras  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import beam_fixes  # noqa: F401  (Beam data-plane race that drops data)


def __getattr__(name):
    # Lazy, so importing `components` stays cheap: KFP v2 step containers import custom
    # artifact classes by their TYPE_NAME ('components.FeedbackLogReport').
    if name == "FeedbackLogReport":
        from components.feedback_example_gen.component import FeedbackLogReport
        return FeedbackLogReport
    raise AttributeError("module 'components' has no attribute %r" % name)
