"""What a local run shows on the console, and where the rest goes.

A pipeline run writes thousands of log lines (Beam workers' channel chatter, TensorFlow's
C++ banners, TFX's artifact dumps, library FutureWarnings). `QuietConsole` sends all of it,
from this process and from every Beam worker process it starts, to one log file, by
pointing file descriptors 1 and 2 at that file, and keeps the terminal for:

* one line when a component starts and one when it ends, with its time and the peak resident
  memory of the run's processes while it ran (pipeline/memory.py);
* the progress lines of the `dumn.progress` logger (the Trainer's step, loss, AUC,
  examples/s; the simulator's shards);
* warnings and errors of this project's own loggers, and errors of any logger;
* whatever the caller `say`s (the summary, on stdout) or `error`s (on stderr), and whole
  tracebacks of unexpected errors (also written to the log file).

`--verbose` runs without it: everything on the console, as before.
"""
import logging
import os
import re
import sys
import time
from typing import Optional

from models.progress import PROGRESS_LOGGER
from pipeline.memory import PeakMemory, format_bytes
# Loggers of this project: their warnings reach the console.
OWN_LOGGERS = ("dumn", "components", "models", "pipeline", "simulator")
_COMPONENT = re.compile(r"^Component (\S+) is (running|finished)\.$")


def is_for_console(record: logging.LogRecord) -> bool:
    """Whether a log record belongs on the quiet console (see the module docstring)."""
    name = record.name
    if name in (PROGRESS_LOGGER, "dumn-pipeline") or name.startswith(PROGRESS_LOGGER + "."):
        return True
    if name == "absl" and _COMPONENT.match(record.getMessage()):
        return True
    if record.levelno >= logging.ERROR:
        return True
    own = name.split(".")[0] in OWN_LOGGERS or name.startswith("dumn")
    return own and record.levelno >= logging.WARNING


class ConsoleFormatter(logging.Formatter):
    """Component lines as 'HH:MM:SS Transform started / finished (243 s, peak 2.1 GB)'; the
    peak is left out without a `memory` sampler."""

    def __init__(self, memory: Optional[PeakMemory] = None):
        super().__init__()
        self._started = {}
        self._memory = memory

    def format(self, record):
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        match = _COMPONENT.match(message) if record.name == "absl" else None
        if match:
            name, state = match.groups()
            if state == "running":
                self._started[name] = record.created
                if self._memory is not None:
                    self._memory.reset()
                return "%s %s started" % (stamp, name)
            seconds = record.created - self._started.pop(name, record.created)
            if self._memory is None:
                return "%s %s finished (%.0f s)" % (stamp, name, seconds)
            return "%s %s finished (%.0f s, peak %s)" % (
                stamp, name, seconds, format_bytes(self._memory.peak()))
        if record.levelno >= logging.WARNING:
            return "%s %s: %s" % (stamp, record.levelname.lower(), message)
        return "%s %s" % (stamp, message)


class QuietConsole:
    """Context manager: the process's output goes to `log_path`; the console gets the lines
    `is_for_console` selects and what `say` prints."""

    def __init__(self, log_path: str):
        self.log_path = log_path
        self._console: Optional[object] = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self._stdout = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        self._console = os.fdopen(os.dup(self._saved[1]), "w", buffering=1)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        self._log = open(self.log_path, "a", buffering=1)
        root = logging.getLogger()
        # Every record to the log file (fd 2 is the file now), the chosen ones to the console.
        self._handlers = list(root.handlers)
        for handler in self._handlers:
            root.removeHandler(handler)
        to_file = logging.StreamHandler(self._log)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s",
                                               "%H:%M:%S"))
        to_console = logging.StreamHandler(self._console)
        to_console.addFilter(is_for_console)
        # Components run one at a time here (LocalDagRunner), so one window per component.
        self._memory = PeakMemory().start()
        to_console.setFormatter(ConsoleFormatter(self._memory))
        self._added = [to_file, to_console]
        for handler in self._added:
            root.addHandler(handler)
        self._levels = (root.level, logging.getLogger("absl").level)
        root.setLevel(logging.INFO)
        # TFX announces components through absl at INFO; a library may have raised it.
        logging.getLogger("absl").setLevel(logging.INFO)
        return self

    def say(self, text: str = "") -> None:
        """Prints to the console's stdout (and to the log file)."""
        print(text, file=self._stdout, flush=True)
        print(text, file=self._log, flush=True)

    def error(self, text: str) -> None:
        """Prints to the console's stderr (and to the log file)."""
        print(text, file=self._console, flush=True)
        print(text, file=self._log, flush=True)

    def log_traceback(self) -> None:
        """Writes the exception being handled, whole, to the log file only."""
        import traceback
        traceback.print_exc(file=self._log)

    def __exit__(self, kind, value, tb):
        if kind is not None:
            import traceback
            traceback.print_exception(kind, value, tb, file=self._log)
        sys.stdout.flush()
        sys.stderr.flush()
        root = logging.getLogger()
        for handler in self._added:
            root.removeHandler(handler)
        self._memory.stop()
        for handler in self._handlers:
            root.addHandler(handler)
        root.setLevel(self._levels[0])
        logging.getLogger("absl").setLevel(self._levels[1])
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._stdout.close()
        self._console.close()
        self._log.close()
        return False
