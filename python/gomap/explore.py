"""The growth explorer: watch Go's map grow, bucket by bucket.

``python -m gomap explore`` (or :func:`run` from Python) plays a workload on a
:class:`gomap.Map` -- inserts, deletes, or inserts followed by churn (delete a
random key, insert a fresh one) -- and records, after every operation, what
Go's ``hmap`` header and memory look like: ``B``, ``count``, the load factor,
overflow buckets, ``noverflow``, the evacuation progress (``nevacuate``) of a
doubling or a same-size grow, bytes, and the latency of the operation. At a few
moments it also keeps the tophash state of every bucket slot (live, emptyOne,
emptyRest, evacuated) from :meth:`gomap.Map.snapshot`.

The default workload (1664 inserts, then churn) shows both kinds of growth Go
has: doublings while the map fills (when ``count`` would pass 6.5 * 2**B), and a
same-size grow once churn has piled up as many overflow buckets as there are
buckets (``noverflow >= 2**min(B, 15)``).

``go=True`` (``--go``) plays the same operations on the real Go runtime (the
cross-check harness, see docs/crosscheck.md), runs the Map with Go's hashkey and
random draws, and checks Go's header after every operation and its tophash bytes
at every recorded moment against the Map's; the picture overlays Go's series.

The picture needs matplotlib (``pip install 'gomap[explore]'``); the table does
not. See docs/explorer.md.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["KINDS", "WORKLOADS", "Occupancy", "Timeline", "run", "workload_ops", "go_trace", "occupancy_of"]

KINDS: Tuple[str, ...] = ("int64", "int32", "uint64", "uint32", "float64", "float32", "string")
WORKLOADS: Tuple[str, ...] = ("churn", "inserts", "deletes")

# Go's tophash states (runtime/map.go).
EMPTY_REST, EMPTY_ONE, EVACUATED_X, EVACUATED_Y, EVACUATED_EMPTY, MIN_TOP_HASH = 0, 1, 2, 3, 4, 5
STATES: Tuple[str, ...] = ("live", "empty_one", "empty_rest", "evacuated")

SET, DELETE = "set", "delete"


def _state(tophash: int) -> str:
    if tophash >= MIN_TOP_HASH:
        return "live"
    if tophash == EMPTY_ONE:
        return "empty_one"
    if tophash == EMPTY_REST:
        return "empty_rest"
    return "evacuated"


def _key(kind: str, i: int) -> Any:
    """The i-th fresh key of a workload."""
    if kind in ("float64", "float32"):
        return i + 0.5  # exact in float32 below 2**23
    if kind == "string":
        return f"key{i}"
    return i


def _overflow_limit(b: int) -> int:
    """Go's tooManyOverflowBuckets threshold: noverflow >= 2**min(B, 15)."""
    return 1 << min(b, 15)


def _capacity(b: int) -> int:
    """The most entries B buckets hold before the next insert doubles them (6.5 * 2**B, 8 for B = 0)."""
    return 8 if b == 0 else 13 * (1 << b) // 2


def workload_ops(workload: str = "churn", key: str = "int64", n: int = 1664, churn: Optional[int] = None,
                 seed: int = 0) -> Iterator[Tuple[str, Any]]:
    """The operations of a workload, as ``(SET, key)`` / ``(DELETE, key)`` pairs.

    ``inserts``: ``n`` fresh keys. ``deletes``: ``n`` inserts, then every key
    deleted in random order. ``churn``: ``n`` inserts, then ``churn`` rounds of
    "delete a random live key, insert a fresh one" (``None``: an unbounded
    stream; :func:`run` stops it a while after a same-size grow completes).
    Fully determined by the arguments.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    if key not in KINDS:
        raise ValueError(f"unknown key kind {key!r}; expected one of {', '.join(KINDS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    rng = random.Random(seed)
    live = [_key(key, i) for i in range(n)]
    for k in live:
        yield SET, k
    if workload == "deletes":
        rng.shuffle(live)
        for k in live:
            yield DELETE, k
    elif workload == "churn" and n > 0:
        fresh = n
        rounds = 0
        while churn is None or rounds < churn:
            j = rng.randrange(len(live))
            gone = live[j]
            live[j] = _key(key, fresh)
            fresh += 1
            rounds += 1
            yield DELETE, gone
            yield SET, live[j]


def go_trace(ops: Sequence[Tuple[str, Any]], key: str, hint: int = 0) -> Any:
    """The operations as a :class:`gomap.crosscheck.Trace` for the Go harness
    (values are the operation's index)."""
    from . import crosscheck as cc

    return cc.Trace(id=0, kind=key, seed=0, hint=hint,
                    ops=[(cc.SET, k, i) if op == SET else (cc.DELETE, k, None) for i, (op, k) in enumerate(ops)])


@dataclass
class Occupancy:
    """The tophash state of every slot at one moment.

    ``buckets[i]`` lists the tophash bytes of bucket ``i``'s chain (8 per bucket:
    the bucket, then its overflow buckets); ``oldbuckets`` the same for the old
    array while growing (an evacuated old bucket shows its 8 evacuated marks)."""

    step: int
    label: str
    B: int
    buckets: List[List[int]]
    oldbuckets: Optional[List[List[int]]]

    def counts(self, old: bool = False) -> Dict[str, int]:
        """How many slots are in each state (``live``, ``empty_one``, ``empty_rest``, ``evacuated``)."""
        out = dict.fromkeys(STATES, 0)
        for chain in (self.oldbuckets or []) if old else self.buckets:
            for t in chain:
                out[_state(t)] += 1
        return out

    def per_bucket(self, old: bool = False) -> List[Dict[str, int]]:
        """The state counts of each bucket chain."""
        rows = []
        for chain in (self.oldbuckets or []) if old else self.buckets:
            c = dict.fromkeys(STATES, 0)
            for t in chain:
                c[_state(t)] += 1
            rows.append(c)
        return rows


def occupancy_of(snap: Dict[str, Any], step: int = -1, label: str = "") -> Occupancy:
    """The :class:`Occupancy` of a ``snapshot()`` (or of the same shape rebuilt from Go)."""

    def flat(arr: Any) -> Optional[List[List[int]]]:
        if arr is None:
            return None
        out = []
        for chain in arr:
            if isinstance(chain, dict):  # an evacuated old bucket
                out.append(list(chain["tophash"]))
            else:
                out.append([t for b in chain for t in b["tophash"]])
        return out

    return Occupancy(step, label, snap["B"], flat(snap["buckets"]) or [], flat(snap["oldbuckets"]))


# The series recorded after every operation.
SERIES: Tuple[str, ...] = ("count", "B", "load_factor", "overflow_buckets", "noverflow", "nevacuate",
                           "old_buckets", "growing", "same_size", "bytes")
# The ones the Go overlay has too (from Go's hmap header and bucket chains).
GO_SERIES: Tuple[str, ...] = ("count", "B", "overflow_buckets", "noverflow", "nevacuate", "growing", "same_size")


@dataclass
class Timeline:
    """What :func:`run` recorded: one entry per operation in every series."""

    workload: str
    key: str
    n: int
    hint: int
    ops: List[Tuple[str, Any]] = field(default_factory=list)
    series: Dict[str, List[Any]] = field(default_factory=lambda: {s: [] for s in SERIES})
    latency_ns: List[int] = field(default_factory=list)
    events: List[Tuple[int, str]] = field(default_factory=list)
    moments: List[Occupancy] = field(default_factory=list)
    go: Optional[Dict[str, List[Any]]] = None
    go_moments: List[Occupancy] = field(default_factory=list)
    go_mismatches: List[str] = field(default_factory=list)
    go_version: str = ""
    note: str = ""

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def go_agrees(self) -> Optional[bool]:
        """None without ``go=True``; else whether Go agreed at every step and moment."""
        return None if self.go is None else not self.go_mismatches

    def table(self, rows: int = 24) -> str:
        """A plain-text table: the steps where something happened (every event) and
        about ``rows`` evenly spaced steps, oldest first."""
        total = len(self.ops)
        if total == 0:
            return "(no operations)"
        picks = {total - 1}
        picks.update(s for s, _ in self.events)
        stride = max(1, -(-total // max(1, rows)))  # at most `rows` evenly spaced rows
        picks.update(range(0, total, stride))
        ev: Dict[int, List[str]] = {}
        for s, what in self.events:
            ev.setdefault(s, []).append(what)
        sr = self.series
        head = (f"{'step':>7} {'op':<6} {'count':>6} {'B':>2} {'load':>5} {'ovfl':>5} {'noverfl':>7} "
                f"{'grow':<6} {'evac':>9} {'bytes':>9} {'lat_us':>7}")
        if self.go is not None:
            head += " go"
        lines = [head]
        bad = {int(m.split(":", 1)[0].split()[-1]) for m in self.go_mismatches if m.startswith("step ")}
        for i in sorted(picks):
            grow = ("same" if sr["same_size"][i] else "double") if sr["growing"][i] else "-"
            evac = f"{sr['nevacuate'][i]}/{sr['old_buckets'][i]}" if sr["growing"][i] else "-"
            line = (f"{i:>7} {self.ops[i][0]:<6} {sr['count'][i]:>6} {sr['B'][i]:>2} {sr['load_factor'][i]:>5.2f} "
                    f"{sr['overflow_buckets'][i]:>5} {sr['noverflow'][i]:>7} {grow:<6} {evac:>9} "
                    f"{sr['bytes'][i]:>9} {self.latency_ns[i] / 1000:>7.1f}")
            if self.go is not None:
                line += "  x" if i in bad else "  ="
            if i in ev:
                line += "  <- " + "; ".join(ev[i])
            lines.append(line)
        return "\n".join(lines)

    def summary(self) -> str:
        """A few lines: the workload, the grows seen, and (with Go) the verdict."""
        sr = self.series
        doublings = sum(1 for _, w in self.events if w.startswith(("doubling starts", "doubling to")))
        same = sum(1 for _, w in self.events if w.startswith("same-size grow starts"))
        out = [f"workload {self.workload}: {len(self.ops)} operations on Map({self.key!r}, 'int64', hint={self.hint}); "
               f"final count {sr['count'][-1] if self.ops else 0}, B {sr['B'][-1] if self.ops else '-'}",
               f"{doublings} doubling(s), {same} same-size grow(s)"]
        if self.note:
            out.append(self.note)
        if self.go is not None:
            if self.go_mismatches:
                out.append(f"Go ({self.go_version}) DISAGREES at {len(self.go_mismatches)} point(s); first: "
                           f"{self.go_mismatches[0]}")
            else:
                out.append(f"Go ({self.go_version}) agrees: header after all {len(self.ops)} operations and the "
                           f"tophash bytes of all {len(self.go_moments)} moments are identical")
        return "\n".join(out)

    def plot(self, path: str) -> str:
        """Draws the timeline and the bucket views into ``path`` (.png or .svg; any
        format matplotlib knows). Needs matplotlib; returns ``path``."""
        from ._explore_plot import plot

        return plot(self, path)


def _progress_printer(total_hint: Optional[int], stream: Any = None) -> Callable[[int, bool], None]:
    """Plain periodic progress lines (every ~2 s) on stderr, whatever the terminal."""
    stream = stream or sys.stderr
    start = time.monotonic()
    last = [start]

    def tick(step: int, done: bool) -> None:
        now = time.monotonic()
        if done:
            if now - start > 2.0:
                print(f"explore: {step} operations in {now - start:.1f}s", file=stream, flush=True)
            return
        if now - last[0] >= 2.0:
            last[0] = now
            of = f"/{total_hint}" if total_hint else ""
            print(f"explore: {step}{of} operations, {now - start:.0f}s", file=stream, flush=True)

    return tick


class _GoState:
    """Go's map as the harness reports it, step by step (header and bucket chains)."""

    def __init__(self, out: Dict[str, Any]):
        self.steps = out["steps"]
        self.buckets: Optional[List[Any]] = None
        self.oldbuckets: Optional[List[Any]] = None
        self.header: List[Any] = []
        self.apply(out["init"])

    def apply(self, step: Dict[str, Any]) -> None:
        self.header = step["h"]
        for which, full, delta in (("buckets", "bk", "bd"), ("oldbuckets", "ok", "od")):
            if full in step:
                setattr(self, which, step[full])
            elif delta in step:
                arr = getattr(self, which)
                for idx, chain in step[delta]:
                    arr[idx] = chain

    def row(self) -> Dict[str, Any]:
        count, b, flags, noverflow, _hash0, nevacuate, growing = self.header
        ovf = sum(len(c) - 1 for c in self.buckets) if self.buckets else 0
        return {"count": count, "B": b, "overflow_buckets": ovf, "noverflow": noverflow,
                "nevacuate": nevacuate, "growing": bool(growing), "same_size": bool(flags & 8)}

    def snapshot(self) -> Dict[str, Any]:
        return {"B": self.header[1], "buckets": self.buckets, "oldbuckets": self.oldbuckets}


def run(workload: str = "churn", key: str = "int64", n: int = 1664, hint: int = 0, *,
        churn: Optional[int] = None, seed: int = 0, moments: Optional[Sequence[int]] = None,
        go: bool = False, max_churn: Optional[int] = None, hashkey: Optional[Sequence[int]] = None,
        rand: Any = None, progress: Optional[bool] = None) -> Timeline:
    """Plays a workload on a :class:`gomap.Map` and records its growth.

    ``workload``: ``"churn"`` (default), ``"inserts"`` or ``"deletes"`` (see
    :func:`workload_ops`); ``key``: the key kind; ``n``: how many keys are
    inserted first; ``hint``: as ``make(map[K]V, hint)``. ``churn``: churn rounds
    (default: until a same-size grow has completed and ``n // 4`` more rounds,
    at most ``max_churn`` = ``40 * n``). ``moments``: the operation indices whose
    bucket occupancy to keep (default: chosen from the events -- the last
    doubling's start and middle, the first same-size grow's start, middle and
    end, and the last operation). ``go``: also run on the Go runtime and compare
    (raises :class:`gomap.crosscheck.GoNotFound` without ``go``). ``hashkey``
    and ``rand``: the Map's (as for :class:`gomap.Map`; fixing both makes a run
    reproducible; with ``go`` Go's are used). ``progress``: periodic lines on
    stderr (default: on).
    """
    import gomap

    if hint < 0:
        raise ValueError(f"hint must be >= 0, not {hint}")
    if churn is not None and churn < 0:
        raise ValueError(f"churn must be >= 0, not {churn}")
    auto_stop = workload == "churn" and churn is None
    cap = max_churn if max_churn is not None else 40 * max(n, 1)
    ops_iter = workload_ops(workload, key, n, cap if auto_stop else churn, seed)
    tl = Timeline(workload, key, n, hint)
    go_state: Optional[_GoState] = None
    if go:
        from . import crosscheck as cc

        ops = list(ops_iter)
        exe = cc.build_harness()
        out = cc.run_harness([go_trace(ops, key, hint)], exe=exe)[0]
        go_state = _GoState(out)
        tl.go = {s: [] for s in GO_SERIES}
        try:
            tl.go_version = cc._go_version(cc.find_go())[0]
        except Exception:  # noqa: BLE001 -- only a label
            tl.go_version = "go"
        m = gomap.Map(key, "int64", hint, hashkey=out["hashkey"], rand=iter(out["draws"]))
        ops_iter = iter(ops)
    else:
        m = gomap.Map(key, "int64", hint, hashkey=hashkey, rand=rand)

    wanted = set(moments or ())
    auto_moments = moments is None
    kept: Dict[str, Tuple[Occupancy, Optional[Occupancy]]] = {}  # slot -> (Map's, Go's)
    tick: Callable[[int, bool], None] = (_progress_printer(None) if progress is not False
                                          else (lambda step, done: None))
    sr = tl.series
    perf = time.perf_counter_ns
    stop_at: Optional[int] = None
    prev: Dict[str, Any] = {"B": m.stats()["B"], "growing": False, "same_size": False, "noverflow": 0}
    same_done = False
    half_marked = False

    def keep(i: int, label: str, slot: Optional[str] = None) -> None:
        """Keeps the occupancy at operation i (under `slot`, replacing an earlier one)."""
        mine = occupancy_of(m.snapshot(), i, label)
        theirs = occupancy_of(go_state.snapshot(), i, label) if go_state is not None else None
        kept[slot or f"step {i}"] = (mine, theirs)

    for i, (op, k) in enumerate(ops_iter):
        if stop_at is not None and i >= stop_at:
            break
        if op == SET:
            t0 = perf()
            m[k] = i
            t1 = perf()
        else:
            t0 = perf()
            m.delete(k)
            t1 = perf()
        tl.ops.append((op, k))
        tl.latency_ns.append(t1 - t0)
        s = m.stats()
        row = {"count": s["count"], "B": s["B"], "load_factor": s["load_factor"],
               "overflow_buckets": s["overflow_buckets"], "noverflow": s["noverflow"],
               "nevacuate": s["nevacuate"], "old_buckets": s["old_buckets"], "growing": s["growing"],
               "same_size": s["same_size_grow"], "bytes": s["bytes"]}
        for name in SERIES:
            sr[name].append(row[name])
        if go_state is not None and tl.go is not None:
            go_state.apply(go_state.steps[i])
            g = go_state.row()
            for name in GO_SERIES:
                tl.go[name].append(g[name])
            diff = [f"{name} {row[name]} vs Go {g[name]}" for name in GO_SERIES if row[name] != g[name]]
            if diff:
                tl.go_mismatches.append(f"step {i}: " + ", ".join(diff))

        # events: a grow starts (B changes for a doubling) or finishes
        started = row["growing"] and (not prev["growing"] or row["B"] != prev["B"])
        if row["B"] != prev["B"] and not row["growing"]:
            # a doubling that started and finished in one operation (B 0 -> 1)
            tl.events.append((i, f"doubling to B={row['B']} (done at once)"))
        elif started:
            if row["same_size"]:
                tl.events.append((i, f"same-size grow starts (noverflow {prev['noverflow']} >= "
                                     f"2^{min(row['B'], 15)})"))
                if auto_moments and "same" not in kept:
                    keep(i, "same-size grow starts", "same")
            else:
                tl.events.append((i, f"doubling starts: B {prev['B']} -> {row['B']} "
                                     f"(count {row['count']} > 6.5*2^{prev['B']})"))
            half_marked = False
        elif row["growing"] and not half_marked and row["nevacuate"] * 2 >= max(row["old_buckets"], 1):
            half_marked = True
            kind = "same-size grow" if row["same_size"] else "doubling"
            tl.events.append((i, f"{kind} half evacuated"))
            if auto_moments and row["same_size"] and "same_mid" not in kept:
                keep(i, "same-size grow, half evacuated", "same_mid")
            elif auto_moments and not row["same_size"] and "same" not in kept:
                keep(i, f"doubling to B={row['B']}, half evacuated", "doubling")  # the last one stays
        if prev["growing"] and not row["growing"]:
            kind = "same-size grow" if prev["same_size"] else "doubling"
            tl.events.append((i, f"{kind} done"))
            if prev["same_size"] and not same_done:
                same_done = True
                if auto_moments:
                    keep(i, "same-size grow done", "same_done")
                if auto_stop:
                    stop_at = i + 1 + 2 * (n // 4)  # n // 4 more churn rounds
        if i in wanted:
            keep(i, f"step {i}")
        if auto_moments and i == n - 1 and workload != "inserts":
            keep(i, f"{n} inserts done", "inserted")
        prev = row
        if i % 512 == 0:
            tick(i, False)
    tick(len(tl.ops), True)
    if auto_stop and not same_done:
        tl.note = (f"no same-size grow within {cap} churn rounds; it comes sooner when n is just under "
                   f"6.5*2^B (e.g. 1664, 832, 416)")
    if auto_moments and tl.ops:
        keep(len(tl.ops) - 1, "end", "end")
    missing = sorted(wanted - {o.step for o, _ in kept.values()})
    if missing:
        tl.note = (tl.note + "\n" if tl.note else "") + f"moments past the last operation ignored: {missing}"
    for mine, theirs in sorted(kept.values(), key=lambda p: p[0].step):
        tl.moments.append(mine)
        if theirs is not None:
            tl.go_moments.append(theirs)
            if (theirs.B, theirs.buckets, theirs.oldbuckets) != (mine.B, mine.buckets, mine.oldbuckets):
                tl.go_mismatches.append(f"moment {mine.label!r} at step {mine.step}: tophash bytes differ from Go's")
    return tl


# --------------------------------------------------------------------------
# Command line: python -m gomap explore
# --------------------------------------------------------------------------


def _moments_arg(text: str) -> Optional[List[int]]:
    import argparse

    if text.strip() == "auto":
        return None
    try:
        steps = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or operation numbers like 100,2000; got {text!r}")
    if not steps or any(s < 0 for s in steps):
        raise argparse.ArgumentTypeError(f"expected 'auto' or operation numbers >= 0; got {text!r}")
    return steps


def _count_arg(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def add_subparser(sub: Any) -> None:
    """Registers ``explore`` on the ``gomap`` command line's subparsers."""
    p = sub.add_parser(
        "explore",
        help="watch Go's map grow: a table and a picture of B, overflow, evacuation, bucket occupancy",
        description=(
            "Play a workload on gomap.Map and record, after every operation, Go's hmap state: B, count, "
            "load factor, overflow buckets, noverflow, evacuation progress (nevacuate), bytes and the "
            "operation's latency, plus the tophash state of every bucket slot at a few moments. Prints a "
            "table and draws a picture (needs matplotlib: pip install 'gomap[explore]'). The default "
            "workload shows doublings and a same-size grow. See docs/explorer.md. Exit status: 0 done, "
            "1 --go found a difference from Go, 2 Go or matplotlib missing or bad arguments."))
    p.add_argument("--workload", choices=WORKLOADS, default="churn",
                   help="churn (default): N inserts, then delete-a-random-key/insert-a-fresh-one rounds; "
                        "inserts: N inserts; deletes: N inserts, then delete them all")
    p.add_argument("--key", choices=KINDS, default="int64", help="key kind (default int64)")
    p.add_argument("--n", type=_count_arg, default=1664, metavar="N",
                   help="keys inserted first (default 1664 = 6.5*2^8, the most 256 buckets hold: churn at "
                        "that load soon piles up overflow buckets)")
    p.add_argument("--hint", type=_count_arg, default=0, metavar="N", help="make(map[K]V, hint) (default 0)")
    p.add_argument("--churn", type=_count_arg, default=None, metavar="N",
                   help="churn rounds (default: until a same-size grow has completed, then N/4 more)")
    p.add_argument("--seed", type=int, default=0, help="seed of the workload's random choices (default 0)")
    p.add_argument("--moments", type=_moments_arg, default=None, metavar="auto|I,J,...",
                   help="operations whose bucket occupancy to show (default auto: around the grows)")
    p.add_argument("--out", default="gomap-explore.png", metavar="FILE",
                   help="the picture: .png or .svg (default gomap-explore.png)")
    p.add_argument("--no-plot", action="store_true", help="print the table only (no matplotlib needed)")
    p.add_argument("--rows", type=_count_arg, default=24, metavar="N", help="about N table rows (default 24)")
    p.add_argument("--go", action="store_true",
                   help="also play the workload on the real Go runtime (needs `go`) and overlay/compare it")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")


def cli(args: Any) -> int:
    """Runs ``python -m gomap explore`` with parsed ``args``; returns the exit status."""
    plot_it = not args.no_plot
    if plot_it:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            from ._explore_plot import MISSING_MATPLOTLIB

            print(f"gomap explore: {MISSING_MATPLOTLIB}", file=sys.stderr)
            return 2
    if args.go:
        from . import crosscheck as cc

        try:
            cc.find_go()
        except cc.GoNotFound as e:
            print(f"gomap explore --go: Go not found.\n{e}", file=sys.stderr)
            return 2
        if not args.no_progress:
            print("explore: playing the workload on the Go runtime (the first run builds a small Go program)...",
                  file=sys.stderr, flush=True)
    try:
        tl = run(args.workload, args.key, args.n, args.hint, churn=args.churn, seed=args.seed,
                 moments=args.moments, go=args.go, progress=not args.no_progress)
    except Exception as e:  # noqa: BLE001 -- the harness's errors, reported without a traceback
        from . import crosscheck as cc

        if isinstance(e, (cc.GoNotFound, cc.HarnessError)):
            print(f"gomap explore --go: {e}", file=sys.stderr)
            return 2
        raise
    print(tl.table(args.rows))
    print()
    print(tl.summary())
    for o in tl.moments:
        c, old = o.counts(), o.counts(old=True) if o.oldbuckets else None
        line = (f"  moment op {o.step:>6} ({o.label}): {len(o.buckets)} buckets, {c['live']} live, "
                f"{c['empty_one']} emptyOne, {c['empty_rest']} emptyRest slots")
        if old:
            line += (f"; {len(o.oldbuckets or [])} old buckets: {old['evacuated']} evacuated slots, "
                     f"{old['live']} live")
        print(line)
    if plot_it:
        try:
            print(f"picture: {tl.plot(args.out)}")
        except (OSError, ValueError) as e:  # an unwritable path, an unknown extension
            print(f"gomap explore: cannot write the picture {args.out!r}: {e}", file=sys.stderr)
            return 2
    return 1 if tl.go_agrees is False else 0
