"""C3 as the views compute it, checked against the interpreter's own ``type.mro()``."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from codeanatomy_assets.cpg import functions
from codeanatomy_assets.cpg.functions import (
    MEMORY_POOL_ENV,
    c3_consistent,
    c3_merge,
    class_mro,
    dfs_last,
    memory_pool_bytes,
    session_context,
)


def _random_hierarchy(rng: random.Random, size: int) -> dict[str, list[str]]:
    """Classes ``C0..Cn`` whose bases are drawn from earlier classes, built for real so the
    ones Python rejects are dropped along with everything below them."""
    built: dict[str, type] = {}
    bases: dict[str, list[str]] = {}
    for i in range(size):
        names = rng.sample(sorted(built), k=min(len(built), rng.randint(0, 3)))
        try:
            built[f"C{i}"] = type(f"C{i}", tuple(built[n] for n in names) or (object,), {})
        except TypeError:  # inconsistent MRO, or a base listed after its own subclass
            continue
        bases[f"C{i}"] = names
    return bases


def test_c3_matches_type_mro_on_random_hierarchies() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(200):
        bases = _random_hierarchy(rng, 12)
        real: dict[str, type] = {}
        for name, names in bases.items():
            real[name] = type(name, tuple(real[n] for n in names) or (object,), {})
        for name, cls in real.items():
            expected = [c.__name__ for c in cls.mro() if c is not object]
            assert c3_merge(name, bases) == expected
            checked += 1
    assert checked > 1000


def test_inconsistent_order_has_no_c3_and_falls_back_to_the_dfs() -> None:
    bases = {"X": ["A", "B"], "B": ["A"]}  # class X(A, B) with B(A): a TypeError in Python
    assert c3_merge("X", bases) is None
    assert dfs_last("X", bases) == ["X", "B", "A"]


def test_only_an_unambiguous_hierarchy_is_called_inconsistent() -> None:
    def edge(cls: str, index: int, base: str) -> dict[str, object]:
        return {"cls": cls, "base_index": index, "base": base}

    rejected = [edge("X", 0, "A"), edge("X", 1, "B"), edge("B", 0, "A")]
    assert not c3_consistent("X", rejected)
    # ``B`` bound twice in the scope: its base is either class, Python's verdict is unknown.
    ambiguous = [*rejected, edge("X", 1, "B2")]
    assert c3_consistent("X", ambiguous)
    assert c3_consistent("A", None)


def test_a_cycle_terminates_with_the_class_first() -> None:
    bases = {"A": ["B"], "B": ["A"]}
    assert c3_merge("A", bases) is None
    assert dfs_last("A", bases) == ["A", "B"]


def test_class_mro_orders_candidates_by_base_index() -> None:
    edges = [
        {"cls": "A", "base_index": 1, "base": "C"},
        {"cls": "A", "base_index": 0, "base": "B"},
        {"cls": "B", "base_index": 0, "base": "ext"},
    ]
    assert class_mro("A", edges) == ["A", "B", "ext", "C"]
    assert class_mro("Z", None) == ["Z"]


def test_the_session_runs_c3_mro_in_sql() -> None:
    ctx = session_context()
    edge = pa.struct([("cls", pa.string()), ("base_index", pa.int64()), ("base", pa.string())])
    table = pa.table(
        {
            "class_id": ["A", "B"],
            "edges": pa.array(
                [[{"cls": "A", "base_index": 0, "base": "B"}], None], type=pa.list_(edge)
            ),
        }
    )
    ctx.register_record_batches("h", [table.to_batches()])
    rows = ctx.sql(
        "SELECT class_id, e['anc_id'] AS anc, e['position'] AS pos "
        "FROM (SELECT class_id, unnest(c3_mro(class_id, edges)) AS e FROM h) "
        "ORDER BY class_id, pos"
    ).to_pylist()
    assert [(r["class_id"], r["anc"], r["pos"]) for r in rows] == [
        ("A", "A", 0),
        ("A", "B", 1),
        ("B", "B", 0),
    ]


def test_the_pool_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_POOL_ENV, raising=False)
    assert memory_pool_bytes() == functions.MEMORY_POOL_BYTES
    monkeypatch.setenv(MEMORY_POOL_ENV, "256")
    assert memory_pool_bytes() == 256 << 20
    monkeypatch.setenv(MEMORY_POOL_ENV, "unbounded")
    assert memory_pool_bytes() is None
    for bad in ("12", "1.5", "lots"):
        monkeypatch.setenv(MEMORY_POOL_ENV, bad)
        with pytest.raises(ValueError, match=f"{MEMORY_POOL_ENV}='{bad}' is not allowed"):
            memory_pool_bytes()


@pytest.mark.parametrize("repartition", [True, False])
def test_a_session_without_repartitioning_plans_no_exchange(repartition: bool) -> None:
    """The asset checks' sessions (a spilling ``RepartitionExec`` can deadlock DataFusion 55):
    a grouped count and a join over two input partitions, with and without the option."""
    ctx = session_context(repartition=repartition)
    batches = [pa.record_batch({"k": pa.array([f"{i:032x}" for i in range(j, j + 100)])})
               for j in (0, 100)]  # fmt: skip
    ctx.register_record_batches("t", [[batches[0]], [batches[1]]])
    ctx.register_record_batches("u", [[batches[0]], [batches[1]]])
    plans = [
        ctx.sql(f"EXPLAIN {sql}").to_arrow_table().column(1)[1].as_py()
        for sql in (
            "SELECT k, count(*) FROM t GROUP BY k HAVING count(*) > 1",
            "SELECT count(*) FROM t LEFT ANTI JOIN u ON t.k = u.k",
        )
    ]
    exchanges = ["RepartitionExec" in plan for plan in plans]
    assert any(exchanges) if repartition else not any(exchanges), plans
    grouped = ctx.sql("SELECT count(*) AS n FROM (SELECT k FROM t GROUP BY k)").to_pylist()
    assert grouped == [{"n": 200}]


@pytest.mark.parametrize("sort_only", [False, True])
def test_a_sort_session_sorts_in_one_partition(sort_only: bool) -> None:
    """A sort over two input partitions: a sort session plans no final merge, which cannot
    spill and failed once two partitions' sorts had filled the pool; the order holds."""
    ctx = session_context(sort_only=sort_only)
    ctx.register_record_batches(
        "t", [[pa.record_batch({"k": pa.array([5, 3, 9])})], [pa.record_batch({"k": [4, 1]})]]
    )
    plan = ctx.sql("EXPLAIN SELECT k FROM t ORDER BY k").to_arrow_table().column(1)[1].as_py()
    assert ("SortPreservingMergeExec" in plan) is not sort_only, plan
    assert ctx.sql("SELECT k FROM t ORDER BY k").to_pydict() == {"k": [1, 3, 4, 5, 9]}
