"""Time ``file_cfg`` and ``reaching_defs`` over every .py file of the stdlib.

Why: the stdlib (~860 kLOC) is the reference workload for per-file extractors. Parsing is
timed separately; files that do not parse are skipped and counted.

Run: ``.venv/bin/python benchmarks/bench_cfg.py [ROOT]`` (default: the stdlib directory).
"""

from __future__ import annotations

import ast
import sys
import sysconfig
import time
from pathlib import Path

from codeanatomy_assets.extract.cfg import file_cfg
from codeanatomy_assets.extract.dataflow import reaching_defs


def main(argv: list[str]) -> int:
    """Print files/s and totals for parse, CFG and reaching definitions."""
    root = Path(argv[1] if len(argv) > 1 else sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    parse_s = cfg_s = rd_s = 0.0
    files = skipped = lines = blocks = edges = defs = 0
    for path in paths:
        try:
            source = path.read_bytes()
            started = time.perf_counter()
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):
            skipped += 1
            continue
        parsed = time.perf_counter()
        cfg = file_cfg(tree)
        built = time.perf_counter()
        found = reaching_defs(tree, cfg)
        solved = time.perf_counter()
        parse_s += parsed - started
        cfg_s += built - parsed
        rd_s += solved - built
        files += 1
        lines += source.count(b"\n")
        blocks += len(cfg.blocks)
        edges += len(cfg.edges)
        defs += len(found)
    total = cfg_s + rd_s
    print(f"root={root} files={files} skipped={skipped} lines={lines}")
    print(f"blocks={blocks} edges={edges} reaching_defs={defs}")
    print(f"parse_s={parse_s:.2f} file_cfg_s={cfg_s:.2f} reaching_defs_s={rd_s:.2f}")
    print(f"cfg+reaching_defs_s={total:.2f} files_per_s={files / total:.0f} "
          f"klines_per_s={lines / total / 1000:.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
