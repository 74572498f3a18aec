"""The Beam graph of the feedback-history ExampleGen.

    item files ─ReadAll─> parse ─┬─ bad rows ─────────────────────────> bad_rows-*.jsonl
                                 └─ items ─dedupe─> side input (cate, brand, price)
    event + user files ─ReadAll─> parse, fill from items, key by user ─┬─ bad rows (as above)
                                 (one fused step per line)              ├─ counts, latest time
                                                                        └─ GroupByKey(user) ─>
        one user at a time: sort, strictly-earlier histories ─> train / eval examples

Only one user's events are held in memory at a time (after the group-by-user shuffle). The
item table is a side input: the public data's 846k ads take about 150 MB per worker.
"""
import collections
import json
import logging
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from components.feedback_example_gen import history, readers

SECONDS_PER_DAY = readers.SECONDS_PER_DAY
# Count key prefix of the events read, by feedback type ('events/click', ...; the report).
EVENTS_OF_TYPE = "events/"
BAD_ROWS_PREFIX = "bad_rows"
SUMMARY_FILE = "summary.json"

logger = logging.getLogger(__name__)


class LogFiles(NamedTuple):
    """The files of one input folder, grouped by kind, with each file's header line."""

    layout: str
    files: Dict[str, List[str]]        # kind -> paths
    headers: Dict[str, bytes]          # path -> header line
    unread: Dict[str, str] = {}        # path -> why the file is not read
    input_base: str = ""               # the folder the files were found under
    # path -> lines sampled across an event file (for the plausible range of event times)
    time_samples: Dict[str, List[bytes]] = {}

    def display_name(self, path: str) -> str:
        """How reports name a file: its path under the input folder (events-1.csv,
        day=2017-05-06/events.csv), so that files of the same name in two date folders
        stay apart."""
        base = self.input_base.rstrip("/") + "/"
        return path[len(base):] if self.input_base and path.startswith(base) else path

    def paths_by_display_name(self) -> Dict[str, str]:
        return {self.display_name(p): p for paths in self.files.values() for p in paths}

    @property
    def profile_fields(self) -> Tuple[str, ...]:
        """Profile fields across all user tables, in header order, user id left out."""
        fields: List[str] = []
        for path in self.files.get("users", []):
            reader = readers.reader_for(self.layout, "users", self.headers[path], path)
            fields += [c for c in reader.columns if c != "user_id" and c not in fields]
        return tuple(fields)


class BadInputFileError(ValueError):
    """A file of the input cannot be read whole (a truncated or corrupt archive), or the
    folder holds log-like files the run would not read."""


def _whole_lines(data: bytes, limit: int) -> Dict[int, bytes]:
    """Up to `limit` complete lines spread evenly over a piece cut from the middle of a file,
    by their offset in the piece: the line after each of `limit` evenly spaced offsets (what
    precedes the first line end may be partial, and so may a last line without one: never
    taken)."""
    lines: Dict[int, bytes] = {}
    for k in range(limit):
        start = data.find(b"\n", len(data) * k // limit)
        end = data.find(b"\n", start + 1) if start >= 0 else -1
        if end < 0:
            break
        if data[start + 1:end].strip():
            lines[start + 1] = data[start + 1:end]
    return lines


def verify_compressed(path: str, chunk_bytes: int = 1 << 20,
                      sample_lines_per_chunk: int = 0) -> List[bytes]:
    """Decompresses a .gz / .bz2 file to its end; raises BadInputFileError naming the file
    and the compressed byte offset when the stream is corrupt or stops before its end
    marker. Beam's reader stops quietly at a cut-off stream, so without this a truncated
    archive would lose its tail without a bad row. Multi-member gzip files (concatenated
    archives) are accepted. Returns up to `sample_lines_per_chunk` whole lines from each
    chunk's output (a sample spread over the whole file, at no extra read)."""
    import bz2
    import zlib

    from apache_beam.io.filesystem import CompressionTypes
    lower = path.lower()
    if lower.endswith(".gz"):
        kind, new = "gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif lower.endswith(".bz2"):
        kind, new = "bzip2", bz2.BZ2Decompressor
    else:
        return []
    sample: List[bytes] = []
    offset, in_stream, decompressor = 0, False, new()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while True:
            data = f.read(chunk_bytes)
            if not data:
                break
            while data:
                if not in_stream and not data.strip(b"\0"):
                    offset += len(data)  # zero padding after the last member
                    break
                try:
                    out = decompressor.decompress(data)
                except (zlib.error, OSError, EOFError) as error:
                    raise BadInputFileError(
                        "%s: corrupt %s data near compressed byte %d (%s); the file cannot be "
                        "read to its end: replace it or remove it from the data folder"
                        % (path, kind, offset, error)) from None
                if sample_lines_per_chunk:
                    sample += _whole_lines(out, sample_lines_per_chunk).values()
                if decompressor.eof:
                    rest = decompressor.unused_data
                    offset += len(data) - len(rest)
                    data, in_stream, decompressor = rest, False, new()
                else:
                    offset += len(data)
                    data, in_stream = b"", True
    if in_stream:
        raise BadInputFileError(
            "%s: truncated %s file: the compressed stream stops at byte %d before its end "
            "marker, so its last lines are missing; copy the file again (or remove it)"
            % (path, kind, offset))
    return sample


# Event times sampled per uncompressed event file (pieces read at evenly spaced offsets) to
# find the logs' median time; compressed files give a few lines of every decompressed chunk.
TIME_SAMPLE_PIECES = 64
TIME_SAMPLE_LINES_PER_PIECE = 8
TIME_SAMPLE_LINES_PER_CHUNK = 32   # per MiB of a compressed file
_TIME_SAMPLE_PIECE_BYTES = 16 << 10


def sample_lines(path: str, size: int, pieces: int = TIME_SAMPLE_PIECES,
                 lines_per_piece: int = TIME_SAMPLE_LINES_PER_PIECE) -> List[bytes]:
    """Whole lines read at `pieces` evenly spaced offsets of an uncompressed file (the
    header, always on the first line, is never among them)."""
    from apache_beam.io.filesystem import CompressionTypes
    sample: Dict[int, bytes] = {}  # by offset in the file: a small file's pieces overlap
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for piece in range(pieces):
            offset = size * piece // pieces
            f.seek(offset)
            for start, line in _whole_lines(f.read(_TIME_SAMPLE_PIECE_BYTES),
                                            lines_per_piece).items():
                sample[offset + start] = line
    return [line for _, line in sorted(sample.items())]


def sampled_event_times(log_files: "LogFiles") -> List[int]:
    """Timestamps of the sampled event lines that parse as events (bad lines left out)."""
    times = []
    for kind in EVENT_KINDS:
        for path in log_files.files.get(kind, []):
            reader = readers.reader_for(log_files.layout, kind, log_files.headers[path], path)
            for line in log_files.time_samples.get(path, []):
                record = reader(line)
                if isinstance(record, readers.Event):
                    times.append(record.timestamp)
    return times


def _is_hidden(path: str) -> bool:
    """A hidden or marker file (.DS_Store, _SUCCESS, ...): never a log."""
    return path.rsplit("/", 1)[-1].startswith((".", "_"))


def _unread_reason(path: str, layout: str) -> str:
    base = path.rsplit("/", 1)[-1]
    if _is_hidden(path):
        return "hidden or marker file"
    for pattern, reason in readers.KNOWN_NON_LOGS:
        if pattern.match(base):
            return reason
    if readers.LOG_LIKE_NAME.search(base):
        return "looks like a log but matches no file of the %s layout (%s)" % (
            layout, readers.expected_names(layout))
    return "not a log file of the %s layout" % layout


def discover(input_base: str, layout: str = "auto", ignore_unknown_files: bool = False,
             check_archives: bool = True, log_unread: bool = True) -> LogFiles:
    """Lists the log files under `input_base` (recursively: date partitions such as
    day=2017-05-06/events.csv are read), reads their headers and checks that every
    compressed file can be read to its end. Every file that is not read is returned in
    `unread` with its reason; a log-like file (.csv, .gz, .bz2, ...) that matches no role
    of the layout is an error unless `ignore_unknown_files`. Fails clearly if nothing is left.
    `check_archives=False` skips the decompression check (for a quick look at the headers).
    """
    pattern = input_base.rstrip("/") + "/**"
    matches = FileSystems.match([pattern])[0].metadata_list
    unread = {m.path: "empty file" for m in matches if m.size_in_bytes == 0}
    candidates = sorted(m.path for m in matches if m.size_in_bytes > 0)
    paths = [p for p in candidates if not _is_hidden(p)]
    if not paths:
        raise ValueError("no files found under %s" % input_base)
    if layout == "auto":
        layout = readers.detect_layout(paths)
    elif layout not in readers.LAYOUTS:
        raise ValueError("unknown layout %r; expected 'auto', %s"
                         % (layout, ", ".join(repr(k) for k in readers.LAYOUTS)))
    files = readers.classify_files(layout, paths)
    classified = {p for kind_paths in files.values() for p in kind_paths}
    for path in candidates:
        if path not in classified:
            unread[path] = _unread_reason(path, layout)
    unknown_logs = sorted(p for p, why in unread.items() if why.startswith("looks like a log"))
    if unknown_logs and not ignore_unknown_files:
        raise BadInputFileError(
            "%d file(s) under %s look like logs but match no file of the %s layout, so they "
            "would not be read: %s. Expected names: %s. Rename them, move them out, or pass "
            "--ignore-unknown-files to run without them."
            % (len(unknown_logs), input_base, layout, ", ".join(unknown_logs),
               readers.expected_names(layout)))
    for kind in readers.REQUIRED_KINDS[layout]:
        if not files[kind]:
            raise ValueError("the %s layout needs %s files under %s" % (layout, kind, input_base))
    headers, time_samples = {}, {}
    sizes = {m.path: m.size_in_bytes for m in matches}
    for kind, kind_paths in files.items():
        for path in kind_paths:
            sample_events = kind in EVENT_KINDS
            if check_archives:
                sample = verify_compressed(
                    path, sample_lines_per_chunk=TIME_SAMPLE_LINES_PER_CHUNK * sample_events)
                if sample_events and not path.lower().endswith((".gz", ".bz2")):
                    sample = sample_lines(path, sizes[path])
                time_samples[path] = sample
            with FileSystems.open(path) as f:
                headers[path] = f.readline()
    for path, why in sorted(unread.items()) if log_unread else ():
        # A log-like file left out is worth a warning; a README or a marker file is not.
        level = logging.WARNING if why.startswith("looks like a log") else logging.INFO
        logger.log(level, "not read: %s (%s)", path, why)
    return LogFiles(layout, files, headers, unread, input_base, time_samples)


# Resolution of --eval-fraction: the boundary is one of this many quantiles of the
# impression times (Beam's ApproximateQuantiles; exact below its buffer size).
EVAL_FRACTION_QUANTILES = 1000


def eval_start_for_fraction(quantiles: List[int], fraction: float) -> int:
    """The impression time from which about `fraction` of the impressions lie (the eval
    split: every impression at or after it). `quantiles` are the evenly spaced quantiles of
    the impression times, smallest first; never the first one, so the train split keeps
    at least the earliest second."""
    if not quantiles:
        return 0
    index = int(round((1.0 - fraction) * (len(quantiles) - 1)))
    return int(quantiles[min(max(index, 1), len(quantiles) - 1)])


def eval_start_timestamp(max_impression_timestamp: int, eval_days: int,
                         timezone_offset_hours: int) -> int:
    """First second of the last `eval_days` calendar days (in the logs' time zone)."""
    offset = timezone_offset_hours * 3600
    last_day_start = ((max_impression_timestamp + offset) // SECONDS_PER_DAY) * SECONDS_PER_DAY
    return last_day_start - offset - (eval_days - 1) * SECONDS_PER_DAY


# Each file is read in ranges of this size, so even a single log file keeps every worker busy.
READ_RANGE_BYTES = 2 << 20
EVENT_KINDS = ("events", "impressions", "behaviors")
# Values of the group-by-user shuffle: (tag, payload). Plain tuples: Beam encodes them natively.
EVENT_TAG, PROFILE_TAG = 0, 1


def _fill_from_item(event: readers.Event, items: Dict[str, readers.Item]) -> readers.Event:
    """Completes an event's category, brand and price from the item table.

    Ids logged with the event win over the table's (they were true at the time); the price
    always comes from the table.
    """
    item = items.get(event.item_id) if event.item_id else None
    if item is None:
        return event
    return event._replace(cate_id=event.cate_id or item.cate_id,
                          brand_id=event.brand_id or item.brand_id, price=item.price)


class _ParseLines(beam.DoFn):
    """(path, line) -> parsed records, keyed by user for the shuffle (or items for the table).

    Everything a line needs happens here, fused with the read: parse, set bad rows aside,
    complete events from the item table, key by user. Counts (lines per file, bad rows by
    reason, impressions, ...) and the latest impression time are kept per bundle and leave
    once, in finish_bundle, so they cost no per-line elements.

    Outputs: main — (user_id, (EVENT_TAG, event fields)) and (user_id, (PROFILE_TAG, profile
    fields)), or Item records when reading the item table; 'bad' — BadRow; 'counts' —
    (name, n); 'max_time' — the latest impression timestamp of the bundle.
    """

    def __init__(self, file_readers: Dict[str, Tuple[str, object]], emit_times: bool = False,
                 task: str = "ctr"):
        super().__init__()
        self._emit_times = emit_times
        # Another task than CTR chooses its own example events (history.mark_task_examples).
        self._task = task
        # path -> (kind, reader, the count key of the file's lines)
        self._files = {path: (kind, reader, "lines/" + reader.source)
                       for path, (kind, reader) in file_readers.items()}

    def start_bundle(self):
        self._counts = collections.Counter()
        self._max_time = None

    def process(self, element, items=None):
        path, line = element
        kind, reader, lines_key = self._files[path]
        counts = self._counts
        counts[lines_key] += 1
        counts["role_lines/" + kind] += 1
        record = reader(line)
        if isinstance(record, readers.BadRow):
            counts["bad_rows/" + record.reason] += 1
            counts["role_bad_rows/" + kind] += 1
            yield beam.pvalue.TaggedOutput("bad", record)
        elif kind in EVENT_KINDS:
            if items:
                record = _fill_from_item(record, items)
            if self._task != "ctr":
                record = history.mark_task_examples(record, self._task)
            counts[EVENTS_OF_TYPE + record.feedback] += 1
            if record.is_impression:
                counts["impressions"] += 1
                if self._max_time is None or record.timestamp > self._max_time:
                    self._max_time = record.timestamp
                if self._emit_times:
                    yield beam.pvalue.TaggedOutput("times", record.timestamp)
            else:
                counts["history_only_events"] += 1
            yield record.user_id, (EVENT_TAG, tuple(record))
        elif kind == "users":
            counts["profile_rows"] += 1
            yield record.user_id, (PROFILE_TAG, record.fields)
        else:
            counts["item_rows"] += 1
            yield record

    def finish_bundle(self):
        for key, n in self._counts.items():
            yield beam.pvalue.TaggedOutput("counts", GlobalWindows.windowed_value((key, n)))
        if self._max_time is not None:
            yield beam.pvalue.TaggedOutput("max_time",
                                           GlobalWindows.windowed_value(self._max_time))


class _BuildUserExamples(beam.DoFn):
    """One user's events (and profile) -> serialized tf.Examples, tagged 'train' or 'eval'.

    Counts leave through the 'counts' output once per user, not per example, to keep the
    per-element work of the pipeline down.
    """

    def __init__(self, profile_fields: Tuple[str, ...], max_seq_len: int, num_samples: int,
                 seed: int, drop_duplicate_events: bool = False, window_days: int = 0,
                 task: str = "ctr"):
        super().__init__()
        self._positive = history.F.task_positive(task)
        self._drop_duplicates = drop_duplicate_events
        self._window_days = window_days
        self._profile_fields = profile_fields
        self._max_seq_len = max_seq_len
        self._num_samples = num_samples
        self._seed = seed

    def process(self, element, eval_start: int):
        user_id, values = element
        profiles, events = [], []
        for tag, payload in values:
            if tag == EVENT_TAG:
                events.append(readers.Event(*payload))
            else:
                profiles.append(payload)
        profiles.sort()
        if len(profiles) > 1:
            yield beam.pvalue.TaggedOutput("counts", ("duplicate_profile_rows", len(profiles) - 1))
        profile = dict(profiles[0]) if profiles else None
        # What reached this user after the shuffle, checked against what was read: a runner
        # that loses elements in the shuffle fails the run instead of passing quietly.
        impressions = sum(1 for e in events if e.is_impression)
        yield beam.pvalue.TaggedOutput("counts", ("events_grouped", len(events)))
        # Exact repeats of an event (same fields, same second): counted, so that a doubled
        # file shows in the summary; kept as the log has them unless drop_duplicate_events.
        yield beam.pvalue.TaggedOutput("counts", ("duplicate_events",
                                                  len(events) - len(set(events))))
        yield beam.pvalue.TaggedOutput("counts", ("impressions_grouped", impressions))
        if self._drop_duplicates:
            unique = list(dict.fromkeys(events))  # the first of each, in log order
            dropped_impressions = impressions - sum(1 for e in unique if e.is_impression)
            yield beam.pvalue.TaggedOutput("counts", ("duplicate_events_dropped",
                                                      len(events) - len(unique)))
            yield beam.pvalue.TaggedOutput("counts", ("duplicate_impressions_dropped",
                                                      dropped_impressions))
            events, impressions = unique, impressions - dropped_impressions
        if not impressions:
            return
        # A rolling training window: impressions more than window_days days before the
        # eval split form no example (counted; their events stay in later histories).
        train_start = eval_start - self._window_days * SECONDS_PER_DAY if self._window_days else 0
        if train_start:
            yield beam.pvalue.TaggedOutput("counts", (
                "impressions_before_window",
                sum(1 for e in events if e.is_impression and e.timestamp < train_start)))
        config = history.HistoryConfig(self._max_seq_len, self._num_samples, self._seed,
                                       eval_start, train_start, self._positive)
        produced = {history.TRAIN: 0, history.EVAL: 0}
        clicks = {history.TRAIN: 0, history.EVAL: 0}
        without_category = 0
        for split, example in history.build_user_examples(user_id, events, profile,
                                                          self._profile_fields, config):
            produced[split] += 1
            clicks[split] += example[history.F.LABEL][0]
            without_category += not example[history.F.CATE_ID][0]
            yield beam.pvalue.TaggedOutput(split, history.serialize_example(example))
        for split, count in produced.items():
            yield beam.pvalue.TaggedOutput("counts", ("examples_" + split, count))
            yield beam.pvalue.TaggedOutput("counts", ("clicks_" + split, clicks[split]))
        yield beam.pvalue.TaggedOutput("counts", ("users_with_impressions", 1))
        # An impression whose item is in no table and whose log has no category (possible in
        # the Tianchi layout) keeps an empty category: counted, not dropped.
        yield beam.pvalue.TaggedOutput("counts", ("impressions_without_category",
                                                  without_category))
        if profile is None:
            yield beam.pvalue.TaggedOutput("counts",
                                           ("impressions_of_users_without_profile", impressions))


def _bad_row_json(row: readers.BadRow) -> str:
    return json.dumps({"source": row.source, "reason": row.reason, "detail": row.detail,
                       "line": row.line}, ensure_ascii=False)


class BuildFeedbackExamples(beam.PTransform):
    """The whole ExampleGen graph. Outputs {'train': PCollection[bytes], 'eval': ...}.

    Side effects: bad rows as JSON lines under `report_dir`/bad_rows-*.jsonl and the counts
    as `report_dir`/summary.json.

    Two reads: the item table first (it becomes a side input), then every other file in one
    read, so each event is parsed, completed, keyed and handed to the group-by-user shuffle in
    a single fused step and crosses between workers only once.
    """

    def __init__(self, log_files: LogFiles, report_dir: str, max_seq_len: int, num_samples: int,
                 eval_days: int, seed: int, timezone_offset_hours: int = 8,
                 eval_start_override: Optional[int] = None,
                 eval_fraction: Optional[float] = None,
                 time_window: Optional[readers.TimeWindow] = None,
                 drop_duplicate_events: bool = False, window_days: int = 0,
                 task: str = "ctr"):
        super().__init__()
        if task not in history.F.TASKS:
            raise ValueError("task=%r, expected one of %s" % (task, tuple(history.F.TASKS)))
        self._task = task
        self._time_window = time_window
        self._window_days = window_days
        self._drop_duplicates = drop_duplicate_events
        self._files = log_files
        self._report_dir = report_dir
        self._max_seq_len = max_seq_len
        self._num_samples = num_samples
        self._eval_days = eval_days
        self._seed = seed
        self._tz = timezone_offset_hours
        self._eval_start_override = eval_start_override
        self._eval_fraction = eval_fraction

    def _file_readers(self, kinds) -> Dict[str, Tuple[str, object]]:
        layout = self._files.layout
        out = {}
        for kind in kinds:
            for path in self._files.files.get(kind, []):
                reader = readers.reader_for(layout, kind, self._files.headers[path],
                                            self._files.display_name(path))
                if self._time_window is not None:
                    reader.set_time_window(self._time_window)
                out[path] = (kind, reader)
        return out

    def _parse(self, pbegin, label: str, file_readers, emit_times: bool = False, **side_inputs):
        lines = (pbegin | "Files[%s]" % label >> beam.Create(sorted(file_readers))
                 | "Read[%s]" % label >> beam.io.ReadAllFromText(
                     desired_bundle_size=READ_RANGE_BYTES, skip_header_lines=1,
                     coder=beam.coders.BytesCoder(), with_filename=True))
        return lines | "Parse[%s]" % label >> beam.ParDo(
            _ParseLines(file_readers, emit_times, self._task), **side_inputs).with_outputs(
                "bad", "counts", "max_time", "times", main="records")

    def expand(self, pbegin):
        layout = self._files.layout
        item_readers = self._file_readers(["items"])
        other_readers = self._file_readers([k for k in self._files.files if k != "items"])

        counts, bad = [], []
        if item_readers:
            items = self._parse(pbegin, "items", item_readers)
            counts.append(items.counts)
            bad.append(items.bad)
            grouped_items = (items.records
                             | "KeyItems" >> beam.Map(lambda item: (item.item_id, item))
                             | "GroupItems" >> beam.GroupByKey())
            counts.append(grouped_items | "CountDuplicateItems" >> beam.Map(
                lambda kv: ("duplicate_item_rows", len(list(kv[1])) - 1)))
            # The smallest row of a duplicated item id wins, so reruns agree.
            item_pairs = grouped_items | "FirstItem" >> beam.Map(lambda kv: (kv[0], min(kv[1])))
        else:
            item_pairs = pbegin | "NoItems" >> beam.Create([])
        by_fraction = self._eval_start_override is None and self._eval_fraction is not None
        main = self._parse(pbegin, "events", other_readers, emit_times=by_fraction,
                           items=beam.pvalue.AsDict(item_pairs))
        counts.append(main.counts)
        bad.append(main.bad)

        _ = (bad | "AllBadRows" >> beam.Flatten()
             | "BadRowJson" >> beam.Map(_bad_row_json)
             | "WriteBadRows" >> beam.io.WriteToText(
                 os.path.join(self._report_dir, BAD_ROWS_PREFIX), file_name_suffix=".jsonl"))

        if self._eval_start_override is not None:
            eval_start = pbegin | "EvalStart" >> beam.Create([self._eval_start_override])
        elif by_fraction:
            fraction = self._eval_fraction
            eval_start = (main.times
                          | "TimeQuantiles" >> beam.ApproximateQuantiles.Globally(
                              EVAL_FRACTION_QUANTILES + 1)
                          | "EvalStart" >> beam.Map(
                              lambda q: eval_start_for_fraction(q, fraction)))
        else:
            eval_days, tz = self._eval_days, self._tz
            eval_start = (main.max_time
                          | "MaxTime" >> beam.CombineGlobally(lambda xs: max(xs, default=0))
                          | "EvalStart" >> beam.Map(
                              lambda t: eval_start_timestamp(t, eval_days, tz)))
        counts.append(eval_start | "KeyEvalStart" >> beam.Map(lambda t: ("eval_start_timestamp", t)))
        if self._time_window is not None:
            window = self._time_window
            counts.append(pbegin | "TimeWindow" >> beam.Create([
                ("time_window_start", window.start), ("time_window_end", window.end),
                ("time_window_days", window.days)]))

        built = (main.records
                 | "GroupByUser" >> beam.GroupByKey()
                 | "BuildExamples" >> beam.ParDo(
                     _BuildUserExamples(self._files.profile_fields, self._max_seq_len,
                                        self._num_samples, self._seed, self._drop_duplicates,
                                        self._window_days, self._task),
                     eval_start=beam.pvalue.AsSingleton(eval_start)).with_outputs(
                         "counts", history.TRAIN, history.EVAL))
        counts.append(built.counts)

        _ = (counts | "AllCounts" >> beam.Flatten()
             | "SumCounts" >> beam.CombinePerKey(sum)
             | "CountsToDict" >> beam.combiners.ToDict()
             | "SummaryJson" >> beam.Map(lambda d, unread: json.dumps(
                 {"layout": layout, "counts": dict(sorted(d.items())),
                  "unread_files": unread}, indent=2), dict(sorted(self._files.unread.items())))
             | "WriteSummary" >> beam.io.WriteToText(
                 os.path.join(self._report_dir, SUMMARY_FILE), num_shards=1,
                 shard_name_template=""))
        return {history.TRAIN: built[history.TRAIN], history.EVAL: built[history.EVAL]}


class LogSummary(NamedTuple):
    layout: str
    counts: Dict[str, int]
    unread_files: Dict[str, str] = {}  # path -> why it was not read

    @property
    def lines(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("lines/"))

    @property
    def bad_rows(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("bad_rows/"))

    @property
    def bad_row_fraction(self) -> float:
        return self.bad_rows / self.lines if self.lines else 0.0

    def role_bad_row_fractions(self) -> Dict[str, Tuple[int, int, float]]:
        """{file role (events, items, users, ...): (bad rows, lines, fraction)}: a small
        table with many bad rows must not hide behind a large event log, nor the reverse."""
        out = {}
        for key, lines in self.counts.items():
            if key.startswith("role_lines/"):
                role = key[len("role_lines/"):]
                bad = self.counts.get("role_bad_rows/" + role, 0)
                out[role] = (bad, lines, bad / lines if lines else 0.0)
        return out

    def format(self) -> str:
        c = self.counts
        lines = ["layout %s: %d lines read, %d bad rows (%.4f%%)"
                 % (self.layout, self.lines, self.bad_rows, 100 * self.bad_row_fraction)]
        lines += ["  bad rows, %s: %d" % (k[len("bad_rows/"):], v)
                  for k, v in sorted(c.items()) if k.startswith("bad_rows/")]
        lines.append("examples: train %d, eval %d (eval from timestamp %d); %d users with "
                     "impressions" % (c.get("examples_train", 0), c.get("examples_eval", 0),
                                      c.get("eval_start_timestamp", 0),
                                      c.get("users_with_impressions", 0)))
        if "time_window_start" in c:
            lines.append("event times kept: %s to %s (the median +- %d days; outside: "
                         "bad rows, timestamp_out_of_range)" % (
                             readers.utc_date(c["time_window_start"]),
                             readers.utc_date(c["time_window_end"]), c["time_window_days"]))
        for role, (bad, n, fraction) in sorted(self.role_bad_row_fractions().items()):
            lines.append("  %s files: %d lines, %d bad (%.4f%%)" % (role, n, bad, 100 * fraction))
        for key in ("history_only_events", "impressions_before_window",
                    "duplicate_events", "duplicate_events_dropped",
                    "duplicate_impressions_dropped", "duplicate_item_rows",
                    "duplicate_profile_rows",
                    "impressions_without_category", "impressions_of_users_without_profile"):
            if c.get(key):
                lines.append("  %s: %d" % (key.replace("_", " "), c[key]))
        for path, why in sorted(self.unread_files.items()):
            lines.append("  not read: %s (%s)" % (path, why))
        return "\n".join(lines)


def read_summary(report_dir: str) -> LogSummary:
    with FileSystems.open(os.path.join(report_dir, SUMMARY_FILE)) as f:
        data = json.loads(f.read().decode())
    return LogSummary(data["layout"], data["counts"], data.get("unread_files", {}))
