"""Call graph cases: one program per way a callee is reached, with every CALLS edge."""

from __future__ import annotations

from codeanatomy_assets_tests.resolution.case import Case


def _case(name: str, source: str, calls: set[tuple[str, str]], **extra: object) -> Case:
    """A one-module case ``<name>/m.py``; names in ``calls`` are relative to its module."""

    def q(n: str) -> str:
        return n if n.startswith(("builtins.", "os.", "numpy.", "json.")) else f"{name}.m{n}"

    expected = {"CALLS": {(q(a), q(b)) for a, b in calls}}
    return Case(name, "calls", {f"{name}/m.py": source}, expected, **extra)  # type: ignore[arg-type]


CALL_CASES: list[Case] = [
    _case(
        "call_plain",
        "def a():\n    b()\n\n\ndef b():\n    pass\n\n\na()\n",
        {(".a", ".b"), ("", ".a")},
    ),
    _case(
        "call_nested",
        "def outer():\n    def inner():\n        pass\n\n    inner()\n",
        {(".outer", ".outer.<locals>.inner")},
    ),
    _case(
        "call_lambda",
        "f = lambda x: x\nf(1)\n\n\ndef g():\n    h = lambda: 0\n    h()\n",
        {("", ".<lambda>"), (".g", ".g.<locals>.<lambda>")},
    ),
    _case(
        "call_class",
        "class A:\n    def __init__(self):\n        pass\n\n\nA()\n",
        {("", ".A"), ("", ".A.__init__")},
    ),
    _case("call_class_no_init", "class B:\n    pass\n\n\nB()\n", {("", ".B")}),
    _case(
        "call_self",
        "class C:\n    def m1(self):\n        self.m2()\n\n    def m2(self):\n        pass\n",
        {(".C.m1", ".C.m2")},
    ),
    _case(
        "call_cls",
        "class C:\n    def __init__(self):\n        pass\n\n    @classmethod\n"
        "    def make(cls):\n        return cls()\n\n    @classmethod\n"
        "    def other(cls):\n        return cls.make()\n",
        {
            (".C", "builtins.classmethod"),
            (".C.make", ".C"),
            (".C.make", ".C.__init__"),
            (".C.other", ".C.make"),
        },
    ),
    _case(
        "call_instance",
        "class A:\n    def m(self):\n        pass\n\n\ndef f():\n    a = A()\n    a.m()\n",
        {(".f", ".A"), (".f", ".A.m")},
    ),
    _case(
        "call_self_attribute",
        "class A:\n    def m(self):\n        pass\n\n\nclass B:\n    def __init__(self):\n"
        "        self.x = A()\n\n    def go(self):\n        self.x.m()\n",
        {(".B.__init__", ".A"), (".B.go", ".A.m")},
    ),
    _case(
        "call_super",
        "class Base:\n    def m(self):\n        pass\n\n\nclass D(Base):\n    def m(self):\n"
        "        super().m()\n",
        {(".D.m", ".Base.m"), (".D.m", "builtins.super")},
    ),
    _case(
        "call_inherited",
        "class Base:\n    def helper(self):\n        pass\n\n\nclass D(Base):\n"
        "    def run(self):\n        self.helper()\n\n\nD().helper()\n",
        {(".D.run", ".Base.helper"), ("", ".D"), ("", ".Base.helper")},
    ),
    _case(
        "call_static",
        "class U:\n    @staticmethod\n    def s():\n        pass\n\n    @classmethod\n"
        "    def c(cls):\n        pass\n\n\nU.s()\nU.c()\n",
        {
            ("", ".U.s"),
            ("", ".U.c"),
            (".U", "builtins.staticmethod"),
            (".U", "builtins.classmethod"),
        },
    ),
    _case(
        "call_decorator",
        "def deco(fn):\n    return fn\n\n\n@deco\ndef work():\n    pass\n\n\nwork()\n",
        {("", ".deco"), ("", ".work")},
    ),
    _case(
        "call_argument",
        "def apply(fn):\n    return fn()\n\n\ndef target():\n    pass\n\n\napply(target)\n",
        {("", ".apply"), (".apply", ".target")},
    ),
    _case(
        "call_returned",
        "def make():\n    def inner():\n        pass\n\n    return inner\n\n\ng = make()\ng()\n",
        {("", ".make"), ("", ".make.<locals>.inner")},
    ),
    _case(
        "call_builtins",
        "len([])\nprint(sorted([]))\n",
        {("", "builtins.len"), ("", "builtins.print"), ("", "builtins.sorted")},
    ),
    _case(
        "call_external",
        "import os.path\nimport numpy as np\n\nos.path.join('a')\nnp.array([])\n",
        {("", "os.path.join"), ("", "numpy.array")},
    ),
    _case(
        "call_two_targets",
        "def a():\n    pass\n\n\ndef b():\n    pass\n\n\nif a:\n    f = a\nelse:\n    f = b\nf()\n",
        {("", ".a"), ("", ".b")},
    ),
    _case(
        "call_comprehension",
        "def g(x):\n    pass\n\n\ndef f():\n    return [g(x) for x in range(3)]\n",
        {(".f", ".g"), (".f", "builtins.range")},
    ),
    _case(
        "call_class_body",
        "def compute():\n    return 1\n\n\nclass K:\n    v = compute()\n",
        {(".K", ".compute")},
    ),
    _case(
        "call_alias_chain",
        "def real():\n    pass\n\n\nalias = real\nagain = alias\nagain()\n",
        {("", ".real")},
    ),
    Case(
        "call_imported",
        "calls",
        {
            "call_imported/lib.py": "def helper():\n    pass\n\n\nclass Tool:\n"
            "    def use(self):\n        pass\n",
            "call_imported/main.py": "from .lib import helper as h, Tool\n"
            "import call_imported.lib as L\n\n\ndef run():\n    h()\n    L.helper()\n"
            "    t = Tool()\n    t.use()\n",
        },
        {
            "CALLS": {
                ("call_imported.main.run", "call_imported.lib.helper"),
                ("call_imported.main.run", "call_imported.lib.Tool"),
                ("call_imported.main.run", "call_imported.lib.Tool.use"),
            }
        },
    ),
    _case(
        "call_inherited_init",
        "class A:\n    def __init__(self):\n        pass\n\n\nclass B(A):\n    pass\n\n\nB()\n",
        {("", ".B"), ("", ".A.__init__")},
    ),
    # ``self.step()`` in a base: the subclass's override (the only definition here).
    _case(
        "call_polymorphic_self",
        "class A:\n    def run(self):\n        self.step()\n\n\nclass B(A):\n"
        "    def step(self):\n        pass\n",
        {(".A.run", ".B.step")},
    ),
    # ... and with a default in the base: both, sharing the confidence.
    _case(
        "call_override",
        "class A:\n    def run(self):\n        self.step()\n\n    def step(self):\n"
        "        pass\n\n\nclass B(A):\n    def step(self):\n        pass\n",
        {(".A.run", ".A.step"), (".A.run", ".B.step")},
    ),
    # A function called out of a dict or a list: every element, sharing the confidence.
    _case(
        "call_dict_dispatch",
        "def f():\n    pass\n\n\ndef g():\n    pass\n\n\nhandlers = {'a': f, 'b': g}\n"
        "handlers['a']()\n\n\ndef run(k):\n    steps = [f, lambda: 0]\n    steps[k]()\n"
        "    handlers.get(k)()\n    (1, 2)[k]\n",
        {("", ".f"), ("", ".g"), (".run", ".f"), (".run", ".run.<locals>.<lambda>")},
    ),
    # A container that refers to itself: bounded, and the file keeps its resolution facts.
    _case(
        "call_container_self",
        "f = lambda: 0\na = [f]\na = [a[0]]\na[0]()\n",
        {("", ".<lambda>")},
    ),
    _case(
        "call_annotated_parameter",
        "class A:\n    def m(self):\n        pass\n\n\ndef use(a: A, b: 'A'):\n    a.m()\n"
        "    b.m()\n",
        {(".use", ".A.m")},
    ),
]
