"""``python -m cardiobox.demo.hospitals OUT_DIR``: generate the demo hospitals."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cardiobox.demo.hospitals.dirt import KINDS, DirtRates
from cardiobox.demo.hospitals.generate import DEFAULT_SEED, generate_hospital, write_index
from cardiobox.demo.hospitals.profile import HOSPITALS, TABLES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cardiobox.demo.hospitals",
        description="Generate the demo hospitals' extracts, mappings, truth and manifests.",
    )
    p.add_argument("out_dir", help="folder; each hospital gets a subfolder")
    p.add_argument("--patients", type=int, default=10_000, help="patients per hospital")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument(
        "--hospital",
        action="append",
        choices=HOSPITALS,
        help="generate only this hospital (repeatable; default all)",
    )
    p.add_argument("--clean", action="store_true", help="plant no dirt at all")
    for kind in KINDS:
        p.add_argument(
            f"--{kind.replace('_', '-')}",
            type=float,
            metavar="RATE",
            help=f"share of rows with {kind.replace('_', ' ')}s (default "
            f"{getattr(DirtRates(), kind)})",
        )
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    rates = DirtRates.none() if args.clean else DirtRates()
    overrides = {k: getattr(args, k) for k in KINDS if getattr(args, k) is not None}
    if overrides:
        rates = DirtRates(**{**rates.as_dict(), **overrides})
    summary: dict[str, object] = {}
    out = Path(args.out_dir)
    names = list(dict.fromkeys(args.hospital or HOSPITALS))
    total = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        h = generate_hospital(name, out / name, args.patients, args.seed, rates)
        seconds = round(time.perf_counter() - t0, 2)
        summary[name] = {
            "folder": str(h.root),
            "seconds": seconds,
            "rows": {t: h.rows(t) for t in TABLES},
            "planted": h.manifest["dirt"]["totals"],
        }
        if not args.json:
            rows = ", ".join(f"{t} {h.rows(t):,}" for t in TABLES)
            planted = ", ".join(f"{k} {v}" for k, v in h.manifest["dirt"]["totals"].items())
            print(f"{name}: {seconds:.1f} s -> {h.root}\n  rows: {rows}\n  dirt: {planted}")
    write_index(out, names, args.patients, args.seed)
    if args.json:
        summary["seconds"] = round(time.perf_counter() - total, 2)
        json.dump(summary, sys.stdout)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
