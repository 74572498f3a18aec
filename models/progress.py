"""Training progress for people: a log line every few hundred steps.

`PROGRESS_LOGGER` is the logger whose records the quiet console of a local run shows
(pipeline/console.py); Keras' own progress bar is too chatty for a log and too silent with
`verbose=2` (one line per epoch, and the Trainer trains one long epoch).
"""
import logging
import time

PROGRESS_LOGGER = "dumn.progress"


def progress_callback(total_steps: int, batch_size: int, every_steps: int = 100):
    """A Keras callback logging 'Trainer step s/N  loss  auc  examples/s' every
    `every_steps` steps and at the last one (examples/s over the steps since the last line),
    and 'Trainer validation: n steps in t s  val_loss  val_auc' after each validation pass
    (inside `fit`, so its time shows apart from the steps')."""
    import tensorflow as tf
    log = logging.getLogger(PROGRESS_LOGGER)

    class TrainingProgress(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._step = 0
            self._since = (time.time(), 0)

        def on_train_batch_end(self, batch, logs=None):
            self._step += 1
            if self._step % every_steps and self._step != total_steps:
                return
            logs = logs or {}
            started, first = self._since
            rate = (self._step - first) * batch_size / max(time.time() - started, 1e-9)
            figures = "".join("  %s %.4f" % (name, float(logs[name]))
                              for name in ("loss", "auc") if name in logs)
            log.info("Trainer step %d/%d%s  %.0f examples/s", self._step, total_steps, figures,
                     rate)
            self._since = (time.time(), self._step)

        def on_test_begin(self, logs=None):
            self._test = (time.time(), 0)

        def on_test_batch_end(self, batch, logs=None):
            self._test = (self._test[0], self._test[1] + 1)

        def on_test_end(self, logs=None):
            started, steps = getattr(self, "_test", (time.time(), 0))
            logs = logs or {}
            figures = "".join("  val_%s %.4f" % (name, float(logs[name]))
                              for name in ("loss", "auc") if name in logs)
            log.info("Trainer validation: %d steps in %.1f s%s", steps, time.time() - started,
                     figures)

    return TrainingProgress()
