"""Runs every gomap benchmark and writes BENCHMARKS.md and benches/get_hit.png.

    python benches/run_all.py              # everything (~15-30 min on 2 cores)
    python benches/run_all.py --criterion  # the same plus criterion's own report (what `make bench` runs)
    python benches/run_all.py --quick      # small sizes, to check the plumbing: writes only under
                                           # benches/results/quick/ (git-ignored), never the tracked files
    python benches/run_all.py --report     # rewrite the report from benches/results/*.json

Steps, one at a time (the machine may have 2 cores), each writing
benches/results/<step>.json:

  pytest    pytest benches/ --benchmark-only  (gomap.Map vs dict, 1M keys)
  memory    python benches/memory.py gomap|dict
  tail      python benches/tail_latency.py gomap|dict   (10M inserts)
  sweep     python benches/sweep.py                      (get-hit vs size, Python)
  rust      GOMAP_BENCH_JSON=table|sweep cargo bench --bench core
  go        go run ./benches/go -mode table|sweep  (and again with GODEBUG=cpu.aes=off)

`--only pytest,memory` runs a subset and reuses the other results on disk.
Requires the gomap extension installed, numpy, pytest-benchmark, matplotlib,
cargo, and go (steps whose tool is missing are skipped and reported as such).
Nothing asserts a timing: targets are reported, met or not.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RES = os.path.join(HERE, "results")  # --quick: results/quick (see main)
# Where the report and its plot go: the tracked files, except for --quick runs.
REPORT = os.path.join(ROOT, "BENCHMARKS.md")
# BENCHMARKS.md from this line on is not written by this script, and kept as is.
KEEP = "<!-- Sections below: written from their own scripts' runs; run_all.py keeps them. -->"
PLOT = os.path.join(HERE, "get_hit.png")
PLOT_LINK = "benches/get_hit.png"  # the plot, relative to the report
STEPS = ["pytest", "memory", "tail", "sweep", "rust", "go"]


def sh(cmd, *, env=None, cwd=ROOT, log=None):
    print("+", " ".join(cmd), flush=True)
    e = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=None if log is None else log, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return p.stdout


def last_json(out: str):
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in output")


def save(name, obj):
    os.makedirs(RES, exist_ok=True)
    with open(os.path.join(RES, name + ".json"), "w") as f:
        json.dump(obj, f, indent=1)


def load(name):
    try:
        with open(os.path.join(RES, name + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"]


# ------------------------------------------------------------------ steps

def step_pytest(a):
    env = {"GOMAP_BENCH_N": str(a.n)}
    out = os.path.join(RES, "pytest-raw.json")
    os.makedirs(RES, exist_ok=True)
    sh([sys.executable, "-m", "pytest", "benches/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
        f"--benchmark-json={out}"], env=env)
    raw = json.load(open(out))
    res = {}
    for b in raw["benchmarks"]:
        ops = b["extra_info"]["ops"]
        impl = b["params"]["impl"]
        res.setdefault(b["group"], {})[impl] = {
            "median_ns": b["stats"]["median"] * 1e9 / ops,
            "min_ns": b["stats"]["min"] * 1e9 / ops,
            "rounds": b["stats"]["rounds"],
        }
    save("pytest", {"n": a.n, "groups": res})


def step_memory(a):
    save("memory", {impl: last_json(sh([sys.executable, "benches/memory.py", impl, str(a.n)])) for impl in ("gomap", "dict")})


def step_tail(a):
    save("tail", {impl: last_json(sh([sys.executable, "benches/tail_latency.py", impl, str(a.tail_n)])) for impl in ("gomap", "dict")})


def step_sweep(a):
    save("sweep", last_json(sh([sys.executable, "benches/sweep.py", a.sizes])))


def step_rust(a):
    if not shutil.which("cargo"):
        print("cargo not found: skipping the Rust core")
        return
    base = ["cargo", "bench", "--bench", "core"]
    table = last_json(sh(base, env={"GOMAP_BENCH_JSON": "table", "GOMAP_BENCH_N": str(a.n)}))
    sweep = last_json(sh(base, env={"GOMAP_BENCH_JSON": "sweep", "GOMAP_BENCH_SIZES": a.sizes}))
    save("rust", {"table": table, "sweep": sweep})
    if a.criterion:
        sh(base)


def step_go(a):
    if not shutil.which("go"):
        print("go not found: skipping Go (install Go 1.19: `make go`)")
        return
    gobin = os.path.join(RES, "gobench")
    sh(["go", "build", "-o", gobin, "."], cwd=os.path.join(HERE, "go"))
    ver = sh(["go", "version"]).strip()
    table = last_json(sh([gobin, "-mode", "table", "-n", str(a.n)]))
    noaes = last_json(sh([gobin, "-mode", "table", "-n", str(a.n)], env={"GODEBUG": "cpu.aes=off"}))
    sweep = last_json(sh([gobin, "-mode", "sweep", "-sizes", a.sizes]))
    save("go", {"version": ver, "table": table, "table_noaes": noaes, "sweep": sweep})


# ------------------------------------------------------------------ report

def machine():
    model, cores = "?", os.cpu_count()
    try:
        for line in sh(["lscpu"]).splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except Exception:
        pass
    return model, cores


def fmt(x, d=1):
    return "—" if x is None else f"{x:,.{d}f}"


def verdict(ratio, target, le=True):
    if ratio is None:
        return "not run"
    ok = ratio <= target if le else ratio >= target
    if ok:
        return "met"
    return f"**missed** ({ratio / target:.2f}× the target)" if le else f"**missed** ({target / ratio:.2f}× short)"


PY_TARGETS = {
    ("int64", "get"): 1.0, ("int64", "contains"): 1.0, ("int64", "set"): 1.2,
    ("int64", "delete"): 1.2, ("int64", "iterate"): 1.5,
}


# How to run the benchmarks: the same words in BENCHMARKS.md, README.md and `make help`.
HOW_TO_RUN = (
    "```sh\n"
    "pip install '.[bench]'     # pytest-benchmark, numpy, matplotlib (plus cargo and Go 1.19: `make go`)\n"
    "make bench                 # = python benches/run_all.py --criterion\n"
    "```\n\n"
    "`python benches/run_all.py` alone runs the same steps without criterion's HTML report; "
    "`python benches/run_all.py --quick` checks the plumbing with small sizes and writes only under "
    "`benches/results/quick/` (ignored by git), never this file or the plot.\n"
)
CRITERION_NOTE = (
    "With `--criterion` (as `make bench` runs it) it finally runs `cargo bench --bench core` once more for "
    "criterion's own view of the Rust core (core vs hashbrown vs std, same workloads, HTML under "
    "`target/criterion/`; a few minutes).\n"
)


def report(a, meta):
    lines = []
    w = lines.append
    model, cores = machine()
    w("# gomap benchmarks\n")
    if a.quick:
        w("**Quick run (`--quick`): small sizes to check the plumbing; the figures mean nothing. "
          "The tracked report is BENCHMARKS.md at the repository root.**\n")
    w("Regenerate everything (this file and `benches/get_hit.png`) with one command from the repository root:\n")
    w(HOW_TO_RUN)
    w("It runs, one after the other (each step also writes `benches/results/<step>.json`):\n")
    w("```sh")
    w(f"GOMAP_BENCH_N={a.n} python -m pytest benches/ --benchmark-only --benchmark-json=benches/results/pytest-raw.json")
    w(f"python benches/memory.py gomap {a.n}; python benches/memory.py dict {a.n}")
    w(f"python benches/tail_latency.py gomap {a.tail_n}; python benches/tail_latency.py dict {a.tail_n}")
    w(f"python benches/sweep.py {a.sizes}")
    w(f"GOMAP_BENCH_JSON=table GOMAP_BENCH_N={a.n} cargo bench --bench core")
    w(f"GOMAP_BENCH_JSON=sweep GOMAP_BENCH_SIZES={a.sizes} cargo bench --bench core")
    w("(cd benches/go && go build -o ../results/gobench .)")
    w(f"benches/results/gobench -mode table -n {a.n}; GODEBUG=cpu.aes=off benches/results/gobench -mode table -n {a.n}")
    w(f"benches/results/gobench -mode sweep -sizes {a.sizes}")
    w("```\n")
    w(CRITERION_NOTE)
    w(f"* Machine: {model}, {cores} logical CPUs, {platform.system()} {platform.release()}")
    w(f"* Date: {meta.get('date', '?')}; Python {platform.python_version()}; {meta.get('go', 'Go: not run')}; {meta.get('rustc', '')}")
    w(f"* Load average (1/5/15 min) at start {' '.join(meta.get('load_start', []))}, at end {' '.join(meta.get('load_end', []))}"
      " — with more runnable processes than cores every figure below is noisy.")
    w("* Figures are ns per op (per key, or per entry visited for iterate): the median of 5 passes over 1M keys "
      "(Python: pytest-benchmark rounds; Rust and Go: 5 timed passes each). Ratios are gomap/dict, core/Go and "
      "core/hashbrown: below 1 is faster. Nothing asserts a timing; the targets are the issue's.\n")

    # ---- Python vs dict
    py = load("pytest")
    w("## gomap.Map from Python vs dict\n")
    if py:
        g = py["groups"]
        w("| kind | workload | gomap ns/op | dict ns/op | gomap/dict | target | |")
        w("|---|---|---:|---:|---:|---:|---|")
        for kind in ("int64", "string", "object-int", "object-str"):
            for work in ("get", "contains", "set", "delete", "iterate"):
                e = g.get(f"{kind}/{work}")
                if not e or "gomap" not in e or "dict" not in e:
                    continue
                r = e["gomap"]["median_ns"] / e["dict"]["median_ns"]
                t = PY_TARGETS.get((kind, work), 1.5 if kind.startswith("object") else None)
                w(f"| {kind} | {work} | {fmt(e['gomap']['median_ns'])} | {fmt(e['dict']['median_ns'])} | {r:.2f}× | "
                  f"{'≤%.1f×' % t if t else '—'} | {verdict(r, t) if t else ''} |")
        w("")
        w("`get` = `m[k]` for present keys, `contains` = `k in m` for absent keys, `set` = `m[k] = v` into a "
          "fresh map (growth included), `delete` = `del m[k]` of every key, `iterate` = `for k, v in m.items()`. "
          "Kinds: `Map('int64','int64')`, `Map('string','int64')` with 16-char keys, `Map()` with int or str keys.\n")
        w("| batch (1M int64, NumPy) | gomap ns/op | dict loop ns/op | dict/gomap (speed-up) | target | |")
        w("|---|---:|---:|---:|---:|---|")
        for work in ("get_many", "set_many"):
            e = g.get(f"batch/{work}")
            if e:
                s = e["dict"]["median_ns"] / e["gomap"]["median_ns"]
                w(f"| {work} | {fmt(e['gomap']['median_ns'])} | {fmt(e['dict']['median_ns'])} | {s:.1f}× | ≥10× | {verdict(s, 10, le=False)} |")
        w("\nThe dict side: `np.array([d[k] for k in keys.tolist()])` and "
          "`for k, v in zip(keys.tolist(), vals.tolist()): d[k] = v` (a fresh dict), conversions included.\n")
    else:
        w("not run\n")

    # ---- Rust core vs Go and hashbrown
    rs, go = load("rust"), load("go")
    w("## Rust core (`HMap`) vs the Go 1.19 runtime map, hashbrown and std\n")
    if rs or go:
        w("| keys | workload | core | Go | Go aes=off | hashbrown | std | core/Go | target | | core/hashbrown | target | |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
        for kind in ("int64", "string"):
            for work in ("insert", "hit", "miss", "delete", "iterate"):
                c = rs["table"][kind]["core"][work] if rs else None
                hb = rs["table"][kind]["hashbrown"][work] if rs else None
                sd = rs["table"][kind]["std"][work] if rs else None
                gv = go["table"][kind][work] if go else None
                gn = go["table_noaes"][kind][work] if go else None
                rg = c / gv if c and gv else None
                rh = c / hb if c and hb else None
                th = work in ("hit", "miss")
                w(f"| {kind} | {work} | {fmt(c)} | {fmt(gv)} | {fmt(gn)} | {fmt(hb)} | {fmt(sd)} | "
                  f"{fmt(rg, 2)}× | ≤1.0× | {verdict(rg, 1.0)} | {fmt(rh, 2)}× | {'≤1.5×' if th else '—'} | "
                  f"{verdict(rh, 1.5) if th else ''} |")
        w("")
        w("ns/op. Same keys on both sides (splitmix64, same seeds). The core uses Go's portable (non-AES) "
          "hash; the Go runtime uses AES hashing on this CPU unless `GODEBUG=cpu.aes=off`, shown for comparison. "
          "hashbrown uses its default foldhash, std its SipHash-1-3.\n")
    else:
        w("not run\n")

    # ---- memory
    mem = load("memory")
    w("## Memory, int64 → int64\n")
    if mem:
        gm, dm = mem["gomap"], mem["dict"]
        w(f"| state | gomap bytes/entry (`stats()['bytes']`) | gomap RSS Δ/entry | dict bytes/entry (getsizeof + ints) | dict RSS Δ/entry | target (gomap, full) | |")
        w("|---|---:|---:|---:|---:|---:|---|")
        labels = {"full": f"{gm['n']:,} entries", "deleted_90": "90% deleted", "shrunk": "after `m.shrink()` / `dict(d)`"}
        for st in ("full", "deleted_90", "shrunk"):
            t = st == "full"
            bpe = gm[st]["bytes_per_entry"]
            w(f"| {labels[st]} ({gm[st]['count']:,}) | {bpe:.1f} | {gm[st]['rss_per_entry']:.1f} | "
              f"{dm[st]['bytes_per_entry']:.1f} | {dm[st]['rss_per_entry']:.1f} | {'≤24' if t else ''} | {verdict(bpe, 24) if t else ''} |")
        w("\nRSS Δ is measured from a baseline taken before the map is built (per process), so after deletes it "
          "also shows what the allocators kept. dict's figure includes its int objects (pymalloc 16-byte blocks).\n")
    else:
        w("not run\n")

    # ---- tail
    tl = load("tail")
    w(f"## Growth tail latency: worst single insert, empty → {a.tail_n:,} int64 keys\n")
    if tl:
        gm, dm = tl["gomap"], tl["dict"]
        w("| | gomap | dict | gomap/dict | target | |")
        w("|---|---:|---:|---:|---:|---|")
        for key, label, tgt in (("max_ns", "worst insert, wall (perf_counter_ns)", True),
                                ("cpu_max_ns", "worst insert, thread CPU time", True),
                                ("p99_99_ns", "p99.99, wall", False), ("cpu_p99_99_ns", "p99.99, CPU", False),
                                ("p50_ns", "median, wall", False), ("mean_ns", "mean, wall", False)):
            r = gm[key] / dm[key]
            w(f"| {label} | {fmt(gm[key] / 1000, 2)} µs | {fmt(dm[key] / 1000, 2)} µs | {r:.3f} | "
              f"{'≤0.02 (1/50)' if tgt else ''} | {verdict(r, 0.02) if tgt else ''} |")
        w(f"\nSlowest inserts (index, ns) — gomap wall {gm['slowest']}, CPU {gm['cpu_slowest']}; "
          f"dict wall {dm['slowest']}, CPU {dm['cpu_slowest']}. Inserts over 1 ms (wall): gomap {gm['over_1ms']}, "
          f"dict {dm['over_1ms']}. One run each, GC disabled during the loop. Wall-clock maxima on a loaded "
          "machine are scheduler preemptions (the same ~ms for both); thread CPU time excludes those.\n")
    else:
        w("not run\n")

    # ---- sweep / plot
    w("## get-hit against map size\n")
    w(f"![get-hit ns/op against map size]({PLOT_LINK})\n")
    sw = load("sweep")
    series = {}
    if sw:
        series["gomap (Python)"] = sw["get_hit"]["gomap"]
        series["dict (Python)"] = sw["get_hit"]["dict"]
    if go:
        series["Go 1.19 map"] = go["sweep"]["get_hit"]
    if rs:
        series["Rust core"] = rs["sweep"]["get_hit"]["core"]
        series["hashbrown"] = rs["sweep"]["get_hit"]["hashbrown"]
    if series:
        sizes = sorted({int(s) for v in series.values() for s in v})
        w("| size | " + " | ".join(series) + " |")
        w("|---:|" + "---:|" * len(series))
        for s in sizes:
            w(f"| {s:,} | " + " | ".join(fmt(v.get(str(s)), 1) for v in series.values()) + " |")
        w("\nns per lookup, 1M lookups of present keys in random order, median of 3 (Python) or 5 passes.\n")
        plot(series)

    w("## Notes\n")
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        w(open(notes).read().strip() + "\n")
    # The sections after KEEP come from scripts with their own interleaved runs
    # (peers.py, bench_concurrency.py, bench_syncmap.py, core_vs_go.py): kept.
    kept = ""
    if os.path.exists(REPORT):
        with open(REPORT) as f:
            old = f.read()
        if KEEP in old:
            kept = "\n" + old[old.index(KEEP):]
    with open(REPORT, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)
    print(f"wrote {os.path.relpath(REPORT, ROOT)}")


def plot(series):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    style = {"gomap (Python)": "o-", "dict (Python)": "s-", "Go 1.19 map": "^-", "Rust core": "o--", "hashbrown": "x:"}
    for name, v in series.items():
        xs = sorted(int(s) for s in v)
        ax.plot(xs, [v[str(x)] for x in xs], style.get(name, "-"), label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("map size (entries)")
    ax.set_ylabel("ns per get (hit)")
    ax.set_title("get-hit latency against map size, int64 keys")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"wrote {os.path.relpath(PLOT, ROOT)}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes (plumbing check; figures meaningless); results, report and plot go to "
                        "benches/results/quick/ and the tracked BENCHMARKS.md and plot are left alone")
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated subset of " + ",".join(STEPS))
    p.add_argument("--report", action="store_true", help="only rewrite BENCHMARKS.md and the plot from results/")
    p.add_argument("--criterion", action="store_true", help="also run the criterion benches (cargo bench --bench core)")
    a = p.parse_args()
    if a.quick:
        global RES, REPORT, PLOT, PLOT_LINK
        RES = os.path.join(HERE, "results", "quick")
        REPORT = os.path.join(RES, "BENCHMARKS.md")
        PLOT = os.path.join(RES, "get_hit.png")
        PLOT_LINK = "get_hit.png"
        os.makedirs(RES, exist_ok=True)
    a.n = 20_000 if a.quick else 1_000_000
    a.tail_n = 200_000 if a.quick else 10_000_000
    a.sizes = "1000,10000,100000" if a.quick else "1000,10000,100000,1000000,10000000"
    meta = load("meta") or {}
    if not a.report:
        meta = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "load_start": loadavg()}
        try:
            meta["rustc"] = sh(["rustc", "--version"]).strip()
        except Exception:
            pass
        if shutil.which("go"):
            meta["go"] = sh(["go", "version"]).strip()
        steps = {"pytest": step_pytest, "memory": step_memory, "tail": step_tail, "sweep": step_sweep,
                 "rust": step_rust, "go": step_go}
        for s in a.only.split(","):
            print(f"== {s}", flush=True)
            steps[s.strip()](a)
        meta["load_end"] = loadavg()
        save("meta", meta)
    report(a, meta)


if __name__ == "__main__":
    main()
