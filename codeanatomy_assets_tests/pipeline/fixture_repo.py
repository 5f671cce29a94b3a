"""The fixture package the core tests build: a package, relative imports, nesting, lambdas."""

from __future__ import annotations

CORE = '''"""Core of the fixture package: «ünïcödé» text before the definitions."""
import os
from . import util
from .util import helper as h


class Engine:
    def __init__(self, x):
        self.x = x

    def run(self, *args, key=None, **kw):
        def inner():
            return lambda y: y

        return inner

    class Nested:
        async def go(self):
            pass


def top(a, /, b):
    return [i for i in a]
'''

FILES: dict[str, str] = {
    "pkg/__init__.py": "from .core import Engine\n",
    "pkg/core.py": CORE,
    "pkg/util.py": "def helper():\n    return 1\n",
    "tools/run.py": "import pkg.core\nfrom pkg import util\n",
    "broken.py": "def (:\n    pass\n",
}

CORE_DEFINITIONS: set[tuple[str, str]] = {
    ("MODULE", "pkg.core"),
    ("CLASS", "pkg.core.Engine"),
    ("FUNCTION", "pkg.core.Engine.__init__"),
    ("FUNCTION", "pkg.core.Engine.run"),
    ("FUNCTION", "pkg.core.Engine.run.<locals>.inner"),
    ("FUNCTION", "pkg.core.Engine.run.<locals>.inner.<locals>.<lambda>"),
    ("CLASS", "pkg.core.Engine.Nested"),
    ("FUNCTION", "pkg.core.Engine.Nested.go"),
    ("FUNCTION", "pkg.core.top"),
    ("PARAMETER", "pkg.core.Engine.__init__.self"),
    ("PARAMETER", "pkg.core.Engine.__init__.x"),
    ("PARAMETER", "pkg.core.Engine.run.self"),
    ("PARAMETER", "pkg.core.Engine.run.args"),
    ("PARAMETER", "pkg.core.Engine.run.key"),
    ("PARAMETER", "pkg.core.Engine.run.kw"),
    ("PARAMETER", "pkg.core.Engine.run.<locals>.inner.<locals>.<lambda>.y"),
    ("PARAMETER", "pkg.core.Engine.Nested.go.self"),
    ("PARAMETER", "pkg.core.top.a"),
    ("PARAMETER", "pkg.core.top.b"),
}
