"""The CPG as relational views over the evidence tables, in DataFusion SQL.

Each view is a name and a query. Which tables a view reads is *not* written here: the planner
reads it from the view's DataFusion logical plan (``plan.inference``). Intermediate views
(``*_ids``, ``module_index``...) attach stable ids once so that every output reuses them;
output views are named like their Delta tables. Ids come from ``normalize.ids`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codeanatomy_assets.cpg.locality import FileLocal, LocalParts, PerFile
from codeanatomy_assets.cpg.nesting import BucketSource, NestSpec
from codeanatomy_assets.cpg.resolution_edges import resolution_edges
from codeanatomy_assets.cpg.resolution_views import resolution_views
from codeanatomy_assets.cpg.vocabulary import (
    PROP_KEYS,
    SYMBOL_FLAGS,
    VALUE_COLUMNS,
    NodeKind,
    ValueType,
)
from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS
from codeanatomy_assets.normalize.ids import edge_id_sql, node_id_sql, sql_literal


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A named query; ``output`` views are written to Delta, the others are intermediates.

    ``nest`` turns the query's sorted flat rows into list columns (see ``cpg.nesting``).
    ``parts``: the view is the UNION ALL of these queries (``sql`` says so too, for planning),
    and a write runs them one after another: run as one query, every branch's joins build
    their hash tables at once (the stdlib's edges: 30 branches). ``local`` says which parts
    are file-local (``cpg.locality``). ``per_file``: an intermediate whose rows are cached
    per file across builds (``cpg.locality.PerFile``). ``repartition=False``: its sessions
    plan no repartitioning from the start (an aggregation over millions of distinct keys,
    whose spilling repartition can park every thread: ``cpg.functions.session_context``).
    ``pushdown``: its scans decode the rows its filters keep, not every row (a view that picks
    a few rows of an output: ``cpg.functions.session_context``).
    """

    name: str
    sql: str
    output: bool
    nest: NestSpec | None = None
    parts: tuple[str, ...] = ()
    local: LocalParts | None = None
    per_file: bool = False
    repartition: bool = True
    pushdown: bool = False

    def __post_init__(self) -> None:
        if self.parts and self.nest is not None:
            raise ValueError(f"{self.name}: a nested view is one sort; it cannot run in parts")
        if self.per_file and (self.output or self.nest is not None or self.parts):
            raise ValueError(f"{self.name}: only a plain intermediate view is cached per file")


_NODE_COLUMNS = (
    "node_id, node_kind, path, file_id, name, qualified_name, bstart, bend, line_start, "
    "col_start, line_end, col_end, origin"
)
_EDGE_COLUMNS = (
    "edge_id, edge_kind, src_node_id, dst_node_id, path, bstart, bend, origin, "
    "resolution_method, confidence"
)
_PROP_VALUES = "value_string, value_int, value_float, value_bool, value_json"

_SQL_TYPES = {
    ValueType.STRING: "VARCHAR",
    ValueType.INT: "BIGINT",
    ValueType.FLOAT: "DOUBLE",
    ValueType.BOOL: "BOOLEAN",
    ValueType.JSON: "VARCHAR",
}


def _prop(entity_kind: str, entity: str, key: str, expr: str, source: str, where: str) -> str:
    """One property key's rows, with its value in the column its declared type uses."""
    vtype = PROP_KEYS[key].value_type
    values = ", ".join(
        f"CAST({expr if t == vtype else 'NULL'} AS {_SQL_TYPES[t]}) AS {column}"
        for t, column in VALUE_COLUMNS.items()
    )
    return (
        f"SELECT '{entity_kind}' AS entity_kind, {entity} AS entity_id, '{key}' AS prop_key, "
        f"'{vtype.value}' AS value_type, {values} FROM {source} WHERE {where}"
    )


def _edge(
    kind: str,
    src: str,
    dst: str,
    disc: str,
    source: str,
    span: str,
    where: str = "TRUE",
    method: str = "'syntax'",
    confidence: str = "1.0",
    repo_id: str = "",
    kind_sql: str | None = None,
) -> str:
    """One edge source; ``kind_sql``: an expression for the kind (one join, several kinds)
    instead of the literal ``kind``."""
    kind_expr = kind_sql or sql_literal(kind)
    return (
        f"SELECT {edge_id_sql(repo_id, kind_expr, src, dst, disc)} AS edge_id, "
        f"{kind_expr} AS edge_kind, {src} AS src_node_id, {dst} AS dst_node_id, {span}, "
        f"CAST({method} AS VARCHAR) AS resolution_method, CAST({confidence} AS DOUBLE) "
        f"AS confidence FROM {source} WHERE {where}"
    )


_CFG_EDGE_SOURCE = (
    "cfg_edges e JOIN block_ids a ON e.path = a.path AND e.owner_idx = a.owner_idx "
    "AND e.src_block = a.block_index JOIN block_ids b ON e.path = b.path "
    "AND e.owner_idx = b.owner_idx AND e.dst_block = b.block_index"
)
# The kinds of the syntax nodes a ``def_idx`` can name: the module and each class, function
# or lambda (``extract.ast_extract``).
_DEFINING_KINDS = (
    f"({', '.join(sql_literal(k) for k in (NodeKind.MODULE, NodeKind.CLASS, NodeKind.FUNCTION))})"
)
# The node kinds whose rows are not file-local (``cpg_nodes``' parts that are not
# ``FileLocal``): the repository, its packages, names outside it.
NON_LOCAL_NODE_KINDS = (NodeKind.REPOSITORY, NodeKind.PACKAGE, NodeKind.EXTERNAL)
_REACHING_SOURCE = (
    "reaching_defs r JOIN ast_node_ids d ON r.path = d.path AND r.def_idx = d.idx "
    "JOIN ast_node_ids u ON r.path = u.path AND r.use_idx = u.idx"
)


def _file_span(whole_file: str, alias: str) -> tuple[str, str]:
    """The span a node's id hashes: (0, 0) where ``whole_file`` holds (the node is its file:
    a MODULE, the module's scope and its symbols), else the node's own. Such a node spans the
    whole file, so its real span changes with any edit, and with it the id of every edge into
    the module from other files (each importer's); by path, kind and name it is already one
    of a kind. The row keeps its real span."""
    start, end = (f"CASE WHEN {whole_file} THEN 0 ELSE {alias}.{c} END" for c in ("bstart", "bend"))
    return start, end


def view_specs(repo_id: str) -> tuple[ViewSpec, ...]:
    """Every view of the graph for one repository (its id is part of every node id)."""
    repo = sql_literal(repo_id)

    def nid(path: str, kind: str, disc: str, bstart: str, bend: str) -> str:
        return node_id_sql(repo_id, path, kind, disc, bstart, bend)

    def _edge_rows(kind: str, src: str, dst: str, disc: str, source: str, value: str) -> str:
        """An edge's id beside a value of its rows, for the edge's properties."""
        edge = edge_id_sql(repo_id, sql_literal(kind), src, dst, disc)
        column = value.rsplit(".", 1)[-1]
        return f"(SELECT {edge} AS edge_id, {value} AS {column} FROM {source}) x"

    repo_node = nid("''", "'REPOSITORY'", "''", "0", "0")
    quote2, external = "''", "'EXTERNAL'"
    views: list[ViewSpec] = []

    def add(
        name: str,
        sql: str | PerFile,
        output: bool = False,
        nest: NestSpec | None = None,
        *,
        pushdown: bool = False,
    ) -> None:
        if isinstance(sql, PerFile):
            views.append(ViewSpec(name, sql.sql, output, nest, per_file=True))
        else:
            views.append(ViewSpec(name, sql, output, nest, pushdown=pushdown))

    def add_union(
        name: str,
        columns: str,
        parts: list[str | FileLocal],
        key: str,
        *,
        repartition: bool = True,
        pushdown: bool = False,
    ) -> None:
        """An output that is the UNION ALL of ``parts``, written part by part; the
        ``FileLocal`` ones are written one file per bucket of ``key``."""
        selects = tuple(
            f"SELECT {columns} FROM (\n{part.sql if isinstance(part, FileLocal) else part}\n) u"
            for part in parts
        )
        local = frozenset(i for i, part in enumerate(parts) if isinstance(part, FileLocal))
        views.append(
            ViewSpec(
                name, "\nUNION ALL\n".join(selects), True, parts=selects,
                local=LocalParts(key, local) if local else None, repartition=repartition,
                pushdown=pushdown,
            )
        )  # fmt: skip

    add(
        "file_ids",
        f"""
        SELECT f.*, {nid("f.path", "'FILE'", "''", "0", "0")} AS file_id
        FROM files f""",
    )
    # Module names are root-aware (``extract.packages``): the extractors name modules by
    # path, and ``strip`` characters of that name (the import root's dotted path and a dot)
    # come off every qualified name and relative import target of the file.
    add(
        "file_roots",
        """
        SELECT path, substr(module_name, strip + 1) AS module_name, strip,
               root || '.' AS root_prefix FROM (
            SELECT f.path, f.module_name, coalesce(length(r.path) + 1, 0) AS strip,
                   replace(r.path, '/', '.') AS root,
                   row_number() OVER (PARTITION BY f.path ORDER BY length(r.path) DESC)
                       AS rank
            FROM files f LEFT JOIN packages r ON r.is_import_root
                 AND starts_with(f.path, r.path || '/')
            WHERE f.module_name IS NOT NULL) x
        WHERE rank = 1""",
    )
    # What a per-file row needs of its file, in one small table. Joined in one step: in a
    # chain ``big JOIN small JOIN small`` DataFusion builds the second join's hash table from
    # the first join's output, which for the AST held all 2.8 M stdlib rows (+1.26 GB, 5.3 s;
    # one join with this: +0.07 GB, 0.8 s).
    add(
        "file_keys",
        """
        SELECT f.path, f.file_id, r.strip, r.module_name, r.root_prefix
        FROM file_ids f JOIN file_roots r ON f.path = r.path""",
    )
    module_span = _file_span("a.node_kind = 'MODULE'", "a")
    add(
        "ast_node_ids",
        PerFile(
            f"""
        SELECT a.* EXCLUDE (qualified_name),
               CASE WHEN k.strip = 0 THEN a.qualified_name
                    ELSE substr(a.qualified_name, k.strip + 1) END AS qualified_name,
               {nid("a.path", "a.node_kind", "a.discriminator", *module_span)} AS node_id,
               k.file_id
        FROM ast_nodes a JOIN file_keys k ON a.path = k.path"""
        ),
    )
    add(
        "package_ids",
        f"""
        SELECT p.*, {nid("p.path", "'PACKAGE'", "''", "0", "0")} AS node_id,
               CASE WHEN p.parent_path = '' THEN NULL
                    ELSE {nid("p.parent_path", "'PACKAGE'", "''", "0", "0")} END AS parent_id
        FROM packages p""",
    )
    add(
        "scope_ids",
        PerFile(
            f"""
        SELECT s.* EXCLUDE (qualified_name),
               CASE WHEN k.strip = 0 THEN s.qualified_name
                    ELSE substr(s.qualified_name, k.strip + 1) END AS qualified_name,
               {nid("s.path", "'SCOPE'", "s.scope_path", *_file_span("s.scope_path = 'top'", "s"))}
               AS node_id,
               k.file_id
        FROM scopes s JOIN file_keys k ON s.path = k.path"""
        ),
    )
    block_disc = "o.qualified_name || '#' || b.block_kind || '#' || CAST(b.block_index AS VARCHAR)"
    add(
        "block_ids",
        PerFile(
            f"""
        SELECT b.*, {nid("b.path", "'BASIC_BLOCK'", block_disc, "b.bstart", "b.bend")} AS node_id,
               o.node_id AS owner_id, o.file_id,
               o.qualified_name || '#' || CAST(b.block_index AS VARCHAR) AS qualified_name
        FROM cfg_blocks b JOIN ast_node_ids o ON b.path = o.path AND b.owner_idx = o.idx"""
        ),
    )
    add(
        "symbol_ids",
        PerFile(
            f"""
        SELECT y.*, {
                nid(
                    "y.path",
                    "'SYMBOL'",
                    "y.scope_path || '::' || y.name",
                    *_file_span("y.scope_path = 'top'", "y"),
                )
            } AS node_id,
               s.node_id AS scope_id, s.file_id, s.qualified_name AS scope_qualified_name
        FROM symbols y JOIN scope_ids s ON y.path = s.path AND y.scope_path = s.scope_path"""
        ),
    )
    # The definitions of each file (its module, classes, functions, lambdas): 75 k of the
    # stdlib's 2.9 M syntax rows, so the whole-program views that look definitions up (the
    # def index, MROs, class members, returns) join these, not the whole tree.
    add(
        "def_rows",
        PerFile(
            """
        SELECT path, idx, def_idx, node_id, node_kind, name, qualified_name
        FROM ast_node_ids WHERE node_kind IN ('MODULE', 'CLASS', 'FUNCTION')"""
        ),
    )
    # A module name may exist as .py and .pyi: imports land on the .py (what runs).
    add(
        "module_index",
        """
        SELECT qualified_name, node_id, path FROM (
            SELECT qualified_name, node_id, path, row_number() OVER (
                PARTITION BY qualified_name ORDER BY path LIKE '%.pyi', path) AS rank
            FROM def_rows WHERE node_kind = 'MODULE') m
        WHERE rank = 1""",
    )
    add(
        "import_targets",
        """
        SELECT i.path, i.idx, i.level, i.module, i.name, i.asname, i.target,
               n.node_id AS import_id, n.bstart, n.bend,
               CASE WHEN i.name IS NULL OR i.name = '*' THEN i.target
                    WHEN i.target = '' THEN i.name
                    ELSE i.target || '.' || i.name END AS dotted,
               coalesce(sub.node_id, mod.node_id) AS module_id
        FROM (SELECT i.* EXCLUDE (target),
                     CASE WHEN i.level > 0 AND r.strip > 0 AND starts_with(i.target, r.root_prefix)
                          THEN substr(i.target, r.strip + 1) ELSE i.target END AS target
              FROM imports i JOIN file_roots r ON i.path = r.path) i
        JOIN ast_node_ids n ON i.path = n.path AND i.idx = n.idx
        LEFT JOIN module_index sub ON sub.qualified_name = (
            CASE WHEN i.name IS NULL OR i.name = '*' THEN NULL
                 WHEN i.target = '' THEN i.name ELSE i.target || '.' || i.name END)
        LEFT JOIN module_index mod ON mod.qualified_name = i.target""",
    )
    for name, sql in resolution_views(repo_id, nid):
        add(name, sql)
    # Externals named by imports, and by resolved calls, bases and builtin names.
    add(
        "external_ids",
        f"""
        SELECT DISTINCT dotted, {nid("''", "'EXTERNAL'", "dotted", "0", "0")} AS node_id
        FROM (SELECT dotted FROM import_targets WHERE module_id IS NULL
              UNION ALL SELECT dotted FROM resolution_externals) x""",
    )

    node_cols = [c.strip() for c in _NODE_COLUMNS.split(",")]

    def nodes_from(source: str, *exprs: str) -> str:
        aliased = ", ".join(f"{e} AS {c}" for e, c in zip(exprs, node_cols, strict=True))
        return f"SELECT {aliased} FROM {source}"

    null_s, null_i = "CAST(NULL AS VARCHAR)", "CAST(NULL AS BIGINT)"
    null_span = (
        null_i,
        null_i,
        "CAST(NULL AS INT)",
        "CAST(NULL AS INT)",
        "CAST(NULL AS INT)",
        "CAST(NULL AS INT)",
    )
    ast_span = ("bstart", "bend", "line_start", "col_start", "line_end", "col_end")
    node_sources: list[str | FileLocal] = [
        nodes_from(
            "(VALUES (1)) one(x)",
            repo_node,
            "'REPOSITORY'",
            null_s,
            null_s,
            repo,
            repo,
            *null_span,
            "'scan'",
        ),
        nodes_from(
            "package_ids",
            "node_id",
            "'PACKAGE'",
            "path",
            null_s,
            "name",
            "qualified_name",
            *null_span,
            "'scan'",
        ),
        FileLocal(
            nodes_from(
                "file_ids",
                "file_id",
                "'FILE'",
                "path",
                "file_id",
                "regexp_replace(path, '^.*/', '')",
                "path",
                "CAST(0 AS BIGINT)",
                "size_bytes",
                "CAST(1 AS INT)",
                "CAST(0 AS INT)",
                "line_end",
                "col_end",
                "'scan'",
            )
        ),
        FileLocal(
            nodes_from(
                "ast_node_ids",
                "node_id",
                "node_kind",
                "path",
                "file_id",
                "name",
                "qualified_name",
                *ast_span,
                "'ast'",
            )
        ),
        FileLocal(
            nodes_from(
                "scope_ids",
                "node_id",
                "'SCOPE'",
                "path",
                "file_id",
                "name",
                "qualified_name",
                *ast_span,
                "'symtable'",
            )
        ),
        FileLocal(
            nodes_from(
                "symbol_ids",
                "node_id",
                "'SYMBOL'",
                "path",
                "file_id",
                "name",
                "scope_qualified_name || '.' || name",
                *ast_span,
                "'symtable'",
            )
        ),
        FileLocal(
            nodes_from(
                "block_ids",
                "node_id",
                "'BASIC_BLOCK'",
                "path",
                "file_id",
                "block_kind",
                "qualified_name",
                *ast_span,
                "'cfg'",
            )
        ),
        nodes_from(
            "external_ids",
            "node_id",
            "'EXTERNAL'",
            null_s,
            null_s,
            "regexp_replace(dotted, '^.*[.]', '')",
            "dotted",
            *null_span,
            "'imports'",
        ),
    ]
    # Unsorted, as the other flat outputs: its file-local rows are filed by group of id
    # buckets (``pipeline.local_layout``), so a lookup by id still reads one file of 16.
    add_union("cpg_nodes", _NODE_COLUMNS, node_sources, "node_id")

    child_span = "c.path, c.bstart, c.bend, 'ast' AS origin"
    # The syntax tree's self-joins name the parent side first and filter neither side, so
    # that the hash table is built over the parent's three columns, not the child's seven
    # (DataFusion builds the left input, and swaps only to a side it estimates smaller: a
    # filtered child looked smaller). On the stdlib each join then peaked at +0.7 GB instead
    # of +1.1 GB (AST_CHILD, also 1.9-2.9 s -> 1.2-1.4 s) and +0.93 GB (DEFINES...): these
    # two were the largest of the edge queries, and twice that on twice the stdlib.
    edges: list[str | FileLocal] = [
        FileLocal(
            _edge(
                "AST_CHILD",
                "p.node_id",
                "c.node_id",
                "c.field || '#' || CAST(c.field_index AS VARCHAR)",
                "ast_node_ids p JOIN ast_node_ids c ON c.path = p.path AND c.parent_idx = p.idx",
                child_span,
                repo_id=repo_id,
            )
        ),
        _edge(
            "CONTAINS",
            repo_node,
            "f.file_id",
            "''",
            "file_ids f",
            "f.path, 0 AS bstart, f.size_bytes AS bend, 'scan' AS origin",
            "f.package_path = ''",
            repo_id=repo_id,
        ),
        _edge(
            "CONTAINS",
            "p.node_id",
            "f.file_id",
            "''",
            "file_ids f JOIN package_ids p ON f.package_path = p.path",
            "f.path, 0 AS bstart, f.size_bytes AS bend, 'scan' AS origin",
            repo_id=repo_id,
        ),
        _edge(
            "CONTAINS",
            f"coalesce(p.parent_id, {repo_node})",
            "p.node_id",
            "''",
            "package_ids p",
            "p.path, NULL AS bstart, NULL AS bend, 'scan' AS origin",
            repo_id=repo_id,
        ),
        FileLocal(
            _edge(
                "CONTAINS",
                "c.file_id",
                "c.node_id",
                "''",
                "ast_node_ids c",
                child_span,
                "c.node_kind = 'MODULE'",
                repo_id=repo_id,
            )
        ),
        # A node and its defining node: DEFINES for classes and functions, HAS_PARAMETER
        # (told apart by position) for parameters, CONTAINS for the rest. One join for the
        # three kinds: on the stdlib each was a self-join of 2.9 M syntax nodes. Every syntax
        # node has a kind (``AST_NODE`` when no other applies), so no child needs a filter.
        # A defining node is a module, class or function (``def_idx``, ``extract.ast_extract``):
        # the hash table holds those 75 K stdlib rows, not all 2.9 M (+0.16 GB instead of
        # +0.73 GB standalone; this join was the build's peak).
        FileLocal(
            _edge(
                "",
                "p.node_id",
                "c.node_id",
                "CASE WHEN c.node_kind = 'PARAMETER' THEN CAST(c.param_index AS VARCHAR) END",
                "(SELECT path, idx, node_id FROM ast_node_ids "
                f"WHERE node_kind IN {_DEFINING_KINDS}) p "
                "JOIN ast_node_ids c ON c.path = p.path AND c.def_idx = p.idx",
                child_span,
                repo_id=repo_id,
                kind_sql="CASE WHEN c.node_kind IN ('CLASS', 'FUNCTION') THEN 'DEFINES' "
                "WHEN c.node_kind = 'PARAMETER' THEN 'HAS_PARAMETER' ELSE 'CONTAINS' END",
            )
        ),
        _edge(
            "IMPORTS",
            "t.import_id",
            "coalesce(t.module_id, x.node_id)",
            "t.dotted",
            # one edge per (statement, target): ``from m import a, a`` names it twice
            "(SELECT DISTINCT import_id, module_id, dotted, path, bstart, bend "
            "FROM import_targets) t LEFT JOIN external_ids x ON t.module_id IS NULL "
            "AND t.dotted = x.dotted",
            "t.path, t.bstart, t.bend, 'imports' AS origin",
            "TRUE",
            method="CASE WHEN t.module_id IS NULL THEN 'external' ELSE 'module_index' END",
            repo_id=repo_id,
        ),
        FileLocal(
            _edge(
                "SCOPE_PARENT",
                "c.node_id",
                "p.node_id",
                "''",
                "scope_ids c JOIN scope_ids p ON c.path = p.path "
                "AND c.parent_scope_path = p.scope_path",
                "c.path, c.bstart, c.bend, 'symtable' AS origin",
                repo_id=repo_id,
            )
        ),
        FileLocal(
            _edge(
                "BINDS",
                "y.scope_id",
                "y.node_id",
                "''",
                "symbol_ids y",
                "y.path, y.bstart, y.bend, 'symtable' AS origin",
                repo_id=repo_id,
            )
        ),
        FileLocal(
            _edge(
                "CONTAINS",
                "b.owner_id",
                "b.node_id",
                "''",
                "block_ids b",
                "b.path, b.bstart, b.bend, 'cfg' AS origin",
                repo_id=repo_id,
            )
        ),
        FileLocal(
            _edge(
                "CONTAINS",
                "b.node_id",
                "n.node_id",
                "''",
                "cfg_statements s JOIN block_ids b ON s.path = b.path "
                "AND s.owner_idx = b.owner_idx AND s.block_index = b.block_index "
                "JOIN ast_node_ids n ON s.path = n.path AND s.stmt_idx = n.idx",
                "n.path, n.bstart, n.bend, 'cfg' AS origin",
                repo_id=repo_id,
            )
        ),
        FileLocal(
            _edge(
                "CFG_NEXT",
                "a.node_id",
                "b.node_id",
                "e.label",
                _CFG_EDGE_SOURCE,
                "a.path, a.bstart, a.bend, 'cfg' AS origin",
                repo_id=repo_id,
            )
        ),
        FileLocal(
            _edge(
                "REACHING_DEF",
                "d.node_id",
                "u.node_id",
                "r.name",
                _REACHING_SOURCE,
                "u.path, u.bstart, u.bend, 'dataflow' AS origin",
                method="'reaching_defs'",
                repo_id=repo_id,
            )
        ),
        *(sql for _, sql in resolution_edges(repo_id, nid)),
    ]
    # The flat outputs (edges, props) are written unsorted: lookups by id go through the
    # adjacency and property maps, which are sorted by owner; sorting 9 M stdlib edges by a
    # hash id cost 4 s and bought no locality.
    add_union("cpg_edges", _EDGE_COLUMNS, edges, "edge_id")

    props: list[str | FileLocal] = [
        FileLocal(_prop("node", "node_id", "ast_type", "ast_type", "ast_node_ids", "TRUE")),
        *(
            FileLocal(_prop("node", "node_id", key, key, "ast_node_ids", f"{key} IS NOT NULL"))
            for key in (
                "ctx",
                "operator",
                "literal_type",
                "literal_value",
                "is_async",
                "decorator_count",
                "param_kind",
                "param_index",
            )
        ),
        *(
            _prop(
                "node",
                "import_id",
                key,
                column,
                f"(SELECT DISTINCT import_id, {column} FROM import_targets) i",
                "TRUE",
            )
            for key, column in (("import_level", "level"), ("import_module", "module"))
        ),
        _prop(
            "edge",
            "edge_id",
            "import_asname",
            "asname",
            # The id of the IMPORTS edge of its own target (``t.dotted`` tells the edges of
            # one statement into one module apart), by the edge's formula: not a scan of the
            # edges, and not every alias of the statement on every one of its edges.
            "(SELECT DISTINCT "
            + edge_id_sql(
                repo_id,
                "'IMPORTS'",
                "t.import_id",
                f"coalesce(t.module_id, {nid(quote2, external, 't.dotted', '0', '0')})",
                "t.dotted",
            )
            + " AS edge_id, t.asname FROM import_targets t) a",
            "asname IS NOT NULL",
        ),
        FileLocal(_prop("node", "file_id", "blob_id", "blob_id", "file_ids", "TRUE")),
        FileLocal(
            _prop(
                "node", "file_id", "size_bytes", "size_bytes", "file_ids", "size_bytes IS NOT NULL"
            )
        ),
        FileLocal(
            _prop(
                "node", "file_id", "line_count", "line_count", "file_ids", "line_count IS NOT NULL"
            )
        ),
        FileLocal(
            _prop("node", "file_id", "encoding", "encoding", "file_ids", "encoding IS NOT NULL")
        ),
        FileLocal(
            _prop("node", "file_id", "is_stub", "is_stub", "file_ids", "is_stub IS NOT NULL")
        ),
        _prop("node", "node_id", "is_namespace", "is_namespace", "package_ids", "TRUE"),
        FileLocal(_prop("node", "node_id", "scope_type", "scope_type", "scope_ids", "TRUE")),
        FileLocal(_prop("node", "node_id", "block_kind", "block_kind", "block_ids", "TRUE")),
        FileLocal(
            _prop(
                "edge",
                "edge_id",
                "cfg_label",
                "label",
                _edge_rows(
                    "CFG_NEXT", "a.node_id", "b.node_id", "e.label", _CFG_EDGE_SOURCE, "e.label"
                ),
                "TRUE",
            )
        ),
        FileLocal(
            _prop(
                "edge",
                "edge_id",
                "variable",
                "name",
                _edge_rows(
                    "REACHING_DEF", "d.node_id", "u.node_id", "r.name", _REACHING_SOURCE, "r.name"
                ),
                "TRUE",
            )
        ),
        _prop("node", "class_id", "mro", "mro", "mro_names", "TRUE"),
        # An annotation's text is its file's own (not what it resolves to).
        *(
            FileLocal(
                _prop(
                    "node",
                    "node_id",
                    key,
                    "text",
                    "(SELECT DISTINCT o.node_id, r.text, r.name FROM resolution_refs r "
                    "JOIN ast_node_ids o ON o.path = r.path AND o.idx = r.owner_idx "
                    "WHERE r.role = 'annotation') a",
                    f"name {op} 'return' AND text IS NOT NULL",
                )
            )
            for key, op in (("annotation", "<>"), ("return_annotation", "="))
        ),
        FileLocal(
            _prop(
                "edge",
                "edge_id",
                "use_kind",
                "use_kind",
                "(SELECT "
                + edge_id_sql(
                    repo_id,
                    "CASE WHEN s.use_kind = 'read' THEN 'READS' ELSE 'WRITES' END",
                    "s.use_id",
                    "s.symbol_id",
                    "s.use_kind",
                )
                + " AS edge_id, s.use_kind FROM name_use_symbols s) u",
                "TRUE",
            )
        ),
        # Only flags that hold are stored: an absent is_<flag> row means False.
        *(
            FileLocal(
                _prop("node", "node_id", f"is_{flag}", f"is_{flag}", "symbol_ids", f"is_{flag}")
            )
            for flag in SYMBOL_FLAGS
        ),
    ]
    add_union("cpg_props", "*", props, "entity_id")

    # Adjacency and property maps: flat rows sorted by owner, nested by Arrow offsets. The
    # order is total, so a list does not depend on the order its rows arrived in (an import
    # edge can carry several ``import_asname`` values: ``from m import a as x, b as y``).
    add(
        "cpg_props_map",
        f"""
        SELECT entity_id, entity_kind, prop_key, value_type, {_PROP_VALUES}
        FROM cpg_props ORDER BY entity_id, prop_key, value_type, {_PROP_VALUES}""",
        output=True,
        nest=NestSpec(
            "entity_id",
            "props",
            ("prop_key", "value_type", *(c.strip() for c in _PROP_VALUES.split(","))),
            carry=("entity_kind",),
            buckets=BucketSource(
                "cpg_props",
                "entity_id",
                ("entity_id", "entity_kind", "prop_key", "value_type", *_PROP_VALUES.split(", ")),
            ),
        ),
    )
    for name, this, other in (
        ("cpg_edges_by_src", "src_node_id", "dst_node_id"),
        ("cpg_edges_by_dst", "dst_node_id", "src_node_id"),
    ):
        add(
            name,
            f"""
            SELECT {this} AS node_id, edge_id, edge_kind, {other} FROM cpg_edges
            ORDER BY {this}, edge_id""",
            output=True,
            nest=NestSpec(
                "node_id",
                "edges",
                ("edge_id", "edge_kind", other),
                count="edge_count",
                buckets=BucketSource("cpg_edges", this, ("edge_id",)),
            ),
        )

    # Duplicate ids, in two sets checked apart: the rows of the file-local kinds, per group
    # of files (``FileLocal``: a commit recomputes the groups it changed and links the
    # others; a GROUP BY of the stdlib's 3.7 M ids took 1.4 s of every commit), and the
    # repository's, packages' and externals' (thousands). An id hashes its kind, so an id of
    # one set equals one of the other only by a collision of the hash.
    non_local = ", ".join(sql_literal(k) for k in NON_LOCAL_NODE_KINDS)
    duplicates = """
        SELECT node_id AS entity_id, min(node_kind) AS node_kind, 'duplicate_id' AS issue,
               'cpg_nodes' AS source, CAST(count(*) AS VARCHAR) || ' rows share this id' AS detail
        FROM cpg_nodes WHERE node_kind {} ({}) GROUP BY node_id HAVING count(*) > 1"""
    invalid_span = """
        SELECT node_id AS entity_id, node_kind, 'invalid_span' AS issue, origin AS source,
               'bend < bstart' AS detail
        FROM cpg_nodes WHERE bend < bstart AND node_kind {} ({})"""
    add_union(
        "cpg_nodes_quality",
        "entity_id, node_kind, issue, source, detail",
        [
            """
        SELECT f.file_id AS entity_id, 'FILE' AS node_kind,
               CASE WHEN f.status = 'skipped' THEN 'not_extracted' ELSE 'extract_failed' END
                   AS issue, e.extractor AS source, e.error_kind || ': ' || e.message AS detail
        FROM file_ids f JOIN errors e ON f.path = e.path WHERE f.status <> 'ok'""",
            # A check of one node's row is file-local for a file's nodes: a commit checks the
            # files it computes, where each check scanned the stdlib's 3.7 M nodes (0.1-0.15 s).
            FileLocal(invalid_span.format("NOT IN", non_local)),
            invalid_span.format("IN", non_local),
            FileLocal(
                """
        SELECT node_id AS entity_id, node_kind, 'missing_qualified_name' AS issue,
               origin AS source, name AS detail
        FROM cpg_nodes WHERE node_kind IN ('MODULE', 'CLASS', 'FUNCTION')
          AND qualified_name IS NULL"""
            ),
            """
        SELECT node_id AS entity_id, 'SCOPE' AS node_kind, 'scope_span_unmatched' AS issue,
               'symtable' AS source, 'no ast node opens scope ' || scope_path AS detail
        FROM scope_ids WHERE bstart = bend AND parent_scope_path IS NOT NULL""",
            FileLocal(duplicates.format("NOT IN", non_local)),
            duplicates.format("IN", non_local),
            """
        SELECT class_id AS entity_id, 'CLASS' AS node_kind, 'inconsistent_mro' AS issue,
               'resolution' AS source,
               'no C3 linearization of the resolved bases (Python raises TypeError); '
               || 'the mro property is depth-first' AS detail
        FROM class_hierarchy WHERE NOT c3_consistent(class_id, edges)""",
        ],
        "entity_id",
        # The duplicate ids: a GROUP BY of the stdlib's 3.7 M node ids, which with a hash
        # repartition parked every thread in some full builds (a 120 s stall, then this same
        # plan); without one it takes as long (1.4-1.5 s against 1.3-1.9 s) on less CPU.
        repartition=False,
        # The non-local parts pick the few thousand nodes of three kinds among millions.
        pushdown=True,
    )

    # Both parts are filters, not a join, so that a scan decodes only the rows they keep
    # (``pushdown``: none of the stdlib's 8.5 M props; 0.14 s, and 0.36-0.46 s as a join of
    # every prop with the known keys).
    known = ", ".join(sql_literal(k) for k in sorted(PROP_KEYS))
    add(
        "cpg_props_quality",
        f"""
        SELECT * FROM (
        SELECT entity_id, prop_key, 'unknown_key' AS issue, 'vocabulary' AS source,
               'value_type ' || value_type AS detail
        FROM cpg_props WHERE prop_key IS NULL OR prop_key NOT IN ({known})
        UNION ALL
        SELECT entity_id, prop_key, 'missing_value', 'cpg_props',
               'no ' || value_type || ' value'
        FROM cpg_props
        WHERE (value_type = 'string' AND value_string IS NULL)
           OR (value_type = 'int' AND value_int IS NULL)
           OR (value_type = 'float' AND value_float IS NULL)
           OR (value_type = 'bool' AND value_bool IS NULL)
           OR (value_type = 'json' AND value_json IS NULL)
        ) q ORDER BY entity_id, prop_key, issue""",
        output=True,
        pushdown=True,
    )

    counts = "\nUNION ALL\n".join(
        f"SELECT '{name}' AS table_name, count(*) AS row_count FROM {name}"
        for name in EVIDENCE_SCHEMAS
    )
    add("normalize_outputs", f"SELECT * FROM (\n{counts}\n) c ORDER BY table_name", output=True)
    add(
        "extract_errors",
        """
        SELECT path, extractor, error_kind, message, line, col, bstart FROM errors
        ORDER BY path, extractor, error_kind, message""",
        output=True,
    )
    return _with_feeds(views)


def _with_feeds(views: list[ViewSpec]) -> tuple[ViewSpec, ...]:
    """``views``, each output with file-local parts told which maps its rows feed."""
    feeds: dict[str, list[BucketSource]] = {}
    for v in views:
        if v.nest is not None and v.nest.buckets is not None:
            feeds.setdefault(v.nest.buckets.table, []).append(v.nest.buckets)
    return tuple(
        replace(v, local=replace(v.local, feeds=tuple(feeds[v.name])))
        if v.local is not None and v.name in feeds
        else v
        for v in views
    )
