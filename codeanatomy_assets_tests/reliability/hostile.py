"""Hostile files for one repository, each with the outcome a build must give it.

An outcome is either ``Complete(definitions)``: the file parses, its MODULE node exists and its
CLASS/FUNCTION nodes are exactly ``definitions`` (qualified names); or ``Fails(extractor,
kinds)``: the file is one ``extract_errors`` row per failing extractor, naming it. A file
may also be complete *and* carry a symtable error (``Complete(..., errors=...)``): the ast
evidence is kept when only symtable rejects the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Complete:
    """Parses: MODULE present, CLASS/FUNCTION qualified names exactly ``definitions``."""

    definitions: frozenset[str]
    errors: tuple[tuple[str, str], ...] = ()  # (extractor, error_kind) rows that still appear


@dataclass(frozen=True)
class Fails:
    """Cannot be parsed: one error row from ``extractor`` whose kind is one of ``kinds``."""

    extractor: str
    kinds: tuple[str, ...]
    message: str = ""  # a fragment the message must contain (the cause)
    statuses: tuple[str, ...] = field(default=("error",))


def _defs(*names: str) -> frozenset[str]:
    return frozenset(names)


_NEW_SYNTAX = """\
def pos(a, b, /, c, *, d):
    return (n := a + b)


def star(*args: *Ts):
    return a[*b]


def handle(cmd, x, w):
    match cmd:
        case [y, *rest] if (n := len(rest)) > 1:
            pass
        case {"k": v, **kw}:
            pass
        case Point(x=0) | None:
            pass
        case _:
            pass
    try:
        pass
    except* ValueError as eg:
        pass
    return f"{f'{x!r:>{w}}'}"


async def agen(z):
    async with z as b:
        await b
    return [y async for y in z]
"""

_GENERATED_FUNCTIONS = 300
# ~2.7 MB: a generated module (a docstring-heavy API binding) with 300 functions.
_GENERATED = "".join(
    f'def api_{i}(a, b=1):\n    """{"documentation " * 700}"""\n    return a + b\n\n'
    for i in range(_GENERATED_FUNCTIONS)
)

# path -> (content, outcome)
HOSTILE: dict[str, tuple[str | bytes, Complete | Fails]] = {
    "syntax_error.py": ("def f(:\n    pass\n", Fails("ast", ("SyntaxError",), "invalid syntax")),
    "python2.py": (
        "print 'hello'\nexec 'x = 1'\n",
        Fails("ast", ("SyntaxError",), "Missing parentheses"),
    ),
    "invalid_utf8_first_line.py": (
        b"x = '\xff\xfe'\n",
        Fails("decode", ("UnicodeDecodeError",), "can't decode byte 0xff in position 5"),
    ),
    "invalid_utf8_later.py": (
        b"# ok\n# ok\nx = '\xff\xfe'\n",
        Fails("decode", ("UnicodeDecodeError",), "can't decode byte 0xff"),
    ),
    "latin1_cookie.py": (
        b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n\n\ndef caf\xe9():\n    return s\n",
        Complete(_defs("latin1_cookie.caf\u00e9")),
    ),
    "bom.py": (b"\xef\xbb\xbfdef f():\n    return 1\n", Complete(_defs("bom.f"))),
    "crlf.py": (
        b"def f():\r\n    return 1\r\n\r\n\r\nclass C:\r\n    def m(self):\r\n        pass\r\n",
        Complete(_defs("crlf.f", "crlf.C", "crlf.C.m")),
    ),
    "nul_bytes.py": (
        b"x = 1\x00\ndef g():\n    pass\n",
        Fails("ast", ("SyntaxError", "ValueError"), "null bytes"),
    ),
    "empty.py": (b"", Complete(_defs())),
    "tabs_and_spaces.py": (
        "def f(x):\n    if x:\n\tif x:\n        pass\n",
        Fails("ast", ("TabError",), "inconsistent use of tabs"),
    ),
    "parens_1000.py": (
        "x = " + "(" * 1000 + "1" + ")" * 1000 + "\n",
        Fails("ast", ("SyntaxError",), "too many nested parentheses"),
    ),
    "lists_1000.py": (
        "x = " + "[" * 1000 + "]" * 1000 + "\n",
        Fails("ast", ("SyntaxError",), "too many nested parentheses"),
    ),
    "chain_100k.py": (
        "x = " + "+".join(["a"] * 100_000) + "\n",
        Fails("ast", ("RecursionError",), "nesting too deep"),
    ),
    "unary_100k.py": (
        "x = " + "-" * 100_000 + "1\n",
        Fails("ast", ("MemoryError",), "the parser's stack ran out"),
    ),
    "nested_defs_120.py": (
        "".join("    " * i + f"def f{i}():\n" for i in range(120)) + "    " * 120 + "pass\n",
        Fails("ast", ("IndentationError",), "too many levels of indentation"),
    ),
    # Deep but within the parser's limits: these must come out complete.
    "chain_2000.py": (
        "def f(a):\n    return " + "+".join(["a"] * 2000) + "\n",
        Complete(_defs("chain_2000.f")),
    ),
    "ifs_nested_98.py": (
        "def f(x):\n" + "".join(" " * (i + 1) + "if x:\n" for i in range(98)) + " " * 99 + "pass\n",
        Complete(_defs("ifs_nested_98.f")),
    ),
    "elif_1000.py": (
        "def f(a):\n    if a == 0:\n        pass\n"
        + "".join(f"    elif a == {i}:\n        pass\n" for i in range(1, 1000)),
        Complete(_defs("elif_1000.f")),
    ),
    "lambdas_500.py": (
        "x = " + "lambda: " * 500 + "1\n",
        Complete(
            frozenset(
                {"lambdas_500." + ".<locals>.".join(["<lambda>"] * (i + 1)) for i in range(500)}
            )
        ),
    ),
    "comprehensions_150.py": (
        "x = " + "[a for a in " * 150 + "b" + "]" * 150 + "\n",
        Complete(_defs()),
    ),
    "enormous_expression.py": (
        "TABLE = [" + ",".join(str(i) for i in range(100_000)) + "]\n\n\ndef f():\n    pass\n",
        Complete(_defs("enormous_expression.f")),
    ),
    "generated_big.py": (
        _GENERATED,
        Complete(frozenset(f"generated_big.api_{i}" for i in range(_GENERATED_FUNCTIONS))),
    ),
    "non_ascii.py": (
        "def \u51fd\u6570(\u00f1):\n    \u03c0 = 3.14\n    return \u00f1 * \u03c0\n\n\n"
        "class \u00dcn\u00efcode:\n    pass\n",
        Complete(_defs("non_ascii.\u51fd\u6570", "non_ascii.\u00dcn\u00efcode")),
    ),
    "dir with space/m\u00f6dule \u00fc.py": (
        "def g():\n    pass\n",
        Complete(_defs("dir with space.m\u00f6dule \u00fc.g")),
    ),
    "binary.py": (bytes(range(256)) * 16, Fails("decode", ("UnicodeDecodeError",))),
    "stub.pyi": (
        "def f(x: int) -> str: ...\nclass C:\n    def m(self) -> None: ...\n",
        Complete(_defs("stub.f", "stub.C", "stub.C.m")),
    ),
    "new_syntax.py": (
        _NEW_SYNTAX,
        Complete(
            _defs("new_syntax.pos", "new_syntax.star", "new_syntax.handle", "new_syntax.agen")
        ),
    ),
    "duplicate_argument.py": (
        "def f(a, a):\n    pass\n\n\ndef g():\n    pass\n",
        Complete(
            _defs("duplicate_argument.f", "duplicate_argument.g"),
            errors=(("symtable", "SyntaxError"),),
        ),
    ),
    "decimal_5000_digits.py": (
        "x = " + "9" * 5000 + "\n",
        Fails("ast", ("SyntaxError", "ValueError"), "4300 digits"),
    ),
    "hex_5000_digits.py": (
        "x = 0x" + "f" * 5000 + "\n\n\ndef f():\n    pass\n",
        Complete(_defs("hex_5000_digits.f")),
    ),
}

# File names git accepts that break naive quoting (SQL, shell, paths): each is an ordinary file.
ODD_NAMES = ("it's.py", "new\nline.py", "semi;colon.py", "back\\slash.py", "pct%_.py",
             "-dash.py", 'dquote".py', "\u00fctf/\u00e9moji_\U0001f40d.py")  # fmt: skip
for _name in ODD_NAMES:
    _module = _name.removesuffix(".py").replace("/", ".")
    HOSTILE[_name] = ("def g():\n    pass\n", Complete(_defs(f"{_module}.g")))

TOO_LARGE_PATH = "too_large.py"
