"""The edges whole-program resolution adds: CALLS, INHERITS, REFERENCES, READS, WRITES,
ANNOTATED_WITH and DECORATES, as SELECTs of the ``cpg_edges`` columns over the views of
``cpg.resolution_views``.

CALLS: one edge per call site and target, from the caller (the enclosing function, the class
for class-body code, the module for module-level code; comprehensions count as their
owner) to a definition or an EXTERNAL node; several possible targets each get an edge with
the confidence shared between them. REFERENCES: from a NAME read to the binding node it
reads in the scope Python's rules pick (def, class, parameter, an assignment target of an
enclosing or the module scope), through imports to the imported definition (or EXTERNAL),
builtins to ``builtins.<name>``; reads of a function's own variables are left to
REACHING_DEF, which is precise. READS/WRITES: from each NAME to the symtable SYMBOL of its
resolving scope; these are file-local (``cpg.locality``): a name and its symbol are of one
file.
"""

from __future__ import annotations

from codeanatomy_assets.cpg.locality import FileLocal
from codeanatomy_assets.cpg.resolution_views import NodeId
from codeanatomy_assets.normalize.ids import edge_id_sql


def resolution_edges(repo_id: str, nid: NodeId) -> list[tuple[str, str | FileLocal]]:
    """Edge rows (SELECT of the cpg_edges columns) as (edge kind, SQL)."""
    external = nid("''", "'EXTERNAL'", "t.external", "0", "0")

    def edge(kind: str, src: str, dst: str, disc: str, rest: str) -> str:
        kind_sql = f"'{kind}'"
        return f"SELECT {edge_id_sql(repo_id, kind_sql, src, dst, disc)} AS edge_id, " + rest

    def references(source: str) -> str:
        return edge(
            "REFERENCES",
            "u.node_id",
            "u.dst",
            "''",
            f"""'REFERENCES' AS edge_kind, u.node_id AS src_node_id, u.dst AS dst_node_id,
            u.path, u.bstart, u.bend, 'resolution' AS origin, min(u.method) AS
            resolution_method, 1.0 / count(*) OVER (PARTITION BY u.node_id) AS confidence
            FROM {source} u GROUP BY u.node_id, u.dst, u.path, u.bstart, u.bend""",
        )

    calls_source = """(SELECT * FROM call_targets UNION ALL SELECT * FROM param_call_targets) t
        JOIN ref_sites c ON c.path = t.path AND c.site_idx = t.site_idx
             AND c.owner_idx = t.owner_idx AND c.role = t.role"""
    return [
        (
            "CALLS",
            edge(
                "CALLS",
                "c.owner_id",
                f"coalesce(t.node_id, {external})",
                "c.site_id",
                f"""'CALLS' AS edge_kind, c.owner_id AS src_node_id,
                coalesce(t.node_id, {external}) AS dst_node_id, t.path, c.bstart, c.bend,
                'resolution' AS origin, min(t.method) AS resolution_method,
                least(sum(t.confidence), 1.0) AS confidence FROM {calls_source}
                GROUP BY c.owner_id, t.node_id, t.external, c.site_id, t.path, c.bstart,
                         c.bend""",
            ),
        ),
        (
            "INHERITS",
            edge(
                "INHERITS",
                "b.class_id",
                "b.base_node",
                "CAST(b.base_index AS VARCHAR)",
                """'INHERITS' AS edge_kind, b.class_id AS src_node_id, b.base_node AS
                dst_node_id, b.path, b.bstart, b.bend, 'resolution' AS origin,
                CASE WHEN b.base_id IS NULL THEN 'external' ELSE 'base' END AS
                resolution_method, b.confidence FROM class_bases b""",
            ),
        ),
        # The reads of a file's own bindings and of builtins are file-local; the reads of
        # imported names are not. A read is in one of the two (its binding is an import or
        # not), so each read's targets share one window.
        ("REFERENCES", FileLocal(references("local_references"))),
        ("REFERENCES", references("references_rows")),
        *(
            (
                kind,
                FileLocal(
                    edge(
                        kind,
                        "s.use_id",
                        "s.symbol_id",
                        "s.use_kind",
                        f"""'{kind}' AS edge_kind, s.use_id AS src_node_id, s.symbol_id AS
                        dst_node_id, s.path, s.bstart, s.bend, 'resolution' AS origin,
                        'symtable' AS resolution_method, 1.0 AS confidence
                        FROM name_use_symbols s WHERE {where}""",
                    )
                ),
            )
            for kind, where in (
                ("READS", "s.use_kind = 'read'"),
                ("WRITES", "s.use_kind <> 'read'"),
            )
        ),
        (
            "ANNOTATED_WITH",
            edge(
                "ANNOTATED_WITH",
                "o.owner_id",
                "t.node_id",
                "t.name",
                """'ANNOTATED_WITH' AS edge_kind, o.owner_id AS src_node_id, t.node_id AS
                dst_node_id, o.path, o.owner_bstart AS bstart, o.owner_bend AS bend,
                'resolution' AS origin, min(t.method) AS resolution_method, 1.0 AS confidence
                FROM ref_targets t JOIN ref_sites o ON o.path = t.path
                     AND o.site_idx = t.site_idx AND o.owner_idx = t.owner_idx
                     AND o.role = 'annotation'
                WHERE t.role = 'annotation' AND t.node_kind = 'CLASS'
                  AND t.class_member IS NULL AND t.receiver = ''
                GROUP BY o.owner_id, t.node_id, t.name, o.path, o.owner_bstart,
                         o.owner_bend""",
            ),
        ),
        (
            "DECORATES",
            edge(
                "DECORATES",
                "t.node_id",
                "d.node_id",
                "CAST(t.site_idx AS VARCHAR)",
                """'DECORATES' AS edge_kind, t.node_id AS src_node_id, d.node_id AS
                dst_node_id, t.path, s.bstart, s.bend, 'resolution' AS origin,
                min(t.method) AS resolution_method, max(t.confidence) AS confidence
                FROM call_targets t JOIN ref_targets r ON r.path = t.path
                     AND r.site_idx = t.site_idx AND r.role = 'decorator'
                JOIN def_rows d ON d.path = r.path AND d.idx = r.position
                JOIN ref_sites s ON s.path = t.path AND s.site_idx = t.site_idx
                     AND s.owner_idx = t.owner_idx AND s.role = 'decorator'
                WHERE t.role = 'decorator' AND t.node_id IS NOT NULL
                GROUP BY t.node_id, d.node_id, t.site_idx, t.path, s.bstart, s.bend""",
            ),
        ),
    ]
