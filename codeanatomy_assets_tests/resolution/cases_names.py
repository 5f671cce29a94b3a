"""Name binding cases (LEGB, class scopes, global/nonlocal, comprehensions, imports),
inheritance (bases across files, externals, MRO) and annotations."""

from __future__ import annotations

from codeanatomy_assets_tests.resolution.case import Case

_LEGB = """x = 1
def outer():
    x = 2
    def inner():
        return x
    return inner
def g():
    return x
len
"""
_CLASS_SCOPE = """y = 0
class C:
    y = 1
    z = y
    def m(self):
        return y
    w = [y for _ in range(2)]
"""
_GLOBAL_NONLOCAL = """count = 0
def bump():
    global count
    count += 1
    return count
def outer():
    n = 0
    def inc():
        nonlocal n
        n = n + 1
        return n
    return inc
"""
_COMPREHENSION = """def f(items):
    k = 5
    return [k * i for i in items]
"""
_READS_WRITES = """def f():
    a = 1
    del a
    a = 2
    return a
"""

NAME_CASES: list[Case] = [
    Case(
        "ref_legb",
        "names",
        {"ref_legb/m.py": _LEGB},
        {
            "REFERENCES": {
                ("ref_legb/m.py:5", "ref_legb/m.py:3"),
                ("ref_legb/m.py:6", "ref_legb.m.outer.<locals>.inner"),
                ("ref_legb/m.py:8", "ref_legb/m.py:1"),
                ("ref_legb/m.py:9", "builtins.len"),
            }
        },
    ),
    Case(
        "ref_class_scope",
        "names",
        {"ref_class_scope/m.py": _CLASS_SCOPE},
        {
            "REFERENCES": {
                ("ref_class_scope/m.py:4", "ref_class_scope/m.py:3"),
                ("ref_class_scope/m.py:6", "ref_class_scope/m.py:1"),
                ("ref_class_scope/m.py:7", "ref_class_scope/m.py:1"),
                ("ref_class_scope/m.py:7", "builtins.range"),
            }
        },
    ),
    Case(
        "ref_global_nonlocal",
        "names",
        {"ref_global_nonlocal/m.py": _GLOBAL_NONLOCAL},
        {
            "REFERENCES": {
                ("ref_global_nonlocal/m.py:5", "ref_global_nonlocal/m.py:1"),
                ("ref_global_nonlocal/m.py:5", "ref_global_nonlocal/m.py:4"),
                ("ref_global_nonlocal/m.py:10", "ref_global_nonlocal/m.py:7"),
                ("ref_global_nonlocal/m.py:10", "ref_global_nonlocal/m.py:10"),
                ("ref_global_nonlocal/m.py:11", "ref_global_nonlocal/m.py:7"),
                ("ref_global_nonlocal/m.py:11", "ref_global_nonlocal/m.py:10"),
                ("ref_global_nonlocal/m.py:12", "ref_global_nonlocal.m.outer.<locals>.inc"),
            }
        },
    ),
    Case(
        "ref_comprehension",
        "names",
        {"ref_comprehension/m.py": _COMPREHENSION},
        {
            "REFERENCES": {
                ("ref_comprehension/m.py:3", "ref_comprehension/m.py:2"),
                # `i` reads the comprehension's own target (same line)
                ("ref_comprehension/m.py:3", "ref_comprehension/m.py:3"),
                ("ref_comprehension/m.py:3", "ref_comprehension.m.f.items"),
            }
        },
    ),
    Case(
        "ref_import",
        "names",
        {
            "ref_import/a.py": "def f():\n    pass\n",
            "ref_import/b.py": "from .a import f\nimport json\nf\njson\n",
        },
        {
            "REFERENCES": {
                ("ref_import/b.py:3", "ref_import.a.f"),
                ("ref_import/b.py:4", "json"),
            }
        },
    ),
    Case(
        "ref_reads_writes",
        "names",
        {"ref_reads_writes/m.py": _READS_WRITES},
        {
            "WRITES": {
                ("ref_reads_writes/m.py:2", "ref_reads_writes.m.f.a"),
                ("ref_reads_writes/m.py:3", "ref_reads_writes.m.f.a"),
                ("ref_reads_writes/m.py:4", "ref_reads_writes.m.f.a"),
            },
            "READS": {("ref_reads_writes/m.py:5", "ref_reads_writes.m.f.a")},
            "REFERENCES": set(),
        },
    ),
]

INHERITANCE_CASES: list[Case] = [
    Case(
        "inh_simple",
        "inheritance",
        {"inh_simple/m.py": "class A:\n    pass\n\n\nclass B(A):\n    pass\n"},
        {"INHERITS": {("inh_simple.m.B", "inh_simple.m.A")}},
        props={
            "mro": {
                "inh_simple.m.A": '["inh_simple.m.A"]',
                "inh_simple.m.B": '["inh_simple.m.B","inh_simple.m.A"]',
            }
        },
    ),
    Case(
        "inh_diamond",
        "inheritance",
        {
            "inh_diamond/m.py": "class A:\n    pass\nclass B(A):\n    pass\nclass C(A):\n"
            "    pass\nclass D(B, C):\n    pass\n"
        },
        {
            "INHERITS": {
                ("inh_diamond.m.B", "inh_diamond.m.A"),
                ("inh_diamond.m.C", "inh_diamond.m.A"),
                ("inh_diamond.m.D", "inh_diamond.m.B"),
                ("inh_diamond.m.D", "inh_diamond.m.C"),
            }
        },
        props={
            "mro": {
                "inh_diamond.m.A": '["inh_diamond.m.A"]',
                "inh_diamond.m.B": '["inh_diamond.m.B","inh_diamond.m.A"]',
                "inh_diamond.m.C": '["inh_diamond.m.C","inh_diamond.m.A"]',
                "inh_diamond.m.D": '["inh_diamond.m.D","inh_diamond.m.B","inh_diamond.m.C",'
                '"inh_diamond.m.A"]',
            }
        },
    ),
    Case(
        "inh_cross_file",
        "inheritance",
        {
            "inh_cross_file/base.py": "class Base:\n    def hi(self):\n        pass\n",
            "inh_cross_file/child.py": "from .base import Base\n\n\nclass Child(Base):\n"
            "    def go(self):\n        self.hi()\n",
        },
        {
            "INHERITS": {("inh_cross_file.child.Child", "inh_cross_file.base.Base")},
            "CALLS": {("inh_cross_file.child.Child.go", "inh_cross_file.base.Base.hi")},
        },
    ),
    Case(
        "inh_external",
        "inheritance",
        {
            "inh_external/m.py": "import abc\n\n\nclass E(Exception):\n    pass\n\n\n"
            "class M(abc.ABC):\n    pass\n"
        },
        {
            "INHERITS": {
                ("inh_external.m.E", "builtins.Exception"),
                ("inh_external.m.M", "abc.ABC"),
            }
        },
        props={
            "mro": {
                "inh_external.m.E": '["inh_external.m.E","builtins.Exception"]',
                "inh_external.m.M": '["inh_external.m.M","abc.ABC"]',
            }
        },
    ),
    Case(
        "inh_import_twice",
        "inheritance",
        {"inh_import_twice/m.py": "import abc\nimport abc\n\n\nclass M(abc.ABC):\n    pass\n"},
        {"INHERITS": {("inh_import_twice.m.M", "abc.ABC")}},
    ),
    Case(
        "inh_reexport",
        "inheritance",
        {
            "inh_reexport/pkg/__init__.py": "from .models import Model\n",
            "inh_reexport/pkg/models.py": "class Model:\n    def save(self):\n        pass\n",
            "inh_reexport/app.py": "from inh_reexport.pkg import Model\n\n\nclass User(Model):\n"
            "    pass\n\n\nUser().save()\n",
        },
        {
            "INHERITS": {("inh_reexport.app.User", "inh_reexport.pkg.models.Model")},
            "CALLS": {
                ("inh_reexport.app", "inh_reexport.app.User"),
                ("inh_reexport.app", "inh_reexport.pkg.models.Model.save"),
            },
        },
    ),
]

_ANNOTATED = """class A:
    pass
def f(a: A, b: int) -> "A":
    pass
"""
_GENERIC = """from typing import Optional
class A:
    pass
x: Optional[A] = None
def g():
    y: list[A] = []
"""

ANNOTATION_CASES: list[Case] = [
    Case(
        "ann_signature",
        "annotations",
        {"ann_signature/m.py": _ANNOTATED},
        {
            "ANNOTATED_WITH": {
                ("ann_signature.m.f.a", "ann_signature.m.A"),
                ("ann_signature.m.f", "ann_signature.m.A"),
            }
        },
        props={
            "annotation": {"ann_signature.m.f.a": "A", "ann_signature.m.f.b": "int"},
            "return_annotation": {"ann_signature.m.f": '"A"'},
        },
    ),
    Case(
        "ann_variable",
        "annotations",
        {"ann_variable/m.py": _GENERIC},
        {
            "ANNOTATED_WITH": {
                ("ann_variable/m.py:4", "ann_variable.m.A"),
                ("ann_variable/m.py:6", "ann_variable.m.A"),
            }
        },
        props={
            "annotation": {"ann_variable/m.py:4": "Optional[A]", "ann_variable/m.py:6": "list[A]"}
        },
    ),
    Case(
        "ann_cross_file",
        "annotations",
        {
            "ann_cross_file/models.py": "class Model:\n    pass\n",
            "ann_cross_file/svc.py": "from .models import Model\n\n\ndef h(m: Model) -> None:\n"
            "    pass\n",
        },
        {"ANNOTATED_WITH": {("ann_cross_file.svc.h.m", "ann_cross_file.models.Model")}},
        props={
            "annotation": {"ann_cross_file.svc.h.m": "Model"},
            "return_annotation": {"ann_cross_file.svc.h": "None"},
        },
    ),
]
