"""Instruction counts per operation, for A/B comparisons that machine load does not disturb.

    python benches/cg_ops.py [OP ...]        # every op by default

Each op runs under ``valgrind --tool=callgrind --collect-atstart=no`` in a child
process; a tiny C helper (built on first use from valgrind's ``callgrind.h``, called
through ctypes) switches collection on around the ``REPS`` timed passes only, so
the counts exclude setup. Figures are per operation: instructions (Ir) and, with
``--cache-sim``, D1/LL read and write misses. Needs valgrind and a C compiler.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

OPS = {
    # name: (setup, loop body over `ks`, n_ops_per_pass)
    "get_1k": ("m = new_int(1000); ks = fresh(keys[:1000])", "for k in ks: m[k]", 1000),
    "dict_get_1k": ("m = new_dict(1000); ks = fresh(keys[:1000])", "for k in ks: m[k]", 1000),
    "miss_1k": ("m = new_int(1000); ks = miss[:1000]", "for k in ks: k in m", 1000),
    "dict_miss_1k": ("m = new_dict(1000); ks = miss[:1000]", "for k in ks: k in m", 1000),
    "get_100k": ("m = new_int(100000); ks = fresh(shuf[:100000])", "for k in ks: m[k]", 100000),
    "dict_get_100k": ("m = new_dict(100000); ks = fresh(shuf[:100000])", "for k in ks: m[k]", 100000),
    "set_fresh_100k": ("ks = keys[:100000]", "m = gomap.Map('int64', 'int64')\nfor k in ks: m[k] = k", 100000),
    "dict_set_fresh_100k": ("ks = keys[:100000]", "m = {}\nfor k in ks: m[k] = k", 100000),
    "items_100k": ("m = new_int(100000)", "for k, v in m.items(): pass", 100000),
    "dict_items_100k": ("m = new_dict(100000)", "for k, v in m.items(): pass", 100000),
    "keys_100k": ("m = new_int(100000)", "for k in m: pass", 100000),
    "items_obj_100k": ("m = new_obj(100000)", "for k, v in m.items(): pass", 100000),
    "str_get_10k": ("m = new_str(10000); ks = [s.encode().decode() for s in skeys[:10000]]", "for k in ks: m[k]", 10000),
    "dict_str_get_10k": ("m = {s: 1 for s in skeys[:10000]}; ks = [s.encode().decode() for s in skeys[:10000]]", "for k in ks: m[k]", 10000),
    "objstr_get_10k": ("m = new_objstr(10000); ks = [s.encode().decode() for s in skeys[:10000]]", "for k in ks: m[k]", 10000),
    "get_many_1k": ("m = new_int(1000); a = np.array(shuf[:1000], dtype=np.int64)", "for _ in range(100): m.get_many(a)", 100000),
    "contains_miss_100k": ("m = new_int(100000); ks = miss[:100000]", "for k in ks: k in m", 100000),
    "dict_contains_miss_100k": ("m = new_dict(100000); ks = miss[:100000]", "for k in ks: k in m", 100000),
    "get_many_100k": ("m = new_int(100000); a = np.array(shuf[:100000], dtype=np.int64)", "m.get_many(a)", 100000),
    "set_many_presize_100k": ("a = np.array(keys[:100000], dtype=np.int64)", "m = gomap.Map('int64', 'int64'); m.set_many(a, a, presize=True)", 100000),
    "set_many_100k": ("a = np.array(keys[:100000], dtype=np.int64)", "m = gomap.Map('int64', 'int64'); m.set_many(a, a)", 100000),
}

PRELUDE = """
import gomap, numpy as np, random
rng = random.Random(7)
keys = rng.sample(range(-2**62, 2**62, 2), 100000)
shuf = keys[:]; rng.shuffle(shuf)
miss = [k + 1 for k in keys]
skeys = ["%016x" % rng.getrandbits(64) for _ in range(10000)]
def fresh(xs): return [int(str(x)) for x in xs]
def new_int(n):
    m = gomap.Map('int64', 'int64')
    for k in keys[:n]: m[k] = k
    return m
def new_obj(n):
    m = gomap.Map()
    for k in keys[:n]: m[k] = k
    return m
def new_str(n):
    m = gomap.Map('string', 'int64')
    for s in skeys[:n]: m[s] = 1
    return m
def new_objstr(n):
    m = gomap.Map()
    for s in skeys[:n]: m[s] = 1
    return m
def new_dict(n): return {k: k for k in keys[:n]}
"""

REPS = 3
HELPER_C = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void cg_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT("timed"); }
"""


def helper() -> str:
    d = os.path.join(tempfile.gettempdir(), "gomap-cg-helper")
    so = os.path.join(d, "cgtoggle.so")
    if not os.path.exists(so):
        os.makedirs(d, exist_ok=True)
        c = os.path.join(d, "cgtoggle.c")
        with open(c, "w") as f:
            f.write(HELPER_C)
        subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", so, c], check=True)
    return so


def run(op: str, reps: int, cache: bool) -> dict[str, int]:
    setup, body, _ = OPS[op]
    loop = "for _rep in range(%d):\n" % reps + "\n".join("    " + ln for ln in body.split("\n"))
    src = (
        "import ctypes\n_cg = ctypes.CDLL(%r)\n" % helper()
        + PRELUDE
        + setup
        + "\ndef _timed():\n"
        + "\n".join("    " + ln for ln in loop.split("\n"))
        + "\n_cg.cg_start()\n_timed()\n_cg.cg_stop()\n"
    )
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "s.py")
        out = os.path.join(d, "cg.out")
        with open(script, "w") as f:
            f.write(src)
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        if cache:
            cmd.append("--cache-sim=yes")
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(cmd + [sys.executable, script], check=True, capture_output=True, env=env)
        dumps = [os.path.join(d, x) for x in os.listdir(d) if x.startswith("cg.out")]
        text = ""
        for p in dumps:
            with open(p) as f:
                t = f.read()
            if "timed" in t.split("\nevents:")[0]:
                text = t
                if os.environ.get("CG_KEEP"):
                    with open(os.path.join(os.environ["CG_KEEP"], op + ".cg"), "w") as f:
                        f.write(t)
    
    events = re.search(r"^events: (.*)$", text, re.M).group(1).split()
    totals = re.search(r"^totals: (.*)$", text, re.M) or re.search(r"^summary: (.*)$", text, re.M)
    return dict(zip(events, map(int, totals.group(1).split())))


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    cache = "--cache-sim" in sys.argv
    for op in args or list(OPS):
        full = run(op, REPS, cache)
        n = REPS * OPS[op][2]
        per = {e: full[e] / n for e in full}
        extra = ""
        if cache:
            extra = "  D1mr %.2f  DLmr %.2f  D1mw %.2f  DLmw %.2f" % (per["D1mr"], per["DLmr"], per["D1mw"], per["DLmw"])
        print(f"{op:22s} Ir/op {per['Ir']:9.1f}{extra}", flush=True)


if __name__ == "__main__":
    main()
