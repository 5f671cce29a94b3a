"""Import resolution cases: absolute, relative, aliases, star, re-exports, roots, namespaces."""

from __future__ import annotations

from codeanatomy_assets_tests.resolution.case import Case

IMPORT_CASES: list[Case] = [
    Case(
        "imp_absolute",
        "imports",
        {
            "imp_absolute/y.py": "def fy():\n    pass\n",
            "imp_absolute/z.py": "def fz():\n    pass\n",
            "imp_absolute/x.py": "import imp_absolute.y\nfrom imp_absolute import z\n"
            "imp_absolute.y.fy()\nz.fz()\n",
        },
        {
            "IMPORTS": {
                ("imp_absolute/x.py:1", "imp_absolute.y"),
                ("imp_absolute/x.py:2", "imp_absolute.z"),
            },
            "CALLS": {
                ("imp_absolute.x", "imp_absolute.y.fy"),
                ("imp_absolute.x", "imp_absolute.z.fz"),
            },
        },
    ),
    Case(
        "imp_relative",
        "imports",
        {
            "imp_relative/pkg/__init__.py": "",
            "imp_relative/pkg/b.py": "def f():\n    pass\n",
            "imp_relative/top.py": "def g():\n    pass\n",
            "imp_relative/pkg/a.py": "from . import b\nfrom .b import f\nfrom ..top import g\n"
            "b.f()\nf()\ng()\n",
        },
        {
            "IMPORTS": {
                ("imp_relative/pkg/a.py:1", "imp_relative.pkg.b"),
                ("imp_relative/pkg/a.py:2", "imp_relative.pkg.b"),
                ("imp_relative/pkg/a.py:3", "imp_relative.top"),
            },
            "CALLS": {
                ("imp_relative.pkg.a", "imp_relative.pkg.b.f"),
                ("imp_relative.pkg.a", "imp_relative.top.g"),
            },
        },
    ),
    Case(
        "imp_alias",
        "imports",
        {
            "imp_alias/lib/__init__.py": "",
            "imp_alias/lib/deep.py": "def run():\n    pass\n",
            "imp_alias/main.py": "import imp_alias.lib.deep as d\n\n\ndef go():\n    d.run()\n",
        },
        {
            "IMPORTS": {("imp_alias/main.py:1", "imp_alias.lib.deep")},
            "CALLS": {("imp_alias.main.go", "imp_alias.lib.deep.run")},
        },
    ),
    Case(
        "imp_star_all",
        "imports",
        {
            "imp_star_all/star.py": "__all__ = ['pub']\n\n\ndef pub():\n    pass\n\n\n"
            "def other():\n    pass\n",
            "imp_star_all/main.py": "from .star import *\npub()\nother()\n",
        },
        {"CALLS": {("imp_star_all.main", "imp_star_all.star.pub")}},
    ),
    Case(
        "imp_star_all_grown",
        "imports",
        {
            "imp_star_all_grown/star.py": "__all__ = ['a']\n__all__ += ['b']\n"
            "__all__.extend(['c'])\n__all__.append('d')\n\n\n"
            "def a():\n    pass\n\n\ndef b():\n    pass\n\n\ndef c():\n    pass\n\n\n"
            "def d():\n    pass\n\n\ndef e():\n    pass\n",
            "imp_star_all_grown/main.py": "from .star import *\na()\nb()\nc()\nd()\ne()\n",
        },
        {"CALLS": {("imp_star_all_grown.main", f"imp_star_all_grown.star.{f}") for f in "abcd"}},
    ),
    Case(
        "imp_named_twice",
        "imports",
        {
            "imp_named_twice/y.py": "def f():\n    pass\n",
            "imp_named_twice/x.py": "from imp_named_twice import y, y\n"
            "import imp_named_twice.y, imp_named_twice.y\ny.f()\n",
        },
        {
            "IMPORTS": {
                ("imp_named_twice/x.py:1", "imp_named_twice.y"),
                ("imp_named_twice/x.py:2", "imp_named_twice.y"),
            },
            "CALLS": {("imp_named_twice.x", "imp_named_twice.y.f")},
        },
    ),
    Case(
        "imp_star_noall",
        "imports",
        {
            "imp_star_noall/star.py": "def pub():\n    pass\n\n\ndef _priv():\n    pass\n",
            "imp_star_noall/main.py": "from imp_star_noall.star import *\npub()\n_priv()\n",
        },
        {"CALLS": {("imp_star_noall.main", "imp_star_noall.star.pub")}},
    ),
    Case(
        "imp_reexport",
        "imports",
        {
            "imp_reexport/pkg/__init__.py": "from .impl import Thing, make\n",
            "imp_reexport/pkg/impl.py": "class Thing:\n    def __init__(self):\n        pass\n\n\n"
            "def make():\n    return Thing()\n",
            "imp_reexport/user.py": "from imp_reexport.pkg import make\n"
            "import imp_reexport.pkg as p\nmake()\np.Thing()\n",
        },
        {
            "CALLS": {
                ("imp_reexport.user", "imp_reexport.pkg.impl.make"),
                ("imp_reexport.user", "imp_reexport.pkg.impl.Thing"),
                ("imp_reexport.user", "imp_reexport.pkg.impl.Thing.__init__"),
                ("imp_reexport.pkg.impl.make", "imp_reexport.pkg.impl.Thing"),
                ("imp_reexport.pkg.impl.make", "imp_reexport.pkg.impl.Thing.__init__"),
            },
        },
    ),
    Case(
        "imp_chain",
        "imports",
        {
            "imp_chain/pkg/__init__.py": "from .mid import f\n",
            "imp_chain/pkg/mid.py": "from .low import f\n",
            "imp_chain/pkg/low.py": "def f():\n    pass\n",
            "imp_chain/user.py": "from imp_chain.pkg import f\nf()\n",
        },
        {
            "CALLS": {("imp_chain.user", "imp_chain.pkg.low.f")},
            "REFERENCES": {("imp_chain/user.py:2", "imp_chain.pkg.low.f")},
        },
    ),
    Case(
        "imp_external",
        "imports",
        {
            "imp_external/main.py": "import json\nfrom os import path\njson.dumps(1)\n"
            "path.join('a')\n",
        },
        {
            "IMPORTS": {("imp_external/main.py:1", "json"), ("imp_external/main.py:2", "os.path")},
            "CALLS": {
                ("imp_external.main", "json.dumps"),
                ("imp_external.main", "os.path.join"),
            },
        },
    ),
    Case(
        "imp_src_layout",
        "imports",
        {
            "imp_src_layout/src/srcpkg/__init__.py": "",
            "imp_src_layout/src/srcpkg/core.py": "def run():\n    pass\n",
            "imp_src_layout/src/srcpkg/cli.py": "from srcpkg.core import run\n"
            "from . import core\nrun()\ncore.run()\n",
        },
        {
            "IMPORTS": {
                ("imp_src_layout/src/srcpkg/cli.py:1", "srcpkg.core"),
                ("imp_src_layout/src/srcpkg/cli.py:2", "srcpkg.core"),
            },
            "CALLS": {("srcpkg.cli", "srcpkg.core.run")},
        },
    ),
    Case(
        "imp_namespace",
        "imports",
        {
            "imp_namespace/ns/sub/mod.py": "def f():\n    pass\n",
            "imp_namespace/user.py": "from imp_namespace.ns.sub import mod\nmod.f()\n",
        },
        {
            "IMPORTS": {("imp_namespace/user.py:1", "imp_namespace.ns.sub.mod")},
            "CALLS": {("imp_namespace.user", "imp_namespace.ns.sub.mod.f")},
        },
    ),
    Case(
        "imp_project_root",
        "imports",
        {
            "imp_project_root/libs/mlib/mlib/__init__.py": "def hello():\n    pass\n",
            "imp_project_root/libs/mlib/mlib/use.py": "from mlib import hello\nhello()\n",
        },
        {
            "IMPORTS": {("imp_project_root/libs/mlib/mlib/use.py:1", "mlib")},
            "CALLS": {("mlib.use", "mlib.hello")},
        },
    ),
    # A module attribute bound to two modules (like ``os.path``: posixpath or ntpath), each
    # re-exporting through a star import: the call reaches both definitions, every build.
    Case(
        "imp_two_bindings_star",
        "imports",
        {
            "imp_two_bindings_star/osmod.py": "import sys\nif sys.platform == 'win32':\n"
            "    from . import ntp as path\nelse:\n    from . import posixp as path\n",
            "imp_two_bindings_star/posixp.py": "from .generic import *\n",
            "imp_two_bindings_star/ntp.py": "from .ntgeneric import *\n",
            "imp_two_bindings_star/generic.py": "def isdir(p):\n    return p\n",
            "imp_two_bindings_star/ntgeneric.py": "def isdir(p):\n    return p\n",
            "imp_two_bindings_star/main.py": "from . import osmod\nosmod.path.isdir('x')\n",
        },
        {
            "CALLS": {
                ("imp_two_bindings_star.main", "imp_two_bindings_star.generic.isdir"),
                ("imp_two_bindings_star.main", "imp_two_bindings_star.ntgeneric.isdir"),
            }
        },
    ),
]
