"""Line numbers for the bad rows FeedbackExampleGen set aside.

Beam's splittable text reader (ReadAllFromText) hands each worker a byte range of a file and
no line numbers, and a reader that counted lines would have to read every file in one piece
(losing the parallel read of a large log). So bad rows are located afterwards: only the
files that have bad rows are read once more, line by line in one pass each, and every bad
row's raw line is matched to the lines holding exactly that text. Lines are numbered from 1
with the header as line 1, as an editor shows them. Identical bad lines of one file (they
get the same reason, parsing depends on a line's text alone) take their line numbers in
file order.

The bad-row files (`bad_rows-*.jsonl` of the log report) are rewritten with a
`line_number` field on every row (null where the line could not be found, which only
happens when a non-UTF-8 line also holds a literal backslash escape), sorted by file and
line. Above `MAX_LOCATED_BAD_ROWS` rows nothing is located (the set of raw lines is held in
memory), and the log says so.
"""
import bz2
import collections
import gzip
import io
import json
import logging
import re
from typing import BinaryIO, Callable, Dict, Iterable, List, NamedTuple, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.feedback_example_gen import readers

logger = logging.getLogger(__name__)

MAX_LOCATED_BAD_ROWS = 200_000
LINE_NUMBER = "line_number"
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


class Located(NamedTuple):
    rows: int        # bad rows in the report
    located: int     # of which a line number was found
    files_read: int  # files read again to find them
    first: List[dict] = []  # the first few rows by file and line, for the log


def raw_bytes(printable_line: str, reason: str) -> bytes:
    """The bytes of the input line a bad row's `line` stands for (without the line end).

    A bad row keeps its line as text; a non-UTF-8 line is kept with its undecodable bytes
    escaped as \\xNN (readers._decode), which is undone here."""
    encoded = printable_line.encode("utf-8", "surrogateescape")
    if reason != readers.NON_UTF8:
        return encoded
    return _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), encoded)


def open_lines(path: str) -> BinaryIO:
    """The decompressed bytes of a log file (.gz and .bz2 by name, as the reader treats them)."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    lower = path.lower()
    if lower.endswith(".gz"):
        return io.BufferedReader(gzip.GzipFile(fileobj=raw))
    if lower.endswith(".bz2"):
        return io.BufferedReader(bz2.BZ2File(raw))
    return raw


def line_numbers(lines: Iterable[bytes], wanted: Iterable[bytes]) -> Dict[bytes, List[int]]:
    """{wanted text: the numbers (from 1) of the lines holding it, ascending}. A line is
    compared without its line end ("\\n", "\\r\\n"), as the reader sees it."""
    targets = set(wanted)
    found: Dict[bytes, List[int]] = collections.defaultdict(list)
    for number, line in enumerate(lines, start=1):
        text = line.rstrip(b"\r\n")
        if text in targets:
            found[text].append(number)
    return found


def locate_rows(rows: List[dict], paths_by_source: Dict[str, str],
                open_file: Callable[[str], BinaryIO] = open_lines) -> int:
    """Sets rows[i]['line_number'] for bad rows {source, reason, line, ...}; returns how many
    were found. `paths_by_source` maps a row's source to the file to read."""
    by_source: Dict[str, List[dict]] = collections.defaultdict(list)
    for row in rows:
        row[LINE_NUMBER] = None
        by_source[row["source"]].append(row)
    located = 0
    for source, source_rows in sorted(by_source.items()):
        path = paths_by_source.get(source)
        if path is None:
            continue
        keys = [raw_bytes(row["line"], row["reason"]) for row in source_rows]
        with open_file(path) as f:
            found = line_numbers(f, keys)
        # The header (line 1) is never a data row.
        queues = {key: collections.deque(n for n in numbers if n > 1)
                  for key, numbers in found.items()}
        for key, row in zip(keys, source_rows):
            queue = queues.get(key)
            if queue:
                row[LINE_NUMBER] = queue.popleft()
                located += 1
    return located


def _bad_row_files(report_dir: str, prefix: str) -> List[str]:
    pattern = "%s/%s-*" % (report_dir.rstrip("/"), prefix)
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # noqa: BLE001 - a report folder that does not exist holds no rows
        return []


def add_line_numbers(report_dir: str, prefix: str, paths_by_source: Dict[str, str],
                     max_rows: int = MAX_LOCATED_BAD_ROWS) -> Optional[Located]:
    """Rewrites the report's bad-row files with line numbers; None when there are more than
    `max_rows` bad rows (left as they are, and logged)."""
    files = _bad_row_files(report_dir, prefix)
    per_file: List[List[dict]] = []
    total = 0
    for path in files:
        with FileSystems.open(path) as f:
            rows = [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line]
        total += len(rows)
        if total > max_rows:
            logger.warning("%d+ bad rows: more than %d, so they are not given line numbers "
                           "(their raw lines and reasons are in %s/%s-*)",
                           total, max_rows, report_dir, prefix)
            return None
        per_file.append(rows)
    every_row = [row for rows in per_file for row in rows]
    if not every_row:
        return Located(0, 0, 0)
    located = locate_rows(every_row, paths_by_source)
    for path, rows in zip(files, per_file):
        rows.sort(key=lambda r: (r["source"], r[LINE_NUMBER] or 0))
        with FileSystems.create(path) as f:
            f.write("".join(json.dumps(row, ensure_ascii=False) + "\n"
                            for row in rows).encode("utf-8"))
    files_read = len({row["source"] for row in every_row} & set(paths_by_source))
    first = sorted(every_row, key=lambda r: (r["source"], r[LINE_NUMBER] or 0))[:5]
    return Located(len(every_row), located, files_read, first)


def first_rows(report_dir: str, prefix: str, limit: int = 5) -> List[dict]:
    """The first `limit` bad rows by file and line, for messages."""
    rows = []
    for path in _bad_row_files(report_dir, prefix):
        with FileSystems.open(path) as f:
            rows += [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line]
    rows.sort(key=lambda r: (r["source"], r.get(LINE_NUMBER) or 0))
    return rows[:limit]


def describe(row: dict) -> str:
    """'events-2.csv line 5: wrong column count (expected 7 columns, got 1)'."""
    where = row["source"]
    if row.get(LINE_NUMBER):
        where += " line %d" % row[LINE_NUMBER]
    detail = " (%s)" % row["detail"] if row.get("detail") else ""
    return "%s: %s%s" % (where, row["reason"], detail)
