"""Whole-program resolution as SQL: imports, re-exports, calls, inheritance, MRO, names.

The per-file facts (``resolution_refs``, ``name_uses``) already say which reference each
expression makes; what needs the whole commit is joined here:

1. ``ref_dotted``: every reference as a dotted path (a def row's qualified name, an import's
   absolute path, ``builtins.x``, ``<module>.x`` for a name only a star import can explain).
2. ``dotted_r0`` .. ``dotted_r{ROUNDS}``: a dotted path resolved to a definition. Each round
   either finds it in ``def_index``, or a class prefix (``C.m``: the member is looked up in
   the MRO later), or the longest module prefix ``M`` and rewrites ``M.N.rest`` through M's
   module-level binding of ``N`` (a re-export, an alias) or through M's star imports
   (honouring ``__all__``). A bounded number of rounds is enough for real re-export chains
   (the stdlib needs 2); what is left and lies outside the repository is EXTERNAL.
3. ``class_bases`` -> ``class_mro``: the C3 linearization of every class of the repository
   over its resolved bases (ancestors gathered in bounded rounds, merged by ``c3_mro``).
4. ``call_targets``: per call site, the definitions it may reach, with the resolution
   method and confidence; ``resolution_edges`` and ``resolution_props`` feed the outputs.
"""

from __future__ import annotations

from collections.abc import Callable

from codeanatomy_assets.cpg.locality import PerFile

ROUNDS = 4  # re-export / alias hops of dotted resolution
MRO_DEPTH = 8  # inheritance depth the MRO rounds follow

NodeId = Callable[[str, str, str, str, str], str]


def _dotted_round(i: int) -> str:
    """Round ``i``: rows still pending (``cur``) either resolve or are rewritten.

    One reference may be pending as several paths at once (``os.path`` is bound to both
    ``posixpath`` and ``ntpath``): each path takes its own longest module prefix and is
    rewritten or given up on its own. (Ranking the splits per reference instead kept one of
    the paths at random, and the stdlib's graph differed by ~150 calls from build to build.)"""
    prev = f"dotted_r{i - 1}"
    return f"""
    WITH pending AS (SELECT start, cur FROM {prev} WHERE node_id IS NULL AND NOT done),
    parts AS (
        SELECT start, cur, k, string_to_array(cur, '.') AS a,
               CAST(cardinality(string_to_array(cur, '.')) AS BIGINT) AS n
        FROM (SELECT start, cur,
                     unnest(range(1, CAST(cardinality(string_to_array(cur, '.')) AS BIGINT))) AS k
              FROM pending) x),
    split AS (
        SELECT p.start, p.cur, p.k, array_to_string(array_slice(p.a, 1, p.k), '.') AS head,
               array_element(p.a, p.k + 1) AS name,
               array_to_string(array_slice(p.a, p.k + 2, p.n), '.') AS tail
        FROM parts p),
    module_split AS (
        SELECT start, cur, head, name, tail FROM (
            SELECT s.*, row_number() OVER (PARTITION BY s.start, s.cur ORDER BY s.k DESC) AS rn
            FROM split s JOIN module_index m ON m.qualified_name = s.head) z
        WHERE rn = 1),
    direct AS (
        SELECT s.start, s.cur AS src,
               b.target || CASE WHEN s.tail = '' THEN '' ELSE '.' || s.tail END AS cur
        FROM module_split s JOIN module_names b ON b.module = s.head AND b.name = s.name),
    starred AS (
        SELECT s.start, s.cur AS src, b.target || '.' || s.name
                   || CASE WHEN s.tail = '' THEN '' ELSE '.' || s.tail END AS cur
        FROM module_split s JOIN module_names b ON b.module = s.head AND b.name = '*'
        LEFT JOIN module_names own ON own.module = s.head AND own.name = s.name
        LEFT JOIN module_exports e ON e.module = b.target AND e.name = s.name
        LEFT JOIN (SELECT DISTINCT module FROM module_exports) ex ON ex.module = b.target
        WHERE own.module IS NULL
          AND (e.name IS NOT NULL OR (ex.module IS NULL AND s.name NOT LIKE '\\_%' ESCAPE '\\'))),
    rewritten AS (SELECT * FROM direct UNION SELECT * FROM starred)
    SELECT r.start, r.cur, d.node_id, d.node_kind, CAST(NULL AS VARCHAR) AS member,
           FALSE AS done
    FROM (SELECT DISTINCT start, cur FROM rewritten) r
    LEFT JOIN def_index d ON d.qualified_name = r.cur
    UNION ALL
    SELECT start, cur, node_id, node_kind, member, TRUE AS done
    FROM {prev} WHERE node_id IS NOT NULL OR done
    UNION ALL
    SELECT p.start, p.cur, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
           CAST(NULL AS VARCHAR), TRUE
    FROM pending p LEFT JOIN rewritten r ON p.start = r.start AND p.cur = r.src
    WHERE r.start IS NULL"""


def _first_round() -> str:
    """Round 0: exact definitions, then ``Class.member`` partials."""
    return """
    WITH starts AS (SELECT DISTINCT dotted AS start FROM ref_dotted WHERE dotted IS NOT NULL)
    SELECT s.start, s.start AS cur,
           coalesce(d.node_id, c.node_id) AS node_id,
           coalesce(d.node_kind, c.node_kind) AS node_kind,
           CASE WHEN d.node_id IS NULL AND c.node_id IS NOT NULL
                THEN regexp_replace(s.start, '^.*[.]', '') END AS member,
           FALSE AS done
    FROM starts s
    LEFT JOIN def_index d ON d.qualified_name = s.start
    LEFT JOIN def_index c ON d.node_id IS NULL AND c.node_kind = 'CLASS'
         AND c.qualified_name = regexp_replace(s.start, '[.][^.]*$', '')"""


def resolution_views(repo_id: str, nid: NodeId) -> list[tuple[str, str | PerFile]]:
    """The intermediate views, in an order that plans (the planner re-derives it anyway)."""
    external = nid("''", "'EXTERNAL'", "x.dotted", "0", "0")
    ext_base = nid("''", "'EXTERNAL'", "r.external", "0", "0")
    ext_builtin = nid("''", "'EXTERNAL'", "'builtins.' || r.name", "0", "0")
    ext_import = nid("''", "'EXTERNAL'", "t.external", "0", "0")
    views: list[tuple[str, str | PerFile]] = [
        (
            "def_index",
            """
            SELECT d.qualified_name, d.node_id, d.node_kind, d.path, d.idx
            FROM def_rows d JOIN module_index mi ON mi.path = d.path
            WHERE d.qualified_name IS NOT NULL""",
        ),
        (
            # Per file: a reference's dotted path is its file's business (its module name,
            # import root, the node it names), so only a changed file's are computed.
            "ref_dotted",
            PerFile(
                """
            SELECT r.*, f.module_name,
                   CASE WHEN r.attrs = '' THEN n.node_id END AS ref_node_id,
                   CASE WHEN r.attrs = '' THEN n.node_kind END AS ref_node_kind,
                   CASE WHEN r.attrs = '' THEN n.qualified_name END AS ref_qualified,
                   CASE WHEN r.ref_kind = 'node' AND r.attrs = '' THEN NULL
                        ELSE CASE r.ref_kind
                            WHEN 'node' THEN n.qualified_name
                            WHEN 'dotted' THEN CASE WHEN r.ref_relative AND f.strip > 0
                                AND starts_with(r.ref_text, f.root_prefix)
                                THEN substr(r.ref_text, f.strip + 1) ELSE r.ref_text END
                            WHEN 'builtin' THEN 'builtins.' || r.ref_text
                            WHEN 'star' THEN f.module_name || '.' || r.ref_text END
                             || CASE WHEN r.attrs = '' THEN '' ELSE '.' || r.attrs END
                   END AS dotted
            FROM resolution_refs r JOIN file_keys f ON r.path = f.path
            LEFT JOIN ast_node_ids n ON r.ref_kind = 'node' AND n.path = r.path
                 AND n.idx = r.ref_idx"""
            ),
        ),
        (
            "module_names",
            """
            SELECT DISTINCT module_name AS module, name, coalesce(dotted, ref_qualified) AS target
            FROM ref_dotted
            WHERE role = 'binding' AND receiver = ''
              AND coalesce(dotted, ref_qualified) IS NOT NULL""",
        ),
        (
            "module_exports",
            """
            SELECT DISTINCT module_name AS module, name FROM ref_dotted WHERE role = 'export'""",
        ),
        (
            # First components of the repository's modules and packages: a dotted path
            # starting with one of them is never EXTERNAL (unresolved instead).
            "repo_top_names",
            """
            SELECT DISTINCT split_part(qualified_name, '.', 1) AS qualified_name FROM (
                SELECT qualified_name FROM module_index
                UNION ALL SELECT qualified_name FROM package_ids) x""",
        ),
        ("dotted_r0", _first_round()),
        *((f"dotted_r{i}", _dotted_round(i)) for i in range(1, ROUNDS + 1)),
        (
            "dotted_targets",
            f"""
            SELECT DISTINCT r.start, r.node_id, r.node_kind, r.member,
                   CASE WHEN r.node_id IS NULL AND m.qualified_name IS NULL
                        THEN r.start END AS external
            FROM dotted_r{ROUNDS} r
            LEFT JOIN repo_top_names m ON m.qualified_name = split_part(r.start, '.', 1)""",
        ),
        (
            "resolution_externals",
            f"""
            SELECT DISTINCT x.dotted, {external} AS node_id FROM (
                SELECT external AS dotted FROM dotted_targets WHERE external IS NOT NULL
                UNION ALL
                SELECT 'builtins.' || name FROM name_uses WHERE scope_kind = 'builtin'
                   AND use_kind = 'read') x""",
        ),
        (
            # A reference resolved: the node, or a class and a member to look up in its MRO.
            "ref_targets",
            """
            SELECT r.path, r.site_idx, r.role, r.owner_idx, r.name, r.position, r.ref_kind,
                   r.attrs, r.ref_idx, r.ref_text, r.receiver, r.member AS ref_member, r.method,
                   r.confidence, r.text,
                   coalesce(r.ref_node_id, t.node_id) AS node_id,
                   coalesce(r.ref_node_kind, t.node_kind) AS node_kind,
                   t.member AS class_member, t.external
            FROM ref_dotted r LEFT JOIN dotted_targets t ON r.dotted = t.start""",
        ),
        (
            "class_bases",
            f"""
            SELECT b.owner_id AS class_id, r.position AS base_index, r.node_id AS base_id,
                   r.external, coalesce(r.node_id, {ext_base}) AS base_node, r.path,
                   b.bstart, b.bend, least(sum(r.confidence), 1.0) AS confidence
            FROM ref_targets r
            JOIN ref_sites b ON b.path = r.path AND b.site_idx = r.site_idx
                 AND b.owner_idx = r.owner_idx AND b.role = 'base'
            WHERE r.role = 'base' AND (r.external IS NOT NULL
                  OR (r.node_kind = 'CLASS' AND r.class_member IS NULL
                      AND r.receiver = ''))
            -- one base reached through several bindings (a module imported twice) is one
            -- edge, with their confidences added
            GROUP BY b.owner_id, r.position, r.node_id, r.external, r.path, b.bstart, b.bend""",
        ),
        *_mro_views(),
        *_call_views(),
        (
            # Each call, decorator, base and annotation site with its node and its owner's
            # (calls, inheritance, decorators and annotations join their targets here): per
            # file, so a commit joins the syntax tree's 2.9 M rows (the stdlib's) for the
            # files it changed, not for every file in every commit.
            "ref_sites",
            PerFile(
                """
            SELECT DISTINCT r.path, r.role, r.site_idx, r.owner_idx, s.node_id AS site_id,
                   s.bstart, s.bend, o.node_id AS owner_id, o.bstart AS owner_bstart,
                   o.bend AS owner_bend
            FROM resolution_refs r
            JOIN ast_node_ids s ON s.path = r.path AND s.idx = r.site_idx
            JOIN ast_node_ids o ON o.path = r.path AND o.idx = r.owner_idx
            WHERE r.role IN ('call', 'decorator', 'base', 'annotation')"""
            ),
        ),
        (
            # The symtable scope a scope-opening row is (module, def, lambda, comprehension).
            "row_scopes",
            PerFile(
                """
            SELECT a.path, a.idx, s.scope_path, s.node_id AS scope_id
            FROM ast_node_ids a JOIN scope_ids s ON a.path = s.path AND a.bstart = s.bstart
                 AND a.bend = s.bend AND (a.node_kind = 'MODULE') = (s.scope_path = 'top')
            WHERE a.node_kind IN ('MODULE', 'CLASS', 'FUNCTION')
               OR a.ast_type IN ('ListComp', 'SetComp', 'DictComp', 'GeneratorExp')"""
            ),
        ),
        (
            "name_use_symbols",
            PerFile(
                """
            SELECT DISTINCT u.path, u.use_idx, u.use_kind, n.node_id AS use_id, y.node_id
                   AS symbol_id, n.bstart, n.bend
            FROM name_uses u JOIN ast_node_ids n ON n.path = u.path AND n.idx = u.use_idx
            JOIN row_scopes r ON r.path = u.path AND r.idx = u.scope_idx
            JOIN symbol_ids y ON y.path = u.path AND y.scope_path = r.scope_path
                 AND y.name = u.name"""
            ),
        ),
        (
            # Every read of a name with each binding it may read (a name bound in several
            # places: several rows), and whether any of them is an import.
            "read_bindings",
            PerFile(
                """
            SELECT n.node_id, n.path, n.bstart, n.bend, u.name, u.scope_kind, u.binding_idx,
                   b.node_id AS binding_id, b.ast_type AS binding_type,
                   max(CASE WHEN b.ast_type = 'alias' THEN 1 ELSE 0 END)
                       OVER (PARTITION BY u.path, u.use_idx) = 1 AS imported
            FROM name_uses u JOIN ast_node_ids n ON n.path = u.path AND n.idx = u.use_idx
            LEFT JOIN ast_node_ids b ON b.path = u.path AND b.idx = u.binding_idx
            WHERE u.use_kind = 'read'
              AND (u.binding_idx IS NOT NULL OR u.scope_kind = 'builtin')"""
            ),
        ),
        (
            # A read none of whose bindings is an import -> the bindings it reads (a def, a
            # class, a parameter, an assignment target) or its builtin: the file's own rows.
            "local_references",
            PerFile(
                f"""
            SELECT r.node_id, r.path, r.bstart, r.bend,
                   CASE WHEN r.scope_kind = 'builtin' THEN {ext_builtin}
                        ELSE r.binding_id END AS dst,
                   r.scope_kind AS method
            FROM read_bindings r WHERE NOT r.imported"""
            ),
        ),
        (
            # A read of an imported name -> what the import resolves to (a definition of
            # another file, an external; else the import's alias node), and its other
            # bindings: all of a read's targets are in one of the two views, since its
            # REFERENCES edges share their confidence.
            "references_rows",
            f"""
            SELECT r.node_id, r.path, r.bstart, r.bend, CASE
                   WHEN r.scope_kind = 'builtin' THEN {ext_builtin}
                   WHEN t.node_id IS NOT NULL THEN t.node_id
                   WHEN t.external IS NOT NULL THEN {ext_import}
                   ELSE r.binding_id END AS dst,
                   CASE WHEN t.node_id IS NOT NULL OR t.external IS NOT NULL THEN 'import'
                        ELSE r.scope_kind END AS method
            FROM read_bindings r
            LEFT JOIN ref_targets t ON r.binding_type = 'alias' AND t.role = 'binding'
                 AND t.path = r.path AND t.site_idx = r.binding_idx AND t.receiver = ''
                 AND t.class_member IS NULL
            WHERE r.imported""",
        ),
        (
            "mro_names",
            """
            SELECT c.node_id AS class_id, '[' || array_to_string(array_agg(
                       '"' || coalesce(a.qualified_name, x.dotted) || '"'
                       ORDER BY m.position), ',') || ']' AS mro
            FROM def_rows c JOIN class_mro m ON m.class_id = c.node_id
            LEFT JOIN def_rows a ON a.node_id = m.anc_id
            LEFT JOIN resolution_externals x ON x.node_id = m.anc_id
            WHERE c.node_kind = 'CLASS' GROUP BY c.node_id""",
        ),
    ]
    return views


def _mro_views() -> list[tuple[str, str]]:
    """The ancestors of every class within ``MRO_DEPTH`` hops, their base lists gathered per
    class, and ``c3_mro`` (``cpg/functions.py``) linearizing them as ``type.mro()`` does."""
    out = [
        (
            "mro_walk0",
            """
            SELECT node_id AS class_id, node_id AS anc_id, 0 AS depth
            FROM def_rows WHERE node_kind = 'CLASS'""",
        )
    ]
    for i in range(1, MRO_DEPTH + 1):
        out.append(
            (
                f"mro_walk{i}",
                f"""
                SELECT * FROM mro_walk{i - 1}
                UNION
                SELECT w.class_id, b.base_node, {i}
                FROM mro_walk{i - 1} w JOIN class_bases b ON b.class_id = w.anc_id
                WHERE w.depth = {i - 1}""",
            )
        )
    out += [
        (
            "class_hierarchy",
            f"""
            SELECT w.class_id, array_agg(named_struct('cls', b.class_id,
                       'base_index', CAST(b.base_index AS BIGINT), 'base', b.base_node)) AS edges
            FROM (SELECT DISTINCT class_id, anc_id FROM mro_walk{MRO_DEPTH}) w
            JOIN class_bases b ON b.class_id = w.anc_id
            GROUP BY w.class_id""",
        ),
        (
            "class_mro",
            """
            SELECT class_id, entry['anc_id'] AS anc_id, entry['position'] AS position
            FROM (SELECT c.node_id AS class_id, unnest(c3_mro(c.node_id, h.edges)) AS entry
                  FROM def_rows c LEFT JOIN class_hierarchy h ON h.class_id = c.node_id
                  WHERE c.node_kind = 'CLASS') m""",
        ),
    ]
    return out


def _call_views() -> list[tuple[str, str]]:
    # Members of a class are the defs directly in its body (``def_idx`` is the class row).
    lookup = """
        SELECT m.class_id, d.name AS member, d.node_id, m.position
        FROM class_mro m JOIN def_rows a ON a.node_id = m.anc_id
        JOIN def_rows d ON d.path = a.path AND d.def_idx = a.idx
        WHERE d.node_kind IN ('FUNCTION', 'CLASS') AND d.name <> '<lambda>'"""
    return [
        ("class_members", lookup),
        (
            # Per (site, ref): what is looked up on which class, and from which MRO position.
            "member_requests",
            """
            SELECT r.*, coalesce(r.class_member, nullif(r.ref_member, '')) AS wanted,
                   CASE WHEN r.receiver = 'super' THEN 1 ELSE 0 END AS from_position
            FROM ref_targets r
            WHERE r.node_kind = 'CLASS' AND (r.class_member IS NOT NULL
                  OR (r.receiver IN ('instance', 'class', 'super', 'result')
                      AND r.ref_member <> ''))""",
        ),
        (
            # Per request, the members found at the first MRO position that has one (ties
            # all kept). A minimum per request joined back, not ``rank() = 1``: DataFusion's
            # window evaluates each partition apart, and requests are partitions of one or
            # two rows (the stdlib's 117 K: 0.39 s of CPU in the window, 0.02 s in the join).
            "member_targets",
            """
            WITH found AS (
                SELECT q.path, q.site_idx, q.role, q.owner_idx, q.position, c.node_id,
                       q.method, q.confidence, c.position AS position_found,
                       q.node_id AS class_id, q.wanted
                FROM member_requests q JOIN class_members c ON c.class_id = q.node_id
                     AND c.member = q.wanted AND c.position >= q.from_position)
            SELECT f.path, f.site_idx, f.role, f.owner_idx, f.position, f.node_id, f.method,
                   f.confidence, f.position_found
            FROM found f JOIN (
                SELECT path, site_idx, role, class_id, wanted, min(position_found) AS first
                FROM found GROUP BY path, site_idx, role, class_id, wanted) m
              ON f.path = m.path AND f.site_idx = m.site_idx AND f.role = m.role
             AND f.class_id = m.class_id AND f.wanted = m.wanted
             AND f.position_found = m.first""",
        ),
        (
            # ``self.m()``: the method the class's MRO finds, and every override in a
            # subclass (the instance may be one), sharing the confidence.
            "self_dispatch",
            """
            SELECT path, site_idx, role, owner_idx, node_id,
                   CASE WHEN is_override THEN 'override'
                        WHEN position_found > 0 THEN 'mro' ELSE 'self' END AS method,
                   confidence / count(*) OVER (PARTITION BY path, site_idx, role)
                       AS confidence
            FROM (
                SELECT DISTINCT path, site_idx, role, owner_idx, node_id, confidence,
                       position_found, FALSE AS is_override
                FROM member_targets WHERE role = 'call' AND method = 'self'
                UNION
                SELECT DISTINCT q.path, q.site_idx, q.role, q.owner_idx, c.node_id,
                       q.confidence, 0, TRUE
                FROM member_requests q
                JOIN class_mro m ON m.anc_id = q.node_id AND m.position > 0
                JOIN class_members c ON c.class_id = m.class_id AND c.member = q.wanted
                     AND c.position = 0
                WHERE q.role = 'call' AND q.method = 'self') t""",
        ),
        (
            "call_targets",
            """
            SELECT path, site_idx, role, owner_idx, node_id, external, method, confidence
            FROM (
            SELECT path, site_idx, role, owner_idx, node_id, external, method, confidence
            FROM ref_targets
            WHERE role IN ('call', 'decorator') AND class_member IS NULL
              AND (receiver = '' OR (receiver = 'result' AND ref_member = ''
                                     AND node_kind = 'CLASS'))
              AND (node_id IS NOT NULL OR external IS NOT NULL)
            UNION ALL
            SELECT path, site_idx, role, owner_idx, node_id, CAST(NULL AS VARCHAR),
                   CASE WHEN position_found > 0 AND method <> 'super' THEN 'mro'
                        ELSE method END, confidence
            FROM member_targets WHERE role IN ('call', 'decorator') AND method <> 'self'
            UNION ALL
            SELECT path, site_idx, role, owner_idx, node_id, CAST(NULL AS VARCHAR), method,
                   confidence
            FROM self_dispatch
            UNION ALL
            SELECT r.path, r.site_idx, r.role, r.owner_idx, c.node_id, CAST(NULL AS VARCHAR),
                   'constructor', r.confidence
            FROM ref_targets r JOIN class_members c ON c.class_id = r.node_id
                 AND c.member = '__init__'
            JOIN (SELECT class_id, min(position) AS first_position FROM class_members
                  WHERE member = '__init__' GROUP BY class_id) i ON i.class_id = c.class_id
            WHERE r.role = 'call' AND r.node_kind = 'CLASS' AND r.class_member IS NULL
              AND r.receiver = ''
              AND c.position = i.first_position
            UNION ALL
            SELECT r.path, r.site_idx, r.role, r.owner_idx, v.node_id, v.external, 'return',
                   r.confidence * v.confidence
            FROM ref_targets r JOIN def_rows f ON f.node_id = r.node_id
            JOIN ref_targets v ON v.role = 'return' AND v.path = f.path
                 AND v.owner_idx = f.idx AND v.receiver = '' AND v.class_member IS NULL
            WHERE r.role = 'call' AND r.receiver = 'result' AND r.ref_member = ''
              AND r.node_kind = 'FUNCTION' AND (v.node_id IS NOT NULL OR v.external IS NOT NULL)
            ) t""",
        ),
        (
            # Calls through a parameter: the arguments passed at every resolved call of the
            # function, by position or keyword.
            "param_call_targets",
            """
            SELECT p.path, p.site_idx, p.role, p.owner_idx, a.node_id, a.external,
                   'argument' AS method, p.confidence * a.confidence AS confidence
            FROM ref_targets p
            JOIN def_rows f ON f.path = p.path AND f.idx = p.ref_idx
            JOIN call_targets c ON c.node_id = f.node_id AND c.role = 'call'
            JOIN ref_targets a ON a.role = 'argument' AND a.path = c.path
                 AND a.owner_idx = c.site_idx
                 AND (a.position = p.position OR a.name = p.ref_text)
                 AND a.receiver = '' AND a.class_member IS NULL
            WHERE p.role = 'call' AND p.ref_kind = 'param' AND p.receiver = '' AND p.attrs = ''
              AND (a.node_id IS NOT NULL OR a.external IS NOT NULL)""",
        ),
    ]
