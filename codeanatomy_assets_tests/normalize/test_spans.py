"""Spans are byte-exact for non-ASCII text, CRLF, a BOM and a PEP 263 coding cookie."""

from __future__ import annotations

import ast
import io
import tokenize

import pytest

from codeanatomy_assets.normalize.spans import LineIndex


def _span_of_name(data: bytes, name: str):
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    tree = ast.parse(data.decode(encoding))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == name)
    index = LineIndex(data, encoding)
    return index.span(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)


@pytest.mark.parametrize(
    ("data", "line", "col"),
    [
        pytest.param('s = "héllo wörld"; target = 1\n'.encode(), 1, 19, id="utf8-same-line"),
        pytest.param('s = "日本語"\ntarget = 1\n'.encode(), 2, 0, id="utf8-next-line"),
        pytest.param(b"s = 1\r\nt = 2\r\ntarget = 3\r\n", 3, 0, id="crlf"),
        pytest.param('\ufeffs = "é"; target = 1\n'.encode(), 1, 9, id="bom"),
        pytest.param(
            '# -*- coding: latin-1 -*-\ns = "é€"; target = 1\n'.encode("latin-1", "replace"),
            2,
            10,
            id="latin-1-cookie",
        ),
        pytest.param(b"s = 1\rtarget = 2\r", 2, 0, id="old-mac-cr"),
    ],
)
def test_name_span_points_at_its_bytes(data: bytes, line: int, col: int):
    span = _span_of_name(data, "target")
    assert data[span.bstart : span.bend] == b"target"
    assert (span.line_start, span.col_start) == (line, col)
    assert (span.line_end, span.col_end) == (line, col + len("target"))


def test_whole_file_span():
    data = "a = 'é'\nb = 2".encode()
    whole = LineIndex(data).whole()
    assert (whole.bstart, whole.bend, whole.line_end, whole.col_end) == (0, len(data), 2, 5)


def test_an_ascii_file_spans_as_its_lines_do():
    """An all-ASCII file takes ``span``'s shortcut: it must agree with ``offset``, line by
    line, and give the end of the file for a position past it."""
    data = b"class A:\r\n    def f(self, x):\n        return [y for y in x if y]\rz = A().f(1)"
    index = LineIndex(data)
    positioned = [n for n in ast.walk(ast.parse(data.decode())) if hasattr(n, "end_lineno")]
    assert len(positioned) > 10
    for node in positioned:
        line, col, end_line, end_col = (
            node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
        )  # fmt: skip
        (bstart, cstart), (bend, cend) = index.offset(line, col), index.offset(end_line, end_col)
        assert index.span(line, col, end_line, end_col) == (
            bstart, bend, line, cstart, end_line, cend,
        )  # fmt: skip
    assert data[slice(*index.span(4, 0, 4, 1)[:2])] == b"z"
    assert index.span(9, 0, 9, 3)[:2] == (len(data), len(data))
