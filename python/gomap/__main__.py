"""Command line of gomap: ``python -m gomap crosscheck ...``, ``python -m gomap explore ...`` (also the
``gomap`` script)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _parse_kinds(text: str) -> List[str]:
    from .crosscheck import ALL_KINDS, KEY_KINDS

    aliases = {"int": "int64", "float": "float64", "str": "string"}
    kinds: List[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            kinds.extend(KEY_KINDS)
            continue
        part = aliases.get(part, part)
        if part not in ALL_KINDS:
            raise argparse.ArgumentTypeError(
                f"unknown key type {part!r}; choose from {','.join(ALL_KINDS)}")
        kinds.append(part)
    if not kinds:
        raise argparse.ArgumentTypeError("no key types given")
    return list(dict.fromkeys(kinds))


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _parse_ids(text: str) -> List[int]:
    ids: List[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            ids.extend(range(int(a), int(b) + 1))
        elif part:
            ids.append(int(part))
    return ids


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gomap", description="gomap: Go's runtime map for Python")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser(
        "crosscheck",
        help="compare gomap.Map with the real Go runtime on random traces",
        description=(
            "Generate random operation traces, play them on real Go maps (a small Go program "
            "built with the local `go`, run with GODEBUG=cpu.aes=off) and on gomap.Map with the "
            "same hashkey and random draws, and compare results, len and snapshot() after every "
            "operation. Exit status 0 if every trace matched bit for bit, 1 on a mismatch, "
            "2 if Go is not available."))
    c.add_argument("--traces", type=_positive, default=100, metavar="N",
                   help="number of traces, spread round-robin over the key types (default 100)")
    c.add_argument("--seed", type=int, default=None, metavar="S",
                   help="master seed (default: random, printed in the report)")
    c.add_argument("--key-types", type=_parse_kinds, default=None, metavar="T,T,...",
                   help="key types: int64,int32,uint64,uint32,float64,float32,string (the default: "
                        "all seven), or also bytes (played on Go string keys)")
    c.add_argument("--ops", type=_positive, default=300, metavar="N",
                   help="approximate operations per trace (default 300; growth phases may run longer)")
    c.add_argument("--only", type=_parse_ids, default=None, metavar="ID[,ID|A-B]",
                   help="replay only these trace ids (of the same --seed/--traces/--key-types/--ops run)")
    c.add_argument("--no-snapshots", action="store_true",
                   help="compare results and len only, not snapshot() after every step (faster)")
    c.add_argument("--save-failures", metavar="DIR", default=None,
                   help="write each mismatching trace with Go's output to DIR/trace-<id>.json")
    c.add_argument("--verbose", "-v", action="store_true",
                   help="one line per trace, coverage figures, every mismatch")
    c.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    from .explore import add_subparser as add_explore

    add_explore(sub)
    return p


def _crosscheck(args: argparse.Namespace) -> int:
    from . import crosscheck as cc

    try:
        cc.find_go()
    except cc.GoNotFound as e:
        print(f"gomap crosscheck: Go not found.\n{e}", file=sys.stderr)
        return 2
    try:
        import gomap  # noqa: F401
        gomap.Map  # noqa: B018
    except Exception as e:  # noqa: BLE001
        print(f"gomap crosscheck: cannot import gomap.Map: {e}", file=sys.stderr)
        return 2
    try:
        report = cc.run_crosscheck(
            traces=args.traces,
            seed=args.seed,
            kinds=args.key_types or cc.KEY_KINDS,
            n_ops=args.ops,
            only=args.only,
            progress=False if args.no_progress else None,
            check_snapshots=not args.no_snapshots,
            log=(lambda s: print(s, file=sys.stderr)) if args.verbose else None,
            save_dir=args.save_failures,
        )
    except cc.GoNotFound as e:
        print(f"gomap crosscheck: Go not found.\n{e}", file=sys.stderr)
        return 2
    except cc.HarnessError as e:
        print(f"gomap crosscheck: {e}", file=sys.stderr)
        return 3
    print(report.format(verbose=args.verbose))
    return 0 if report.ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "crosscheck":
        return _crosscheck(args)
    if args.command == "explore":
        from .explore import cli as explore

        return explore(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
