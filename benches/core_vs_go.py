"""The Rust core (`HMap`) against Go 1.19's runtime map, interleaved.

    python benches/core_vs_go.py [--rounds 7] [--n 1000000]

Builds the two table benchmarks once — `cargo bench --bench core --no-run`
(Rust: gomap's core, hashbrown, std) and `benches/go` (Go 1.19 with
`GODEBUG=cpu.aes=off`, the hash gomap reproduces) — then runs them alternately,
`--rounds` times each, one pass per run (`GOMAP_BENCH_REPS=1`, `-reps 1`), so
both sides see the same machine state over the whole measurement. Prints the
median ns/op of every row (insert, hit, miss, delete, iterate; int64 and
string keys), the core/Go ratio, and the load average before and after.
Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from run_all import last_json  # benches/ is on sys.path when this runs as a script

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("insert", "hit", "miss", "delete", "iterate")
KINDS = ("int64", "string")


def build_rust() -> str:
    out = subprocess.run(
        ["cargo", "bench", "--bench", "core", "--no-run", "--message-format", "json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "core" and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo did not report the core bench executable")


def build_go(dest: Path) -> str:
    subprocess.run(["go", "build", "-o", str(dest), "."], cwd=ROOT / "benches" / "go", check=True)
    return str(dest)


def run_rust(exe: str, n: int) -> dict:
    env = dict(os.environ, GOMAP_BENCH_JSON="table", GOMAP_BENCH_N=str(n), GOMAP_BENCH_REPS="1")
    out = subprocess.run([exe, "--bench"], env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    res = last_json(out)
    return {k: res[k]["core"] for k in KINDS}


def run_go(exe: str, n: int) -> dict:
    env = dict(os.environ, GODEBUG="cpu.aes=off")
    out = subprocess.run(
        [exe, "-mode", "table", "-n", str(n), "-reps", "1"], env=env, check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    res = last_json(out)
    return {k: res[k] for k in KINDS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=1_000_000)
    a = ap.parse_args()
    rust = build_rust()
    go = build_go(ROOT / "target" / "gobench")
    goversion = subprocess.run(["go", "version"], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    load0 = os.getloadavg()
    samples: dict = {side: {k: {r: [] for r in ROWS} for k in KINDS} for side in ("core", "go")}
    for i in range(a.rounds):
        order = (("core", run_rust, rust), ("go", run_go, go))
        for side, run, exe in order if i % 2 == 0 else order[::-1]:
            res = run(exe, a.n)
            for k in KINDS:
                for r in ROWS:
                    samples[side][k][r].append(res[k][r])
        print(f"  round {i + 1}/{a.rounds}", file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    print(f"Rust core vs {goversion} (GODEBUG=cpu.aes=off), {a.n:,} keys, median of {a.rounds} "
          f"alternating runs; load average {load0[0]:.2f} before, {load1[0]:.2f} after, {os.cpu_count()} CPUs\n")
    print("| keys | operation | core ns/op | Go ns/op | core/Go |")
    print("|---|---|---:|---:|---:|")
    for k in KINDS:
        for r in ROWS:
            c = statistics.median(samples["core"][k][r])
            g = statistics.median(samples["go"][k][r])
            print(f"| {k} | {r} | {c:.1f} | {g:.1f} | {c / g:.2f}× |")
    name = re.sub(r"\s+", " ", goversion)
    print(f"\n(core: {Path(rust).name}; Go: {name})")


if __name__ == "__main__":
    main()
