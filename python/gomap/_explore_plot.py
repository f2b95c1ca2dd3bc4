"""The explorer's picture (matplotlib): time series above, bucket views below."""

from __future__ import annotations

from typing import Any, Dict, List

from .explore import EMPTY_ONE, EMPTY_REST, MIN_TOP_HASH, Occupancy, Timeline, _capacity, _overflow_limit

MISSING_MATPLOTLIB = (
    "the explorer's picture needs matplotlib, which is not installed.\n"
    "Install it with:  pip install 'gomap[explore]'   (or: pip install matplotlib)\n"
    "The table needs nothing: python -m gomap explore --no-plot"
)

# slot colours: no bucket there, emptyRest, emptyOne, evacuated, live
_COLOURS = ["#ffffff", "#e8e8e8", "#f2b134", "#7aa6d6", "#2f6b3a"]
_LABELS = ["(no bucket)", "emptyRest", "emptyOne", "evacuated", "live"]


class MatplotlibMissing(ImportError):
    pass


def _grid(chains: List[List[int]]) -> List[List[int]]:
    """Slots as rows (slot position along the chain) x columns (buckets) of colour indices."""
    depth = max(8, max((len(c) for c in chains), default=8))
    g = [[0] * max(len(chains), 1) for _ in range(depth)]
    for x, chain in enumerate(chains):
        for y, t in enumerate(chain):
            if t >= MIN_TOP_HASH:
                g[y][x] = 4
            elif t == EMPTY_ONE:
                g[y][x] = 2
            elif t == EMPTY_REST:
                g[y][x] = 1
            else:
                g[y][x] = 3
    return g


def _draw_occupancy(ax: Any, occ: Occupancy, old: bool, cmap: Any, norm: Any) -> None:
    chains = occ.oldbuckets if old else occ.buckets
    if not chains:
        ax.set_axis_off()
        ax.set_title("(no old buckets)" if old else "(no buckets yet)", fontsize=8)
        return
    g = _grid(chains)
    ax.imshow(g, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm, origin="upper")
    c = occ.counts(old)
    which = "old buckets" if old else "buckets"
    ax.set_title(f"op {occ.step}: {occ.label}\n{len(chains)} {which}: "
                 f"{c['live']} live, {c['empty_one']} emptyOne, {c['evacuated']} evac.", fontsize=7)
    ax.set_xlabel("bucket", fontsize=7)
    ax.set_ylabel("slot (8 per bucket, overflow below)", fontsize=6)
    for y in range(8, len(g), 8):
        ax.axhline(y - 0.5, color="black", linewidth=0.4)
    ax.tick_params(labelsize=6)


def plot(tl: Timeline, path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.patches import Patch
    except ImportError as e:
        raise MatplotlibMissing(MISSING_MATPLOTLIB) from e

    sr = tl.series
    steps = list(range(len(tl.ops)))
    moments = tl.moments
    n_occ_rows = 2 if any(o.oldbuckets for o in moments) else 1
    cols = max(3, len(moments))
    fig = plt.figure(figsize=(max(14, 3.2 * cols), 10 + 3 * n_occ_rows))
    gs = fig.add_gridspec(3 + n_occ_rows, cols, height_ratios=[1, 1, 1] + [1.1] * n_occ_rows, hspace=0.75,
                          wspace=0.35, top=0.93, bottom=0.07, left=0.05, right=0.96)
    title = (f"gomap explore: {tl.workload}, {tl.key} keys, n={tl.n}, hint={tl.hint} "
             f"({len(tl.ops)} operations)")
    if tl.go is not None:
        title += f" -- Go {tl.go_version} overlaid: " + ("agrees" if tl.go_agrees else "DISAGREES")
    fig.suptitle(title, fontsize=12)

    half = cols // 2
    ax_count = fig.add_subplot(gs[0, :half])
    ax_load = fig.add_subplot(gs[0, half:])
    ax_ovf = fig.add_subplot(gs[1, :half])
    ax_evac = fig.add_subplot(gs[1, half:])
    ax_bytes = fig.add_subplot(gs[2, :half])
    ax_lat = fig.add_subplot(gs[2, half:])

    def shade(ax: Any) -> None:
        start = None
        for i, g in enumerate(sr["growing"] + [False]):
            if g and start is None:
                start, same = i, sr["same_size"][i]
            elif not g and start is not None:
                ax.axvspan(start, i, color="#d62728" if same else "#1f77b4", alpha=0.12, linewidth=0)
                start = None

    go = tl.go
    go_style: Dict[str, Any] = dict(linestyle="none", marker="x", markersize=3, color="black", alpha=0.6)
    go_every = max(1, len(steps) // 300)

    def go_overlay(ax: Any, name: str, scale: Any = None) -> None:
        if go is None:
            return
        xs = steps[::go_every]
        ys = go[name][::go_every]
        if scale is not None:
            ys = [scale(i, y) for i, y in zip(xs, ys)]
        ax.plot(xs, ys, label=f"Go {name}", **go_style)

    ax_count.plot(steps, sr["count"], label="count", color="#1f77b4")
    ax_count.plot(steps, [_capacity(b) for b in sr["B"]], label="6.5 * 2^B (doubling point)",
                  color="#1f77b4", linestyle="--", linewidth=0.8)
    go_overlay(ax_count, "count")
    axb = ax_count.twinx()
    axb.step(steps, sr["B"], where="post", color="#9467bd", label="B")
    if go is not None:
        axb.plot(steps[::go_every], go["B"][::go_every], **{**go_style, "color": "#9467bd"})
    axb.set_ylabel("B", color="#9467bd")
    ax_count.set_title("count, doubling point and B (blue band: doubling, red: same-size grow)", fontsize=9)
    ax_count.legend(loc="upper left", fontsize=7)

    ax_load.plot(steps, sr["load_factor"], color="#2ca02c")
    ax_load.axhline(6.5, color="grey", linestyle="--", linewidth=0.8)
    ax_load.set_title("load factor (count / 2^B; Go doubles past 6.5)", fontsize=9)

    ax_ovf.plot(steps, sr["overflow_buckets"], label="overflow buckets (new array)", color="#ff7f0e")
    ax_ovf.plot(steps, sr["noverflow"], label="noverflow", color="#8c564b")
    ax_ovf.plot(steps, [_overflow_limit(b) for b in sr["B"]], label="2^min(B,15) (same-size grow point)",
                color="#d62728", linestyle="--", linewidth=0.8)
    go_overlay(ax_ovf, "noverflow")
    go_overlay(ax_ovf, "overflow_buckets")
    ax_ovf.set_title("overflow buckets", fontsize=9)
    ax_ovf.legend(loc="upper left", fontsize=7)

    frac = [(e / o if g and o else float("nan")) for e, o, g in
            zip(sr["nevacuate"], sr["old_buckets"], sr["growing"])]
    ax_evac.plot(steps, frac, color="#17becf", label="nevacuate / old buckets")
    if go is not None:
        go_overlay(ax_evac, "nevacuate",
                   lambda i, y: (y / sr["old_buckets"][i]) if go["growing"][i] and sr["old_buckets"][i] else
                   float("nan"))
    ax_evac.set_ylim(-0.05, 1.05)
    ax_evac.set_title("evacuation progress while growing (nevacuate / old buckets)", fontsize=9)

    ax_bytes.plot(steps, [b / 1024 for b in sr["bytes"]], color="#7f7f7f")
    ax_bytes.set_title("bucket memory, KiB (Go's layout; old array included while growing)", fontsize=9)

    ins = [i for i, (op, _) in enumerate(tl.ops) if op == "set"]
    ax_lat.scatter(ins, [tl.latency_ns[i] / 1000 for i in ins], s=2, color="#bcbd22", alpha=0.5)
    ax_lat.set_yscale("log")
    ax_lat.set_title("latency of each insert, us (perf_counter_ns around m[k] = v)", fontsize=9)

    # A long churn phase would squeeze the inserts into a sliver: linear x up to
    # the end of the inserts, logarithmic after.
    long_tail = len(steps) > 4 * max(tl.n, 1) and tl.n > 0
    for ax in (ax_count, ax_load, ax_ovf, ax_evac, ax_bytes, ax_lat):
        shade(ax)
        if long_tail:
            ax.set_xscale("symlog", linthresh=tl.n * 1.1, linscale=1.5)
        ax.set_xlabel("operation" + (" (linear to the end of the inserts, then log)" if long_tail else ""),
                      fontsize=8)
        ax.tick_params(labelsize=7)
        for o in moments:
            ax.axvline(o.step, color="black", linewidth=0.5, linestyle=":")

    cmap = ListedColormap(_COLOURS)
    norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5, 4.5], cmap.N)
    for j, occ in enumerate(moments[:cols]):
        _draw_occupancy(fig.add_subplot(gs[3, j]), occ, False, cmap, norm)
        if n_occ_rows == 2:
            _draw_occupancy(fig.add_subplot(gs[4, j]), occ, True, cmap, norm)
    fig.legend(handles=[Patch(color=c, label=lab) for c, lab in zip(_COLOURS, _LABELS)],
               loc="lower center", ncol=5, fontsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path
