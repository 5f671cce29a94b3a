"""One blob in, its evidence rows out; every failure becomes an error row, never an exception.

The order of work is decode -> ``ast`` -> ``symtable``. A file that does not decode or parse
still yields its ``files`` row (status ``error``) and an error row saying which extractor
failed and why; ``symtable`` failing after ``ast`` succeeded keeps the ``ast`` evidence.
"""

from __future__ import annotations

import ast
import io
import tokenize

from codeanatomy_assets.extract.ast_extract import extract_ast, module_name_for
from codeanatomy_assets.extract.binding_extract import extract_bindings
from codeanatomy_assets.extract.cfg import CfgError
from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import ERRORS, FILES
from codeanatomy_assets.extract.flow_extract import extract_flow
from codeanatomy_assets.extract.symtable_extract import extract_symtable
from codeanatomy_assets.normalize.spans import LineIndex

_FLOW_TABLES = ("cfg_blocks", "cfg_statements", "cfg_edges", "reaching_defs")
_BINDING_TABLES = ("resolution_refs", "name_uses")
# Exceptions a parser may raise on hostile input. MemoryError and RecursionError are caught
# on purpose: one pathological file must not end the run.
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def _error(
    errors: Columns, path: str, extractor: str, exc: BaseException, index: LineIndex | None
) -> None:
    line = getattr(exc, "lineno", None)
    col = None
    bstart = None
    if isinstance(exc, UnicodeDecodeError):
        bstart = exc.start
    elif isinstance(exc, SyntaxError) and line:
        offset = exc.offset or 1
        col = max(offset - 1, 0)
        if index is not None:
            bstart = index.char_offset(line, col)
    if isinstance(exc, RecursionError):
        message = "nesting too deep for the parser (RecursionError)"
    elif isinstance(exc, MemoryError) and not str(exc):
        # The 3.11 parser raises a bare MemoryError when its stack overflows (~3,000 nested
        # unary operators or lambdas): say so rather than leave the cause empty.
        message = "the parser's stack ran out (MemoryError): nesting too deep or too complex"
    else:
        message = str(exc) or type(exc).__name__
    errors.append(
        path=path,
        extractor=extractor,
        error_kind=type(exc).__name__,
        message=message[:1000],
        line=line,
        col=col,
        bstart=bstart,
    )


def _decode_cause(data: bytes, exc: BaseException) -> BaseException:
    """The precise cause of a decode failure.

    ``detect_encoding`` reports bytes that are not UTF-8 in the first two lines as an
    "invalid or missing encoding declaration"; the UTF-8 error names the byte and its offset.
    """
    if isinstance(exc, SyntaxError) and str(exc).startswith("invalid or missing encoding"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as utf8:
            return utf8
    return exc


def skipped_error(errors: Columns, path: str, reason: str, detail: str) -> None:
    """An error row for a file that was not read at all (link, submodule, too large...)."""
    errors.append(
        path=path,
        extractor="scan",
        error_kind=reason,
        message=detail,
        line=None,
        col=None,
        bstart=None,
    )


def extract_file(
    path: str, blob_id: str, data: bytes, files: Columns, tables: dict[str, Columns]
) -> None:
    """Append the evidence of one file to ``files`` and ``tables`` (see ``evidence``)."""
    errors = tables["errors"]
    module_name = module_name_for(path)
    is_stub = path.endswith(".pyi")
    package_path = path.rsplit("/", 1)[0] if "/" in path else ""
    encoding = "utf-8"
    index: LineIndex | None = None
    status = "ok"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        index = LineIndex(data, encoding)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        _error(errors, path, "decode", _decode_cause(data, exc), None)
        status = "error"
        text = None
    tree = None
    if text is not None:
        try:
            tree = ast.parse(text, filename=path, type_comments=False)
        except _PARSE_ERRORS as exc:
            _error(errors, path, "ast", exc, index)
            status = "error"
    if index is None:
        index = LineIndex(data, "latin-1")
    whole = index.whole()
    files.append(
        path=path,
        blob_id=blob_id,
        size_bytes=len(data),
        module_name=module_name,
        package_path=package_path,
        is_stub=is_stub,
        status=status,
        encoding=encoding,
        line_count=index.line_count,
        line_end=whole.line_end,
        col_end=whole.col_end,
    )
    if tree is None or text is None:
        return
    try:
        ev = extract_ast(tree, path, module_name, index)
    except _PARSE_ERRORS as exc:
        _error(errors, path, "ast", exc, index)
        files.data["status"][-1] = "error"
        return
    tables["ast_nodes"].extend(ev.nodes)
    tables["imports"].extend(ev.imports)
    # Resolution facts, like flow rows, are kept only when the whole file succeeded.
    facts = {name: Columns(tables[name].schema) for name in _BINDING_TABLES}
    try:
        extract_bindings(tree, path, text, ev, facts)
    except _PARSE_ERRORS as exc:
        _error(errors, path, "bindings", exc, index)
    else:
        for name in _BINDING_TABLES:
            tables[name].extend(facts[name])
    try:
        scopes, symbols = extract_symtable(text, path, module_name, whole, ev.scope_spans)
    except _PARSE_ERRORS as exc:
        _error(errors, path, "symtable", exc, index)
    else:
        tables["scopes"].extend(scopes)
        tables["symbols"].extend(symbols)
    # A failure half-way would leave a partial CFG: flow rows are built in scratch columns
    # and kept only when the whole file succeeded.
    flow = {name: Columns(tables[name].schema) for name in _FLOW_TABLES}
    try:
        extract_flow(tree, path, index, ev, flow)
    except (*_PARSE_ERRORS, CfgError) as exc:
        _error(errors, path, "cfg", exc, index)
    else:
        for name in _FLOW_TABLES:
            tables[name].extend(flow[name])


def new_tables() -> tuple[Columns, dict[str, Columns]]:
    """Empty ``files`` columns and per-file evidence tables."""
    from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS, PER_FILE_TABLES

    return Columns(FILES), {name: Columns(EVIDENCE_SCHEMAS[name]) for name in PER_FILE_TABLES}


__all__ = ["ERRORS", "extract_file", "new_tables", "skipped_error"]
