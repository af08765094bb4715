"""Run every benchmark of the project and print one table.

Each benchmark runs in its own process (``python -m bench.<name>``, its own broker where it
needs one) and hands its rows back through ``NEWSWIRE_BENCH_ROWS``; the table shows each
figure beside the peer or ceiling measured in the same run.

    .venv/bin/python -m bench.run_all            # every benchmark
    .venv/bin/python -m bench.run_all render feeds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


from bench.harness import machine, progress

BENCHMARKS = ["produce", "render", "feeds", "realtime", "push", "replay", "prune", "status"]


def run(name: str, rows_file: Path) -> int:
    env = {**os.environ, "NEWSWIRE_BENCH_ROWS": str(rows_file)}
    log = rows_file.with_suffix(f".{name}.log")
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
    if result.returncode != 0:
        print(f"bench.{name} failed (exit {result.returncode}); its output:\n{log.read_text()[-3000:]}",
              file=sys.stderr)
    return result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"no benchmark {', '.join(sorted(unknown))}")
    args.names = args.names or BENCHMARKS
    with tempfile.TemporaryDirectory(prefix="newswire-bench-all-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        rows_file.touch()
        failed, table = [], [("bench", "measure", "figure", "peer / ceiling (same run)")]
        for name in progress(args.names, desc="benchmarks", unit="bench"):
            done = len(table)
            if run(name, rows_file):
                failed.append(name)
            rows = [json.loads(line)["row"] for line in rows_file.read_text().splitlines()]
            table += [(name, *row) for row in rows[done - 1:]]
    widths = [max(len(str(row[i])) for row in table) for i in range(4)]
    print(f"\nnewswire benchmarks  [{machine()}]")
    for i, row in enumerate(table):
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
        if i == 0:
            print("-+-".join("-" * width for width in widths))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
