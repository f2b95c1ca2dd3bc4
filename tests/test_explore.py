"""The growth explorer (gomap.explore, python -m gomap explore): its data against
Go's rules and a dict model, its picture, its command line, and its --go overlay
against the real Go runtime."""

import os
import shutil
import sys

import pytest

import gomap
from gomap import explore
from gomap.__main__ import main

IN_CI = os.environ.get("CI", "").lower() == "true"


def need_matplotlib():
    if IN_CI:
        import matplotlib  # noqa: F401 -- in CI the [test] extra has it: a missing one fails
    else:
        pytest.importorskip("matplotlib")


def need_go():
    from gomap import crosscheck as cc

    try:
        cc.find_go()
    except cc.GoNotFound:
        if IN_CI:
            pytest.fail("CI=true but Go is not installed: the --go overlay must be tested in CI")
        pytest.skip("go not installed")


# n = 6.5 * 2**5: churn at full load makes a same-size grow within a few thousand rounds
SMALL = 208


HK = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x2545F4914F6CDD1D)


@pytest.fixture(scope="module")
def churn():
    # a fixed hashkey and hash0: the same run every time
    return explore.run("churn", "int64", SMALL, seed=3, hashkey=HK, rand=[12345], progress=False)


def test_a_fixed_hashkey_makes_runs_reproducible(churn):
    again = explore.run("churn", "int64", SMALL, seed=3, hashkey=HK, rand=[12345], progress=False)
    assert again.series == churn.series and again.events == churn.events


def test_workload_ops_shapes():
    ins = list(explore.workload_ops("inserts", "string", 50))
    assert [op for op, _ in ins] == ["set"] * 50 and len({k for _, k in ins}) == 50
    dels = list(explore.workload_ops("deletes", "float64", 40, seed=1))
    assert sorted(k for op, k in dels if op == "delete") == sorted(k for op, k in dels if op == "set")
    ch = list(explore.workload_ops("churn", "int32", 30, churn=100, seed=2))
    assert len(ch) == 30 + 200 and [op for op, _ in ch[30:32]] == ["delete", "set"]
    assert ch == list(explore.workload_ops("churn", "int32", 30, churn=100, seed=2))  # deterministic
    with pytest.raises(ValueError):
        list(explore.workload_ops("nope"))
    with pytest.raises(ValueError):
        list(explore.workload_ops("inserts", "int8"))


def model_counts(ops):
    d, out = {}, []
    for op, k in ops:
        if op == "set":
            d[k] = True
        else:
            d.pop(k, None)
        out.append(len(d))
    return out


@pytest.mark.parametrize("key", ["int64", "string", "float32"])
@pytest.mark.parametrize("hint", [0, 100])
def test_doublings_happen_where_go_says(key, hint):
    tl = explore.run("inserts", key, 3000, hint, progress=False, moments=[])
    B, count = tl.series["B"], tl.series["count"]
    assert count == model_counts(tl.ops) == list(range(1, 3001))
    b0 = gomap.Map(key, "int64", hint).stats()["B"]
    before = [b0] + B[:-1]
    changes = [i for i in range(len(B)) if B[i] != before[i]]
    # Go's overLoadFactor: a new key doubles the buckets when count+1 > 8 and > 6.5 * 2**B
    expected = [i for i in range(len(B)) if count[i] > 8 and count[i] > 6.5 * 2 ** before[i]]
    assert changes == expected and changes
    assert all(B[i] == before[i] + 1 for i in changes)
    assert B[-1] == max(b0, 9)  # 3000 entries need 2**9 buckets
    starts = [s for s, w in tl.events if w.startswith(("doubling starts", "doubling to"))]
    assert starts == changes
    assert not any(tl.series["same_size"])


def test_churn_records_a_same_size_grow(churn):
    sr = churn.series
    assert sr["count"] == model_counts(churn.ops)
    starts = [s for s, w in churn.events if w.startswith("same-size grow starts")]
    assert starts, churn.summary()
    s = starts[0]
    assert sr["same_size"][s] and sr["growing"][s] and not sr["growing"][s - 1]
    assert sr["B"][s] == sr["B"][s - 1] == 5  # same size: B stays
    assert sr["noverflow"][s - 1] >= 2 ** 5  # Go's tooManyOverflowBuckets
    done = [i for i, w in churn.events if w == "same-size grow done"]
    assert done and done[0] > s and sr["overflow_buckets"][done[0]] < sr["noverflow"][s - 1]
    # and doublings while filling up: B went 0 -> 5
    assert sum(1 for _, w in churn.events if w.startswith(("doubling starts", "doubling to"))) == 5


def test_moments_hold_every_entry_once(churn):
    labels = [o.label for o in churn.moments]
    assert "same-size grow starts" in labels and "end" in labels and any("half evacuated" in x for x in labels)
    for o in churn.moments:
        new, old = o.counts(), o.counts(old=True)
        # live slots in the new array plus not yet evacuated old buckets = count
        assert new["live"] + old["live"] == churn.series["count"][o.step], o.label
        assert len(o.buckets) == 2 ** o.B
        assert all(len(c) % 8 == 0 for c in o.buckets)
        assert sum(sum(r.values()) for r in o.per_bucket()) == sum(len(c) for c in o.buckets)
    grow = next(o for o in churn.moments if o.label == "same-size grow, half evacuated")
    assert grow.oldbuckets and grow.counts(old=True)["evacuated"] > 0


def test_explicit_moments():
    tl = explore.run("deletes", "int64", 100, moments=[0, 99, 150, 5000], progress=False)
    assert [o.step for o in tl.moments] == [0, 99, 150]
    assert tl.moments[1].counts()["live"] == 100
    assert tl.series["count"][-1] == 0 and len(tl) == 200
    assert "5000" in tl.note


def test_table_and_summary(churn):
    table = churn.table(rows=10)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["step", "op", "count", "B"]
    assert any("same-size grow starts" in x for x in lines)
    assert len(lines) <= 1 + 10 + len(churn.events) + 1  # header, spaced rows, events, the last
    assert "1 same-size grow(s)" in churn.summary()


@pytest.mark.parametrize("ext,magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg")])
def test_picture_is_written(churn, tmp_path, ext, magic):
    need_matplotlib()
    out = tmp_path / f"g{ext}"
    assert churn.plot(str(out)) == str(out)
    data = out.read_bytes()
    if ext == ".png":
        assert data.startswith(magic) and len(data) > 10_000
    else:
        import xml.etree.ElementTree as ET

        assert ET.fromstring(data).tag.endswith("svg")


def test_cli_table_only(capsys):
    assert main(["explore", "--workload", "inserts", "--n", "200", "--no-plot", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "doubling starts: B 4 -> 5" in out and "200 operations" in out


def test_cli_writes_the_picture(tmp_path, capsys):
    need_matplotlib()
    out = tmp_path / "x.svg"
    assert main(["explore", "--n", str(SMALL), "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    assert out.exists() and f"picture: {out}" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--n", "abc"], ["--n", "-1"], ["--moments", "x"], ["--workload", "zz"],
                                 ["--key", "int8"]])
def test_cli_refuses_bad_arguments(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["explore", "--no-plot", *bad])
    assert e.value.code == 2


@pytest.mark.parametrize("out", ["/nonexistent-dir/x.png", "x.unknownformat"])
def test_cli_unwritable_picture_is_a_clear_error(out, tmp_path, monkeypatch, capsys):
    need_matplotlib()
    monkeypatch.chdir(tmp_path)
    assert main(["explore", "--workload", "inserts", "--n", "50", "--no-progress", "--out", out]) == 2
    assert "cannot write the picture" in capsys.readouterr().err


def test_cli_without_matplotlib_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["explore", "--n", "20", "--workload", "inserts", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'gomap[explore]'" in err and "--no-plot" in err


def test_progress_lines_are_plain_and_periodic(monkeypatch, capsys):
    clock = iter(range(0, 10_000, 3))
    monkeypatch.setattr(explore.time, "monotonic", lambda: next(clock))
    tick = explore._progress_printer(None)
    for step in (512, 1024, 1536):
        tick(step, False)
    tick(2000, True)
    err = capsys.readouterr().err.splitlines()
    assert err[:3] == [f"explore: {s} operations, {t}s" for s, t in ((512, 3), (1024, 6), (1536, 9))]
    assert err[3].startswith("explore: 2000 operations in")
    assert all("\r" not in x and "\x1b" not in x for x in err)


# ---- --go: the same workload on the Go runtime -----------------------------------------


@pytest.mark.parametrize("workload,key,n", [("churn", "int64", SMALL), ("deletes", "string", 300),
                                            ("inserts", "float64", 1000)])
def test_go_overlay_agrees_with_go(workload, key, n):
    need_go()
    tl = explore.run(workload, key, n, seed=5, go=True, progress=False)
    assert tl.go_agrees, tl.go_mismatches[:5]
    for name in explore.GO_SERIES:
        assert tl.go[name] == tl.series[name], name
    assert tl.go_moments and [o.step for o in tl.go_moments] == [o.step for o in tl.moments]
    assert "agrees" in tl.summary()
    if workload == "churn":
        assert any(tl.go["same_size"])


def test_go_overlay_reports_a_difference(monkeypatch):
    # the comparison can fail: doctor Go's output at one step
    need_go()
    from gomap import crosscheck as cc

    real = cc.run_harness

    def doctored(traces, **kw):
        outs = real(traces, **kw)
        outs[0]["steps"][50]["h"][0] += 1  # Go's count after operation 50
        return outs

    monkeypatch.setattr(cc, "run_harness", doctored)
    tl = explore.run("inserts", "int64", 100, go=True, progress=False)
    assert tl.go_agrees is False and tl.go_mismatches[0].startswith("step 50: count")
    assert "DISAGREES" in tl.summary()


def test_cli_go_without_go(monkeypatch, capsys):
    monkeypatch.setenv("GOMAP_GO", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["explore", "--go", "--no-plot", "--n", "10"]) == 2
    assert "Go not found" in capsys.readouterr().err
