"""Evidence from control and data flow: CFG blocks, their statements and edges, reaching defs.

``extract.cfg`` and ``extract.dataflow`` work in ``ast`` positions; this module turns their
results into rows that point at ``ast_nodes`` rows (owners, statements, definitions, uses) via
the lookups ``ast_extract`` recorded, and gives every block a byte span: from its first
statement to the end of its last line; the empty entry and exit blocks sit, zero-width, at the
start and the end of their owner.
"""

from __future__ import annotations

import ast

from codeanatomy_assets.extract.ast_extract import AstEvidence
from codeanatomy_assets.extract.cfg import file_cfg
from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.dataflow import reaching_defs_report
from codeanatomy_assets.normalize.spans import LineIndex


def _pick(candidates: list[tuple[int, str]], name: str) -> int | None:
    for idx, found in candidates:
        if found == name:
            return idx
    return candidates[0][0] if candidates else None


def extract_flow(
    tree: ast.Module,
    path: str,
    index: LineIndex,
    ev: AstEvidence,
    tables: dict[str, Columns],
    max_blocks: int | None = None,
) -> list[tuple[str, int, int]]:
    """Append CFG and reaching-definition rows; returns the owners skipped for size."""
    cfg = file_cfg(tree)
    nodes = ev.nodes.data
    bstarts, bends = nodes["bstart"], nodes["bend"]
    lstarts, cstarts = nodes["line_start"], nodes["col_start"]
    lends, cends = nodes["line_end"], nodes["col_end"]
    owner_of: dict[tuple[str, int], int] = {("", 0): 0}
    owner_of.update(ev.owners)
    blocks, statements = tables["cfg_blocks"], tables["cfg_statements"]
    for block in cfg.blocks:
        owner = owner_of.get((block.owner_qualname, block.owner_line))
        if owner is None:
            continue
        if block.statements:
            first_line, first_col = block.statements[0]
            bstart, cstart = index.offset(first_line, first_col)
            bend, cend = index.line_end(block.line_end)
            span = (bstart, bend, first_line, cstart, block.line_end, cend)
        elif block.kind == "entry":
            span = (bstarts[owner], bstarts[owner], lstarts[owner], cstarts[owner],
                    lstarts[owner], cstarts[owner])  # fmt: skip
        else:
            span = (bends[owner], bends[owner], lends[owner], cends[owner], lends[owner],
                    cends[owner])  # fmt: skip
        blocks.append(
            path=path, owner_idx=owner, block_index=block.index, block_kind=block.kind,
            bstart=span[0], bend=span[1], line_start=span[2], col_start=span[3],
            line_end=span[4], col_end=span[5],
        )  # fmt: skip
        for position in block.statements:
            stmt = ev.statements.get(position)
            if stmt is not None:
                statements.append(
                    path=path, owner_idx=owner, block_index=block.index, stmt_idx=stmt
                )
    edges = tables["cfg_edges"]
    for edge in cfg.edges:
        owner = owner_of.get((edge.owner_qualname, edge.owner_line))
        if owner is not None:
            edges.append(
                path=path, owner_idx=owner, src_block=edge.src, dst_block=edge.dst,
                label=edge.label,
            )  # fmt: skip
    report = reaching_defs_report(tree, cfg, max_blocks=max_blocks)
    reaching = tables["reaching_defs"]
    for r in report.defs:
        owner = owner_of.get((r.owner_qualname, r.owner_line))
        def_idx = _pick(ev.bindings.get((r.def_line, r.def_col), []), r.name)
        use_idx = _pick(ev.bindings.get((r.use_line, r.use_col), []), r.name)
        if owner is None or def_idx is None or use_idx is None:
            continue
        reaching.append(path=path, owner_idx=owner, name=r.name, def_idx=def_idx, use_idx=use_idx)
    return [(s.owner_qualname, s.owner_line, s.blocks) for s in report.skipped]
