"""Fast CSV formatting of numpy columns, through Arrow's string kernels.

Python-level row formatting runs at about 0.3M rows/s; building each line with Arrow's
`binary_join_element_wise` and writing the resulting string buffer directly runs at about
2M rows/s. Values are plain ids, numbers and fixed words, so no field needs quoting.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Column = Union[np.ndarray, pa.Array]


def id_column(values: np.ndarray, empty_below: int = 0) -> pa.Array:
    """Integer ids as text; values below `empty_below` are written as an empty field."""
    values = np.asarray(values)
    return pc.cast(pa.array(values, mask=values < empty_below), pa.string())


def float_column(values: np.ndarray, decimals: int = 6) -> pa.Array:
    return pc.cast(pa.array(np.round(np.asarray(values, dtype=np.float64), decimals)), pa.string())


def word_column(codes: np.ndarray, words: Sequence[str]) -> pa.Array:
    """Codes as words; a negative code is an empty field."""
    codes = np.asarray(codes)
    table = pa.array(list(words))
    return pc.take(table, pa.array(codes, mask=codes < 0))


def format_csv(columns: Sequence[Tuple[str, Column]], header: bool = True) -> bytes:
    """Formats named columns of equal length as CSV text (with a header line if asked)."""
    names = [name for name, _ in columns]
    head = (",".join(names) + "\n").encode() if header else b""
    arrays = [column if isinstance(column, pa.Array) else pa.array(column)
              for _, column in columns]
    if not arrays or len(arrays[0]) == 0:
        return head
    strings = [pc.cast(a, pa.string()) if a.type != pa.string() else a for a in arrays]
    lines = pc.binary_join_element_wise(*strings, ",", null_handling="replace",
                                        null_replacement="")
    newline = pa.array(np.full(len(lines), "", dtype=object), type=pa.string())
    lines = pc.binary_join_element_wise(lines, newline, "\n")
    # The string array's data buffer is every line back to back: write it as it is.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[
        lines.offset:lines.offset + len(lines) + 1]
    body = memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]]
    return head + bytes(body)
