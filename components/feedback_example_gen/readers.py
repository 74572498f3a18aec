"""Line readers for the two log layouts of SPEC §3: canonical and Tianchi Ali_Display_Ad_Click.

Each reader is a small picklable callable, built once per file from the file's header line,
that turns one line (bytes or str) into a typed record or into a `BadRow` with a reason. No
reader raises on a bad line, so a Beam pipeline can count and set aside bad rows without
losing the run; a header that lacks a required column raises at construction, before any
data is read, because every line of that file would be bad.

Records carry ids as strings (vocabularies are built later, by Transform); an empty id is ''.
"""
import csv
import math
import re
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

CLICK, UNCLICK, LIKE, DISLIKE = "click", "unclick", "like", "dislike"
FEEDBACK_VALUES = (CLICK, UNCLICK, LIKE, DISLIKE)

# Reasons a line is set aside. Counted by reason; the detail says what exactly was wrong.
EMPTY_LINE = "empty line"
NON_UTF8 = "non-UTF-8 bytes"
STRAY_QUOTE = "stray quote"
COLUMN_COUNT = "wrong column count"
EMPTY_USER = "empty user id"
BAD_TIMESTAMP = "non-numeric timestamp"
UNKNOWN_FEEDBACK = "unknown feedback value"
INCONSISTENT_LABEL = "inconsistent clk/nonclk"
NO_ITEM_OR_CATEGORY = "neither item id nor category id"
EMPTY_ITEM = "empty item id"
BAD_PRICE = "non-numeric price"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
TIMESTAMP_IN_MILLISECONDS = "timestamp_in_milliseconds"

# Plausible event times: from 2000-01-01 UTC to one day after the reader was built. A
# timestamp outside (a 1970 date from a cut-off value, the year 2100, milliseconds) would
# move the eval split's boundary or put an event in the wrong order: it is a bad row.
MIN_PLAUSIBLE_TIMESTAMP = 946684800
FUTURE_SLACK_SECONDS = 86400

# Without --max-days-from-median, events further than this from the logs' median time, or
# than twice the span of their middle 80%, whichever is more, are out of range: an event
# years off (a clock reset, a cut-off value that still passes as a date) would otherwise move
# the eval split's boundary.
MIN_WINDOW_DAYS = 30
SECONDS_PER_DAY = 86400


def utc_date(timestamp: int) -> str:
    if not -62135596800 <= timestamp <= 253402300799:  # years 1 to 9999
        return "not a date"
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


class TimeWindow(NamedTuple):
    """The plausible event times of one input: its median time +- `days`."""

    start: int
    end: int
    median: int
    days: int
    derived: bool   # days derived from the data (else given by the user)
    sampled: int    # event times the median was taken from

    def describe(self) -> str:
        return "more than %d days from the logs' median time %s (%s)" % (
            self.days, utc_date(self.median),
            "median and span of %d sampled event times" % self.sampled if self.derived
            else "--max-days-from-median")


def time_window(times: Sequence[int], max_days_from_median: Optional[int] = None,
                min_sampled: int = 20) -> Optional[TimeWindow]:
    """The window of plausible event times from a sample of them; None when the sample is
    too small to trust (then only the fixed 2000-to-tomorrow range applies)."""
    times = sorted(times)
    if len(times) < min_sampled:
        return None
    median = times[len(times) // 2]
    if max_days_from_median:
        days, derived = int(max_days_from_median), False
    else:
        middle_span = times[(len(times) * 9) // 10] - times[len(times) // 10]
        days = max(MIN_WINDOW_DAYS, int(math.ceil(2 * middle_span / SECONDS_PER_DAY)))
        derived = True
    return TimeWindow(median - days * SECONDS_PER_DAY, median + days * SECONDS_PER_DAY,
                      median, days, derived, len(times))


CANONICAL = "canonical"
TIANCHI = "tianchi"

# Values the public data uses for "no value".
_TIANCHI_EMPTY = ("", "NULL")


class Event(NamedTuple):
    """One user feedback event."""

    user_id: str
    item_id: str      # '' for category-level behaviour
    cate_id: str      # '' when the log does not carry it (filled from the item table)
    brand_id: str     # '' when unknown
    timestamp: int    # Unix seconds
    feedback: str     # one of FEEDBACK_VALUES
    pid: str          # '' when the log has no position id
    is_impression: bool  # True for a shown item: a training example (click = 1, unclick = 0)
    price: Optional[float] = None  # the item's price, filled from the item table


class UserProfile(NamedTuple):
    user_id: str
    fields: Tuple[Tuple[str, str], ...]  # (field name, value); '' = empty


class Item(NamedTuple):
    item_id: str
    cate_id: str
    brand_id: str
    price: Optional[float]


class BadRow(NamedTuple):
    source: str   # the file the line came from
    line: str     # the raw line, with non-UTF-8 bytes escaped
    reason: str   # one of the reason constants above
    detail: str


Record = Union[Event, UserProfile, Item, BadRow]


def _decode(line: Union[bytes, str]) -> Tuple[Optional[str], str]:
    """Returns (text or None if undecodable, printable raw line)."""
    if isinstance(line, bytes):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return None, line.decode("utf-8", "backslashreplace").rstrip("\r\n")
    else:
        text = line
    text = text.rstrip("\r\n")
    return text, text


def split_fields(text: str) -> Optional[List[str]]:
    """Splits one CSV line into stripped fields; None when its quoting is broken.

    Lines without quotes take a fast path (plain split), which matters for the 723M-line
    behaviour log. Properly quoted fields are accepted and unquoted.
    """
    if '"' not in text:
        return [field.strip() for field in text.split(",")]
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    if len(rows) != 1 or any('"' in field for field in rows[0]):
        return None
    return [field.strip() for field in rows[0]]


def parse_header(line: Union[bytes, str]) -> List[str]:
    """Column names of a header line: BOM, surrounding spaces and quotes removed."""
    text, _ = _decode(line)
    if text is None:
        raise ValueError("header line is not valid UTF-8: %r" % line)
    fields = split_fields(text.lstrip("\ufeff"))
    if fields is None:
        raise ValueError("header line has broken quoting: %r" % text)
    return fields


def parse_timestamp(value: str) -> Optional[int]:
    """Unix seconds from '1494000000' or '1494000000.0'; None if not a finite number >= 0."""
    if value.isdigit():
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return int(number)


class _LineReader:
    """Shared machinery: maps header names to positions and splits lines."""

    required: Sequence[str] = ()
    aliases: Dict[str, str] = {}

    def __init__(self, header: Union[bytes, str, Sequence[str]], source: str = ""):
        names = parse_header(header) if isinstance(header, (bytes, str)) else list(header)
        self.columns = [self.aliases.get(name, name) for name in names]
        self.source = source
        missing = [name for name in self.required if name not in self.columns]
        if missing:
            raise ValueError(
                "%s: header %r lacks required column(s) %s for %s"
                % (source or "input", ",".join(names), ", ".join(missing), type(self).__name__))
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.max_timestamp = int(time.time()) + FUTURE_SLACK_SECONDS
        self.min_timestamp = MIN_PLAUSIBLE_TIMESTAMP
        self.window_note = "2000-01-01 to tomorrow"

    def set_time_window(self, window: "TimeWindow") -> None:
        """Narrows the plausible event times to `window` (the logs' own median and span)."""
        self.min_timestamp = max(self.min_timestamp, window.start)
        self.max_timestamp = min(self.max_timestamp, window.end)
        self.window_note = window.describe()

    def _check_time(self, timestamp: int, raw: str) -> Optional[BadRow]:
        """A BadRow for an implausible event time, None for a plausible one."""
        if self.min_timestamp <= timestamp <= self.max_timestamp:
            return None
        if self.min_timestamp <= timestamp // 1000 <= self.max_timestamp:
            return self._bad(raw, TIMESTAMP_IN_MILLISECONDS,
                             "%d looks like milliseconds; the logs need Unix seconds" % timestamp)
        return self._bad(raw, TIMESTAMP_OUT_OF_RANGE, "%d (%s) is outside [%d, %d]: %s" % (
            timestamp, utc_date(timestamp), self.min_timestamp, self.max_timestamp,
            self.window_note))

    def _fields(self, line: Union[bytes, str]):
        """Returns (fields, raw) or (BadRow, raw)."""
        text, raw = _decode(line)
        if text is None:
            return self._bad(raw, NON_UTF8, "line is not valid UTF-8"), raw
        if not text.strip():
            return self._bad(raw, EMPTY_LINE, ""), raw
        fields = split_fields(text)
        if fields is None:
            return self._bad(raw, STRAY_QUOTE, "unbalanced or misplaced double quote"), raw
        if len(fields) != len(self.columns):
            return self._bad(raw, COLUMN_COUNT, "expected %d columns, got %d"
                             % (len(self.columns), len(fields))), raw
        return fields, raw

    def _bad(self, raw: str, reason: str, detail: str) -> BadRow:
        return BadRow(self.source, raw, reason, detail)

    def _user_and_time(self, fields: List[str], raw: str, user_column: str,
                       time_column: str) -> Union[Tuple[str, int], BadRow]:
        """(user id, timestamp) of an event line, or the BadRow every event reader gives."""
        user = fields[self.index[user_column]]
        if not user:
            return self._bad(raw, EMPTY_USER, "")
        timestamp = parse_timestamp(fields[self.index[time_column]])
        if timestamp is None:
            return self._bad(raw, BAD_TIMESTAMP, repr(fields[self.index[time_column]]))
        implausible = self._check_time(timestamp, raw)
        if implausible is not None:
            return implausible
        return user, timestamp


class CanonicalEventReader(_LineReader):
    """`events*.csv`: user_id, item_id, cate_id, brand_id, timestamp, feedback[, pid].

    Columns may come in any order; extra columns are ignored. A click or unclick with an item
    id is an impression; one without (category-level behaviour) is history only.
    """

    required = ("user_id", "item_id", "cate_id", "brand_id", "timestamp", "feedback")

    def __call__(self, line: Union[bytes, str]) -> Union[Event, BadRow]:
        fields, raw = self._fields(line)
        if isinstance(fields, BadRow):
            return fields
        checked = self._user_and_time(fields, raw, "user_id", "timestamp")
        if isinstance(checked, BadRow):
            return checked
        user, timestamp = checked
        get = self.index
        feedback = fields[get["feedback"]].lower()
        if feedback not in FEEDBACK_VALUES:
            return self._bad(raw, UNKNOWN_FEEDBACK, repr(fields[get["feedback"]]))
        item, cate = fields[get["item_id"]], fields[get["cate_id"]]
        if not item and not cate:
            return self._bad(raw, NO_ITEM_OR_CATEGORY, "")
        pid = fields[get["pid"]] if "pid" in get else ""
        return Event(user, item, cate, fields[get["brand_id"]], timestamp, feedback, pid,
                     bool(item) and feedback in (CLICK, UNCLICK))


class CanonicalUserReader(_LineReader):
    """`users.csv`: user_id and any number of categorical profile columns."""

    required = ("user_id",)

    def __call__(self, line: Union[bytes, str]) -> Union[UserProfile, BadRow]:
        fields, raw = self._fields(line)
        if isinstance(fields, BadRow):
            return fields
        user = fields[self.index["user_id"]]
        if not user:
            return self._bad(raw, EMPTY_USER, "")
        return UserProfile(user, tuple((name, value) for name, value in zip(self.columns, fields)
                                       if name != "user_id"))


class CanonicalItemReader(_LineReader):
    """`items.csv`: item_id, cate_id, brand_id[, price]."""

    required = ("item_id", "cate_id", "brand_id")
    empty_values = ("",)

    def __call__(self, line: Union[bytes, str]) -> Union[Item, BadRow]:
        fields, raw = self._fields(line)
        if isinstance(fields, BadRow):
            return fields
        get = self.index
        item = fields[get["item_id"]]
        if not item:
            return self._bad(raw, EMPTY_ITEM, "")
        price = None
        if "price" in get and fields[get["price"]] not in self.empty_values:
            try:
                price = float(fields[get["price"]])
            except ValueError:
                return self._bad(raw, BAD_PRICE, repr(fields[get["price"]]))
            if not math.isfinite(price):
                return self._bad(raw, BAD_PRICE, repr(fields[get["price"]]))
        brand = fields[get["brand_id"]]
        if brand in self.empty_values:
            brand = ""
        return Item(item, fields[get["cate_id"]], brand, price)


class TianchiImpressionReader(_LineReader):
    """`raw_sample.csv`: user,time_stamp,adgroup_id,pid,nonclk,clk — one impression a line.

    clk=1 is a click, clk=0 an unclick; nonclk must be its complement. The ad's category and
    brand come from ad_feature.csv (joined later), so they are '' here.
    """

    required = ("user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk")

    def __call__(self, line: Union[bytes, str]) -> Union[Event, BadRow]:
        fields, raw = self._fields(line)
        if isinstance(fields, BadRow):
            return fields
        checked = self._user_and_time(fields, raw, "user", "time_stamp")
        if isinstance(checked, BadRow):
            return checked
        user, timestamp = checked
        get = self.index
        clk, nonclk = fields[get["clk"]], fields[get["nonclk"]]
        if clk not in ("0", "1"):
            return self._bad(raw, UNKNOWN_FEEDBACK, "clk=%r" % clk)
        if nonclk not in ("0", "1") or int(clk) + int(nonclk) != 1:
            return self._bad(raw, INCONSISTENT_LABEL, "clk=%r nonclk=%r" % (clk, nonclk))
        item = fields[get["adgroup_id"]]
        if not item:
            return self._bad(raw, EMPTY_ITEM, "")
        return Event(user, item, "", "", timestamp, CLICK if clk == "1" else UNCLICK,
                     fields[get["pid"]], True)


class TianchiBehaviorReader(_LineReader):
    """`behavior_log.csv`: user,time_stamp,btag,cate,brand — history only, no item id.

    btag pv counts as a click; cart, fav and buy as a like. The public data has no dislike.
    brand can be NULL or empty.
    """

    required = ("user", "time_stamp", "btag", "cate", "brand")
    feedback_of_btag = {"pv": CLICK, "cart": LIKE, "fav": LIKE, "buy": LIKE}

    def __call__(self, line: Union[bytes, str]) -> Union[Event, BadRow]:
        fields, raw = self._fields(line)
        if isinstance(fields, BadRow):
            return fields
        checked = self._user_and_time(fields, raw, "user", "time_stamp")
        if isinstance(checked, BadRow):
            return checked
        user, timestamp = checked
        get = self.index
        feedback = self.feedback_of_btag.get(fields[get["btag"]].lower())
        if feedback is None:
            return self._bad(raw, UNKNOWN_FEEDBACK, "btag=%r" % fields[get["btag"]])
        cate = fields[get["cate"]]
        if cate in _TIANCHI_EMPTY:
            return self._bad(raw, NO_ITEM_OR_CATEGORY, "")
        brand = fields[get["brand"]]
        return Event(user, "", cate, "" if brand in _TIANCHI_EMPTY else brand, timestamp,
                     feedback, "", False)


class TianchiAdReader(CanonicalItemReader):
    """`ad_feature.csv`: adgroup_id,cate_id,campaign_id,customer,brand,price.

    The ad group is the item. brand can be NULL or empty; campaign and customer are not used
    by the model.
    """

    required = ("item_id", "cate_id", "brand_id")
    aliases = {"adgroup_id": "item_id", "brand": "brand_id"}
    empty_values = _TIANCHI_EMPTY


class TianchiUserReader(CanonicalUserReader):
    """`user_profile.csv`: userid,cms_segid,...,new_user_class_level (note the trailing space
    in the last header name, removed by `parse_header`). pvalue_level and
    new_user_class_level can be empty; about 7% of users have no row at all.
    """

    aliases = {"userid": "user_id"}


def _name_pattern(stem: str):
    """A file-name pattern: `stem` then .csv, optionally .gz or .bz2, in any letter case."""
    return re.compile(r"^%s\.csv(\.gz|\.bz2)?$" % stem, re.IGNORECASE)


# File name patterns of each layout, and the reader of each kind of file.
LAYOUTS = {
    CANONICAL: {
        "events": (_name_pattern(r"events.*"), CanonicalEventReader),
        "users": (_name_pattern(r"users"), CanonicalUserReader),
        "items": (_name_pattern(r"items"), CanonicalItemReader),
    },
    TIANCHI: {
        "impressions": (_name_pattern(r"raw_sample.*"), TianchiImpressionReader),
        "behaviors": (_name_pattern(r"behavior_log.*"), TianchiBehaviorReader),
        "users": (_name_pattern(r"user_profile.*"), TianchiUserReader),
        "items": (_name_pattern(r"ad_feature.*"), TianchiAdReader),
    },
}
# What a file that holds logs looks like: a file with such a name that matches no role of the
# layout is an error (unless the run is told to ignore unknown files), not a silent skip.
LOG_LIKE_NAME = re.compile(r"\.(csv|tsv|txt|gz|bz2)$", re.IGNORECASE)
# Files that live next to logs and are known not to be logs: (pattern, reason).
KNOWN_NON_LOGS = ((re.compile(r"^ground_truth\.csv$", re.IGNORECASE),
                   "the simulator's ground truth (read by benchmarks, never as a log)"),)
# The kinds of file a layout cannot do without.
REQUIRED_KINDS = {CANONICAL: ("events",), TIANCHI: ("impressions", "items")}


def detect_layout(file_names: Sequence[str]) -> str:
    """Names the layout of a folder from its file names; raises with a clear message if neither."""
    names = [name.rsplit("/", 1)[-1] for name in file_names]
    found = []
    for layout, kinds in LAYOUTS.items():
        if all(any(kinds[kind][0].match(n) for n in names) for kind in REQUIRED_KINDS[layout]):
            found.append(layout)
    if len(found) != 1:
        raise ValueError(
            "cannot tell the log layout from files %s: expected either the canonical layout "
            "(events*.csv, optional users.csv and items.csv) or the Tianchi Ali_Display_Ad_Click "
            "layout (raw_sample.csv, ad_feature.csv, optional user_profile.csv and "
            "behavior_log.csv)" % sorted(names))
    return found[0]


def classify_files(layout: str, file_names: Sequence[str]) -> Dict[str, List[str]]:
    """Groups file names by kind ('events', 'users', ...) for a layout; unknown files are left
    out (see `unknown_files`)."""
    groups: Dict[str, List[str]] = {kind: [] for kind in LAYOUTS[layout]}
    for name in sorted(file_names):
        base = name.rsplit("/", 1)[-1]
        for kind, (pattern, _) in LAYOUTS[layout].items():
            if pattern.match(base):
                groups[kind].append(name)
                break
    return groups


def expected_names(layout: str) -> str:
    """The file names a layout reads, for messages."""
    return {CANONICAL: "events*.csv, users.csv, items.csv",
            TIANCHI: "raw_sample*.csv, ad_feature*.csv, user_profile*.csv, behavior_log*.csv",
            }[layout] + " (any letter case, optionally .gz or .bz2)"


def reader_for(layout: str, kind: str, header: Union[bytes, str], source: str = ""):
    """Builds the reader of one file from its header line."""
    return LAYOUTS[layout][kind][1](header, source)
