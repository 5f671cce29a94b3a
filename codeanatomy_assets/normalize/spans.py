"""Byte spans for positions reported by ``ast``: the one span convention of the project.

Conventions (on every table that carries a span):
- ``bstart``/``bend``: half-open byte offsets into the file's raw bytes as stored in git
  (BOM included, original encoding, CRLF kept);
- ``line_start``/``line_end``: 1-based lines; ``col_start``/``col_end``: 0-based columns
  counted in code points of the decoded line.

``ast`` reports columns as UTF-8 byte offsets of the *decoded* line and excludes a BOM, so a
non-ASCII character, a PEP 263 coding cookie (latin-1...) or a BOM would shift naive offsets.
``LineIndex`` converts them; ASCII lines (the common case) take the fast path.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_NEWLINE = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class Span(NamedTuple):
    """A located piece of a file. Offsets half-open; lines 1-based; columns 0-based.

    A named tuple rather than a frozen dataclass: one is made per syntax node (2.9 M for the
    standard library), and a frozen dataclass's ``__init__`` (six ``object.__setattr__``
    calls) took 0.76 us against 0.27 us, 3 % of extraction.
    """

    bstart: int
    bend: int
    line_start: int
    col_start: int
    line_end: int
    col_end: int


class LineIndex:
    """Maps ``(line, utf8 column)`` as reported by ``ast`` to file byte offsets and columns."""

    __slots__ = ("_all_ascii", "_ascii", "_data", "_encoding", "_starts", "_utf8_lines")

    def __init__(self, data: bytes, encoding: str = "utf-8") -> None:
        self._data = data
        self._encoding = "utf-8" if encoding in ("utf-8", "utf-8-sig", "utf8") else encoding
        starts = [0]
        starts.extend(m.end() for m in _NEWLINE.finditer(data))
        self._starts = starts
        # ast's columns on line 1 do not count the BOM; shifting line 1's start fixes that.
        if data.startswith(_BOM):
            self._starts[0] = len(_BOM)
        self._ascii: dict[int, bool] = {}
        # Most files are ASCII: then a column is a byte count and ``span`` needs no lookup.
        self._all_ascii = data.isascii()
        self._utf8_lines: dict[int, tuple[str, bytes]] = {}

    @property
    def line_count(self) -> int:
        return (
            len(self._starts)
            if self._data and not self._data.endswith((b"\n", b"\r"))
            else len(self._starts) - 1
        )

    def _line_bytes(self, line: int) -> bytes:
        start = self._starts[line - 1]
        end = self._starts[line] if line < len(self._starts) else len(self._data)
        return self._data[start:end]

    def offset(self, line: int, utf8_col: int) -> tuple[int, int]:
        """File byte offset and code-point column of ``ast``'s ``(lineno, col_offset)``."""
        if line < 1 or line > len(self._starts):
            return len(self._data), 0
        start = self._starts[line - 1]
        is_ascii = self._ascii.get(line)
        if is_ascii is None:
            is_ascii = self._line_bytes(line).isascii()
            self._ascii[line] = is_ascii
        if is_ascii:
            return start + utf8_col, utf8_col
        cached = self._utf8_lines.get(line)
        if cached is None:
            text = self._line_bytes(line).decode(self._encoding, errors="replace")
            cached = (text, text.encode("utf-8"))
            self._utf8_lines[line] = cached
        text, utf8 = cached
        col = len(utf8[:utf8_col].decode("utf-8", errors="replace"))
        if self._encoding == "utf-8":
            return start + utf8_col, col
        return start + len(text[:col].encode(self._encoding, errors="replace")), col

    def char_offset(self, line: int, char_col: int) -> int:
        """File byte offset of a code-point column (what SyntaxError and tokenize report)."""
        if line < 1 or line > len(self._starts):
            return len(self._data)
        text = self._line_bytes(line).decode(self._encoding, errors="replace")
        return self._starts[line - 1] + len(text[:char_col].encode(self._encoding, "replace"))

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        """The span of an ``ast`` node from its four position attributes."""
        starts = self._starts
        if self._all_ascii and 0 < line <= len(starts) and 0 < end_line <= len(starts):
            return Span(starts[line - 1] + col, starts[end_line - 1] + end_col,
                        line, col, end_line, end_col)  # fmt: skip
        bstart, cstart = self.offset(line, col)
        bend, cend = self.offset(end_line, end_col)
        return Span(bstart, bend, line, cstart, end_line, cend)

    def line_end(self, line: int) -> tuple[int, int]:
        """Byte offset and code-point column of the end of ``line`` (before its newline)."""
        if line < 1 or line > len(self._starts):
            return len(self._data), 0
        raw = self._line_bytes(line).rstrip(b"\r\n")
        col = len(raw) if raw.isascii() else len(raw.decode(self._encoding, errors="replace"))
        return self._starts[line - 1] + len(raw), col

    def whole(self) -> Span:
        """The span of the whole file (what FILE and MODULE nodes cover)."""
        last = max(self.line_count, 1)
        tail = self._line_bytes(last) if self._data else b""
        tail_text = tail.rstrip(b"\r\n").decode(self._encoding, errors="replace")
        return Span(0, len(self._data), 1, 0, last, len(tail_text))
