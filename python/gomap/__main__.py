"""Command line of gomap: ``python -m gomap crosscheck ...``, ``python -m gomap explore ...`` (also the
``gomap`` script)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

# Exit statuses of `gomap crosscheck` (documented in its --help and the README).
EXIT_OK = 0  # every trace matched, bit for bit
EXIT_MISMATCH = 1  # at least one trace differed from Go
EXIT_USAGE = 2  # bad arguments, or no usable Go toolchain / gomap extension
EXIT_HARNESS = 3  # the Go harness failed to build or to run
EXIT_UNSUPPORTED = 4  # the Go toolchain's release has no classic map gomap follows

EXIT_STATUS_HELP = """\
exit status:
  0  every trace matched bit for bit (with --all-go: on every release)
  1  a trace mismatched (the report shows the first difference and how to reproduce it)
  2  bad arguments, no usable Go toolchain (GOMAP_GO or `go` on PATH), or gomap cannot be imported
  3  the Go harness could not be built or failed while running
  4  the Go toolchain's release has no classic map that gomap follows (before 1.19, 1.25+);
     with --all-go: some toolchain found was such a release, and nothing mismatched
"""


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


def _whole(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive(text: str) -> int:
    n = _whole(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def _parse_ids(text: str) -> List[int]:
    ids: List[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            lo, hi = _id(a, part), _id(b, part)
            if lo > hi:
                raise argparse.ArgumentTypeError(f"range {part!r} is backwards (write it as {hi}-{lo})")
            ids.extend(range(lo, hi + 1))
        else:
            ids.append(_id(part, part))
    if not ids:
        raise argparse.ArgumentTypeError("no trace ids given")
    return ids


def _id(text: str, part: str) -> int:
    try:
        n = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{part!r} is not a trace id or a range A-B of trace ids (whole numbers >= 0)") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"trace ids are >= 0, got {part!r}")
    return n


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gomap", description="gomap: Go's runtime map for Python")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser(
        "crosscheck",
        help="compare gomap.Map with the real Go runtime on random traces",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_STATUS_HELP,
        description=(
            "Generate random operation traces, play them on real Go maps (a small Go program\n"
            "built with a Go toolchain, run with GODEBUG=cpu.aes=off) and on gomap.Map with the\n"
            "same hashkey, random draws and Go release, and compare results, len and snapshot()\n"
            "after every operation. The toolchain's release (go env GOVERSION, 1.19-1.24) selects\n"
            "gomap.Map(go=...); Go 1.24 is built with GOEXPERIMENT=noswissmap."))
    c.add_argument("--traces", type=_positive, default=100, metavar="N",
                   help="number of traces, spread round-robin over the key types (default 100; "
                        "with --all-go: per release)")
    c.add_argument("--seed", type=_whole, default=None, metavar="S",
                   help="master seed (default: random, printed in the report)")
    c.add_argument("--key-types", type=_parse_kinds, default=None, metavar="T,T,...",
                   help="key types: int64,int32,uint64,uint32,float64,float32,string (the default: "
                        "all seven), or also bytes (played on Go string keys)")
    c.add_argument("--ops", type=_positive, default=300, metavar="N",
                   help="approximate operations per trace (default 300; growth phases may run longer)")
    c.add_argument("--only", type=_parse_ids, default=None, metavar="ID[,ID|A-B]",
                   help="replay only these trace ids (of the same --seed/--traces/--key-types/--ops run)")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--go", metavar="PATH", default=None,
                       help="the Go toolchain to check against (default: $GOMAP_GO, else `go` on PATH)")
    which.add_argument("--all-go", action="store_true",
                       help="check against every toolchain found ($GOMAP_GO, `go` on PATH, and those "
                            "scripts/go-toolchains.sh unpacked into ~/.cache/gomap/go-toolchains or "
                            "$GOMAP_GO_TOOLCHAINS), one per release, and print a per-release table")
    c.add_argument("--no-snapshots", action="store_true",
                   help="compare results and len only, not snapshot() after every step (faster)")
    c.add_argument("--save-failures", metavar="DIR", default=None,
                   help="write each mismatching trace with Go's output to DIR/trace-<id>.json")
    c.add_argument("--verbose", "-v", action="store_true",
                   help="one line per trace, coverage figures, every mismatch")
    c.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (by default: a bar on a terminal, otherwise a line every 10s)")
    from .explore import add_subparser as add_explore

    add_explore(sub)
    return p


def _err(msg: str) -> None:
    print(f"gomap crosscheck: {msg}", file=sys.stderr)


def _crosscheck(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import crosscheck as cc

    if args.only is not None:
        outside = sorted({i for i in args.only if i >= args.traces})
        if outside:
            shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
            _err(f"--only: trace id(s) {shown} not in a run of --traces {args.traces} "
                 f"(ids 0-{args.traces - 1}); give the --traces of the run to reproduce")
            return EXIT_USAGE
    try:
        import gomap

        gomap.Map  # noqa: B018
    except Exception as e:  # noqa: BLE001
        _err(f"cannot import gomap.Map: {e}")
        return EXIT_USAGE
    common = dict(
        traces=args.traces,
        kinds=args.key_types or cc.KEY_KINDS,
        n_ops=args.ops,
        only=args.only,
        progress=False if args.no_progress else None,
        check_snapshots=not args.no_snapshots,
        log=(lambda s: print(s, file=sys.stderr)) if args.verbose else None,
        save_dir=args.save_failures,
        info=lambda s: print(s, file=sys.stderr, flush=True),
    )
    if args.all_go:
        try:
            rows = cc.run_all_go(seed=args.seed, **common)
        except cc.GoNotFound as e:
            _err(f"no Go toolchain found.\n{e}")
            return EXIT_USAGE
        print(cc.format_release_table(rows))
        for r in rows:
            if r.report is not None and not r.report.ok:
                print()
                print(r.report.format(verbose=args.verbose))
        if any(r.report is not None and not r.report.ok for r in rows):
            return EXIT_MISMATCH
        if any(r.problem == "harness" for r in rows):
            return EXIT_HARNESS
        if any(r.problem == "not-go" for r in rows):
            return EXIT_USAGE
        if any(r.problem == "unsupported" for r in rows):
            return EXIT_UNSUPPORTED
        return EXIT_OK
    try:
        go = args.go or cc.find_go()
        report = cc.run_crosscheck(seed=args.seed, go=go, **common)
    except cc.GoNotFound as e:
        _err(f"Go not found.\n{e}" if str(e) == cc.INSTALL_HINT else str(e))
        return EXIT_USAGE
    except cc.UnsupportedGo as e:
        _err(str(e))
        return EXIT_UNSUPPORTED
    except cc.HarnessError as e:
        _err(str(e))
        return EXIT_HARNESS
    print(report.format(verbose=args.verbose))
    return EXIT_OK if report.ok else EXIT_MISMATCH


def main(argv: Optional[List[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "crosscheck":
        return _crosscheck(parser, args)
    if args.command == "explore":
        from .explore import cli as explore

        return explore(args)
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
