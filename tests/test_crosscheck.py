"""Cross-check gomap.Map against the real Go runtime (needs `go`), and unit tests
of the trace generator and the Go harness.

Without Go on PATH the Go-dependent tests are skipped -- unless the environment
variable CI is set: CI must have Go, so there they fail.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter

import pytest

from gomap import crosscheck as cc
from gomap.__main__ import main as cli_main

SEED = 20240611
PER_KIND = 30


def _require_go() -> str:
    try:
        return cc.find_go()
    except cc.GoNotFound:
        if os.environ.get("CI"):
            pytest.fail("CI is set but the Go toolchain is missing: CI must install Go "
                        "(apt-get install -y golang-go) to run the Go cross-check")
        pytest.skip("Go toolchain not found on PATH (install: apt-get install -y golang-go); "
                    "Go cross-check skipped")


@pytest.fixture(scope="module")
def harness() -> str:
    _require_go()
    return str(cc.build_harness())


# ---------------------------------------------------------------------------
# Trace generator
# ---------------------------------------------------------------------------


def test_traces_are_deterministic():
    a = cc.generate_traces(14, seed=7, n_ops=150)
    b = cc.generate_traces(14, seed=7, n_ops=150)
    c = cc.generate_traces(14, seed=8, n_ops=150)
    assert [(t.kind, t.hint, [cc.key_identity(t.kind, o[1]) for o in t.ops], [o[2] for o in t.ops]) for t in a] == \
           [(t.kind, t.hint, [cc.key_identity(t.kind, o[1]) for o in t.ops], [o[2] for o in t.ops]) for t in b]
    assert [t.ops for t in a] != [t.ops for t in c]
    # a trace is reproducible on its own (--only)
    only = cc.generate_traces(14, seed=7, n_ops=150, only=[5])
    assert len(only) == 1 and only[0].id == 5 and only[0].ops == a[5].ops


def test_traces_spread_over_kinds():
    trs = cc.generate_traces(7 * 3, seed=1, n_ops=20)
    assert Counter(t.kind for t in trs) == {k: 3 for k in cc.KEY_KINDS}
    assert [t.id for t in trs] == list(range(21))


@pytest.mark.parametrize("kind", cc.KEY_KINDS)
def test_generated_keys_are_valid(kind):
    trs = [cc.generate_trace(kind, seed=s, n_ops=200) for s in range(PER_KIND)]
    keys = [o[1] for t in trs for o in t.ops if o[0] in (cc.SET, cc.DELETE, cc.LOOKUP)]
    assert keys
    if kind in cc._INT_RANGES:
        lo, hi = cc._INT_RANGES[kind]
        assert all(type(k) is int and lo <= k <= hi for k in keys)
        assert len(set(keys)) > 100
    elif kind.startswith("float"):
        assert all(type(k) is float and not math.isnan(k) for k in keys)
        if kind == "float32":
            assert all(cc.to_f32(k) == k or math.isinf(k) for k in keys)
        signs = {math.copysign(1.0, k) for k in keys if k == 0.0}
        assert signs == {1.0, -1.0}, "both +0.0 and -0.0 must occur"
        assert any(math.isinf(k) for k in keys)
    else:
        assert all(type(k) is str for k in keys)
        lens = {len(k.encode("utf-8")) for k in keys}
        # every branch of memhashFallback: 0, 1-3, 4, 5-7, 8, 9-16, 17-48, > 48 bytes
        for lo, hi in [(0, 0), (1, 3), (4, 4), (5, 7), (8, 8), (9, 16), (17, 48), (49, 10**9)]:
            assert any(lo <= n <= hi for n in lens), (lo, hi)
        assert any(any(ord(c) > 127 for c in k) for k in keys)
        assert any(('"' in k or "\\" in k or "\x00" in k) for k in keys)


def test_generated_op_mix():
    trs = cc.generate_traces(70, seed=3, n_ops=300)
    codes = Counter(o[0] for t in trs for o in t.ops)
    assert set(codes) == {cc.SET, cc.DELETE, cc.LOOKUP, cc.CLEAR, cc.ITER_NEW, cc.ITER_NEXT}
    assert any(t.hint > 0 for t in trs) and any(t.hint == 0 for t in trs)
    for t in trs:
        live: dict = {}
        iters: set = set()
        dead_iters: set = set()  # open across clear() of a non-empty map
        max_live = 0
        deletes_to_empty = 0
        for code, k, arg in t.ops:
            if code == cc.SET:
                live[k] = arg
            elif code == cc.DELETE:
                if k in live:
                    del live[k]
                    deletes_to_empty += not live
            elif code == cc.CLEAR:
                if live:
                    dead_iters |= iters
                live.clear()
            elif code == cc.ITER_NEW:
                assert arg not in iters and arg not in dead_iters
                iters.add(arg)
            elif code == cc.ITER_NEXT:
                assert arg in iters, "iter_next on an iterator never opened"
                assert arg not in dead_iters, "iterator advanced after clear()"
            max_live = max(max_live, len(live))
        # B < 16: the incrnoverflow draws at B >= 16 cannot be observed
        assert max_live < 6.5 * 2**15
    assert max(len(t.ops) for t in trs) > 1000  # some traces grow far


def test_wire_format_keeps_float_bits():
    t = cc.Trace(id=1, kind="float64", seed=0, hint=0,
                 ops=[(cc.SET, -0.0, 1), (cc.SET, 0.0, 2), (cc.LOOKUP, math.inf, 0), (cc.ITER_NEW, None, 0)])
    w = t.to_wire()
    assert w["ops"][0] == [cc.SET, 1 << 63, 1]
    assert w["ops"][1] == [cc.SET, 0, 2]
    assert w["ops"][2] == [cc.LOOKUP, struct.unpack("<Q", struct.pack("<d", math.inf))[0], 0]
    assert w["ops"][3] == [cc.ITER_NEW, None, 0]
    back = cc.trace_from_wire(w)
    assert [(o[0], cc.key_identity("float64", o[1]), o[2]) for o in back.ops] == \
           [(o[0], cc.key_identity("float64", o[1]), o[2]) for o in t.ops]
    t32 = cc.Trace(id=2, kind="float32", seed=0, hint=0, ops=[(cc.SET, -0.0, 1)])
    assert t32.to_wire()["ops"][0] == [cc.SET, 1 << 31, 1]
    assert math.copysign(1, cc.key_from_wire("float32", 1 << 31)) == -1


def test_diff_snapshots_is_precise():
    b = {"tophash": [9, 0, 0, 0, 0, 0, 0, 0], "keys": [1] + [None] * 7, "values": [5] + [None] * 7}
    exp = {"count": 1, "B": 0, "flags": 0, "noverflow": 0, "hash0": 7, "nevacuate": 0,
           "growing": False, "buckets": [[b]], "oldbuckets": None}
    got = {**exp, "hash0": 8, "buckets": [[{**b, "values": [6] + [None] * 7}]]}
    d = cc.diff_snapshots(exp, got, "int64")
    assert "hash0: expected 7, got 8" in d
    assert "buckets[0][0].values[0]: expected 5, got 6" in d
    assert cc.diff_snapshots(exp, exp, "int64") == []


def test_cli_without_go(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GOMAP_GO", raising=False)
    assert cli_main(["crosscheck", "--traces", "1", "--no-progress"]) == 2
    assert "apt-get install -y golang-go" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The Go harness itself
# ---------------------------------------------------------------------------

_M = (1 << 64) - 1
_m1, _m2, _m3, _m4, _m5 = (0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3,
                           0x589965CC75374CC3, 0x1D8E4E27C47D124F)


def _mix(a, b):
    p = a * b
    return ((p >> 64) ^ p) & _M


def _memhash(data: bytes, seed: int, key0: int) -> int:
    """Go's memhashFallback (runtime/hash64.go), for checking the harness."""
    r4 = lambda i: int.from_bytes(data[i:i + 4], "little")  # noqa: E731
    r8 = lambda i: int.from_bytes(data[i:i + 8], "little")  # noqa: E731
    s = len(data)
    seed ^= key0 ^ _m1
    if s == 0:
        return seed
    if s < 4:
        a = data[0] | data[s >> 1] << 8 | data[s - 1] << 16
        b = 0
    elif s == 4:
        a = b = r4(0)
    elif s < 8:
        a, b = r4(0), r4(s - 4)
    elif s == 8:
        a = b = r8(0)
    elif s <= 16:
        a, b = r8(0), r8(s - 8)
    else:
        p, l = 0, s
        if l > 48:
            seed1 = seed2 = seed
            while l > 48:
                seed = _mix(r8(p) ^ _m2, r8(p + 8) ^ seed)
                seed1 = _mix(r8(p + 16) ^ _m3, r8(p + 24) ^ seed1)
                seed2 = _mix(r8(p + 32) ^ _m4, r8(p + 40) ^ seed2)
                p += 48
                l -= 48
            seed ^= seed1 ^ seed2
        while l > 16:
            seed = _mix(r8(p) ^ _m2, r8(p + 8) ^ seed)
            p += 16
            l -= 16
        a, b = r8(p + l - 16), r8(p + l - 8)
    return _mix(_m5 ^ s, _mix(a ^ _m2, b ^ seed))


def _go_hash(kind: str, key, seed: int, key0: int) -> int:
    if kind in ("int64", "uint64"):
        a = key & _M
        return _mix(_m5 ^ 8, _mix(a ^ _m2, a ^ seed ^ key0 ^ _m1))
    if kind in ("int32", "uint32"):
        a = key & 0xFFFFFFFF
        return _mix(_m5 ^ 4, _mix(a ^ _m2, a ^ seed ^ key0 ^ _m1))
    return _memhash(key.encode("utf-8"), seed, key0)


@pytest.mark.parametrize("kind", ["int64", "int32", "uint64", "uint32", "string"])
def test_harness_uses_portable_hash(harness, kind):
    """With GODEBUG=cpu.aes=off the harness's tophash bytes and bucket indexes are
    memhash*Fallback keyed by the reported hashkey and hash0."""
    trs = [cc.generate_trace(kind, seed=s, n_ops=150, trace_id=s) for s in range(3)]
    outs = cc.run_harness(trs, harness)
    checked = 0
    for t, o in zip(trs, outs):
        key0 = o["hashkey"][0]
        assert all(k % 2 == 1 for k in o["hashkey"])
        e = cc._Expected(kind)
        for n, step in enumerate([o["init"]] + o["steps"]):
            e.apply(step)
            h = step["h"]
            if h[6] or not e.snap["buckets"] or n % 7:
                continue
            b, hash0 = h[1], h[4]
            for idx, chain in enumerate(e.snap["buckets"]):
                for bucket in chain:
                    for th, k in zip(bucket["tophash"], bucket["keys"]):
                        if th < 5:
                            continue
                        hv = _go_hash(kind, k, hash0, key0)
                        top = hv >> 56
                        assert th == (top + 5 if top < 5 else top)
                        assert hv & ((1 << b) - 1) == idx
                        checked += 1
    assert checked > 100


def test_harness_delta_encoding(harness):
    """The per-step deltas rebuild exactly the full arrays (printed alongside in verify mode)."""
    trs = cc.generate_traces(14, seed=11, n_ops=150)
    outs = cc.run_harness(trs, harness, verify=True)
    for t, o in zip(trs, outs):
        e = cc._Expected(t.kind)
        for step in [o["init"]] + o["steps"]:
            e.apply(step)
            f = cc._Expected(t.kind)
            f.apply({"h": step["h"], "bk": step["fk"], "ok": step["fo"]})
            assert repr(e.snap) == repr(f.snap)


def test_harness_draws_and_flags(harness):
    t = cc.Trace(id=0, kind="int64", seed=0, hint=0, ops=(
        [(cc.SET, i, i) for i in range(20)]
        + [(cc.ITER_NEW, None, 0), (cc.ITER_NEXT, None, 0)]
        + [(cc.DELETE, i, None) for i in range(20)]  # delete to empty: a new hash0
        + [(cc.DELETE, 5, None), (cc.CLEAR, None, None)]  # on an empty map: no draws
        + [(cc.SET, 1, 1), (cc.CLEAR, None, None)]  # clear of a non-empty map: a draw
        + [(cc.ITER_NEW, None, 1)]  # empty map: no draw, exhausted at once
    ))
    (o,) = cc.run_harness([t], harness)
    steps = o["steps"]
    assert len(o["draws"]) == 4
    assert o["init"]["d"] == 1 and o["init"]["h"][4] == o["draws"][0]
    assert steps[20]["d"] == 1 and steps[20]["h"][2] & 3 == 3  # iterator | oldIterator
    r, b = o["draws"][1], steps[20]["h"][1]
    assert r < 8 << b
    assert steps[41]["d"] == 1 and steps[41]["h"][4] == o["draws"][2] and steps[41]["n"] == 0
    assert "d" not in steps[42] and "d" not in steps[43]
    assert steps[45]["d"] == 1 and steps[45]["h"][4] == o["draws"][3]
    assert steps[45]["h"][1] == steps[44]["h"][1]  # clear keeps B
    assert "d" not in steps[46] and steps[46]["r"] is None


# ---------------------------------------------------------------------------
# The cross-check: gomap.Map against Go, bit for bit
# ---------------------------------------------------------------------------


def test_crosscheck_against_go(harness):
    report = cc.run_crosscheck(traces=PER_KIND * len(cc.KEY_KINDS), seed=SEED, n_ops=300, progress=False)
    assert report.ok, report.format(verbose=False)
    assert report.per_kind() == {k: (PER_KIND, PER_KIND) for k in cc.KEY_KINDS}
    cov = report.coverage()
    # the traces must reach the interesting states of the Go map
    assert cov["max_B"] >= 6
    assert cov.get("growing_steps", 0) > 100
    assert cov.get("evacuated_seen", 0) > 10
    assert cov.get("same_size_steps", 0) > 0, "no same-size grow reached"
    assert cov.get("iter_steps_growing", 0) > 20
    assert cov.get("draws_delete", 0) > 10 and cov.get("draws_clear", 0) > 3 and cov.get("draws_iter", 0) > 50


class _SkippingMap:
    """A broken gomap.Map: silently drops every 40th assignment."""

    def __init__(self, *a, **kw):
        import gomap

        self._m = gomap.Map(*a, **kw)
        self._n = 0

    def __setitem__(self, k, v):
        self._n += 1
        if self._n % 40:
            self._m[k] = v

    def __getattr__(self, name):
        return getattr(self._m, name)

    def __len__(self):
        return len(self._m)

    def __contains__(self, k):
        return k in self._m

    def __getitem__(self, k):
        return self._m[k]


def test_mismatch_is_reported_and_saved(harness, tmp_path):
    import types

    import gomap

    broken = types.SimpleNamespace(Map=_SkippingMap)
    report = cc.run_crosscheck(traces=3, seed=2, kinds=["int64"], n_ops=200, progress=False,
                               gomap_mod=broken, save_dir=str(tmp_path))
    assert not report.ok
    mm = report.mismatches[0].mismatch
    assert mm is not None and mm.step >= 39 and mm.op.startswith("set ")
    text = report.format()
    assert "0/3 traces bit-exact" in text or "/3 traces bit-exact" in text
    assert f"step {mm.step}" in text and "--only" in text
    saved = sorted(tmp_path.glob("trace-*.json"))
    assert saved
    assert not cc.replay_saved(str(saved[0]), broken).ok
    assert cc.replay_saved(str(saved[0]), gomap).ok  # the real map matches Go's saved output


def test_crosscheck_bytes_keys_against_go(harness):
    """Extra kind: gomap's bytes keys against Go string keys (same hash, any bytes)."""
    report = cc.run_crosscheck(traces=14, seed=SEED, kinds=["bytes"], n_ops=250, progress=False)
    assert report.ok, report.format()


def test_generated_bytes_keys():
    trs = [cc.generate_trace("bytes", seed=s, n_ops=200) for s in range(10)]
    keys = [o[1] for t in trs for o in t.ops if o[0] in (cc.SET, cc.DELETE, cc.LOOKUP)]
    assert all(type(k) is bytes for k in keys)
    assert any(len(k) > 48 for k in keys) and any(len(k) == 0 for k in keys)

    def utf8(k):
        try:
            k.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    assert not all(utf8(k) for k in keys)
    assert all(cc.key_from_wire("bytes", cc.key_to_wire("bytes", k)) == k for k in keys[:200])


def test_cli_crosscheck(harness, capsys):
    assert cli_main(["crosscheck", "--traces", "7", "--seed", "5", "--ops", "120", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for kind in cc.KEY_KINDS:
        assert f"{kind}" in out and "1/1 traces bit-exact" in out
