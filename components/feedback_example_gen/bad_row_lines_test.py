"""Line numbers of bad rows: matched against hand-counted lines of real files."""
import bz2
import gzip
import json
import os

from components.feedback_example_gen import bad_row_lines, readers

HEADER = b"user_id,item_id,cate_id,brand_id,timestamp,feedback,pid\n"


def test_line_numbers_count_from_the_header_and_ignore_line_ends():
    lines = [b"header\n", b"a,b\r\n", b"bad\n", b"a,b\n", b"bad\r\n", b"last bad"]
    assert bad_row_lines.line_numbers(lines, [b"bad", b"last bad", b"absent"]) == {
        b"bad": [3, 5], b"last bad": [6]}


def test_raw_bytes_undo_the_escaping_of_a_non_utf8_line():
    raw = b"u1,i\xff1,c1,b1,1494000000,click,p1"
    row = readers.CanonicalEventReader(HEADER, "events.csv")(raw)
    assert row.reason == readers.NON_UTF8 and "\\xff" in row.line
    assert bad_row_lines.raw_bytes(row.line, row.reason) == raw
    assert bad_row_lines.raw_bytes("plain, text é", readers.COLUMN_COUNT) == (
        "plain, text é".encode())


def test_bad_rows_of_gzip_bz2_and_nested_files_get_their_lines(tmp_path):
    good = b"u1,i1,c1,b1,1494000000,click,p1\n"
    files = {
        "events-1.csv.gz": (gzip.compress, [good, b"oops\n", good, b"oops\n"]),
        "day=2/events.csv": (lambda b: b, [good, good, b"u1,i\xff1,c1,b1,1,click,p1\r\n"]),
        "day=3/events.csv.bz2": (bz2.compress, [b"\n", good]),
    }
    paths, rows = {}, []
    for name, (compress, lines) in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compress(HEADER + b"".join(lines)))
        paths[name] = str(path)
        reader = readers.CanonicalEventReader(HEADER, name)
        for line in lines:
            record = reader(line.rstrip(b"\n"))
            if isinstance(record, readers.BadRow):
                rows.append(dict(record._asdict()))
    assert len(rows) == 4
    assert bad_row_lines.locate_rows(rows, paths) == 4
    assert sorted((r["source"], r["line_number"]) for r in rows) == [
        ("day=2/events.csv", 4), ("day=3/events.csv.bz2", 2),
        ("events-1.csv.gz", 3), ("events-1.csv.gz", 5)]


def test_the_report_files_are_rewritten_with_line_numbers_and_capped(tmp_path):
    data = tmp_path / "events.csv"
    data.write_bytes(HEADER + b"x\n" + b"u1,i1,c1,b1,1494000000,click,p1\n" + b"y,z\n")
    report = tmp_path / "report"
    report.mkdir()
    rows = [{"source": "events.csv", "reason": readers.COLUMN_COUNT, "detail": "", "line": t}
            for t in ("y,z", "x")]
    (report / "bad_rows-00000-of-00001.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    assert bad_row_lines.add_line_numbers(str(report), "bad_rows", {"events.csv": str(data)},
                                          max_rows=1) is None  # over the cap: left alone
    located = bad_row_lines.add_line_numbers(str(report), "bad_rows",
                                             {"events.csv": str(data)})
    assert located[:3] == (2, 2, 1)  # rows, located, files read
    first = bad_row_lines.first_rows(str(report), "bad_rows")
    assert first == located.first
    assert [r["line_number"] for r in first] == [2, 4]  # sorted by line
    assert bad_row_lines.describe(first[0]) == "events.csv line 2: wrong column count"
    assert bad_row_lines.first_rows(os.path.join(str(tmp_path), "missing"), "bad_rows") == []
