"""Adversarial: `==` behaves as dict's (issue 9, class 5), and lone surrogates are
simply absent from a string map on reads (class 6). Each case is checked side by
side against `dict`.
"""

from __future__ import annotations

import pytest


def both(gomap, items, key="object", value="object"):
    m = gomap.Map(key, value)
    d = {}
    for k, v in items:
        m[k] = v
        d[k] = v
    return m, d


def test_nan_value_identity_shortcut(gomap):
    nan = float("nan")
    m, d = both(gomap, [(1, nan)])
    assert (m == m) is (d == d) is True
    assert (m != m) is (d != d) is False
    assert m == {1: nan} and {1: nan} == m
    assert (m == {1: float("nan")}) is (d == {1: float("nan")}) is False
    m2, _ = both(gomap, [(1, nan)])
    assert m == m2 and not (m != m2)


def test_object_keys_of_builtin_types_match_by_value_as_in_dict(gomap):
    # Exact str/int/float keys compare without Python's `==` (a fast path);
    # equal-valued probes that are different objects, mixed types and subclasses
    # must still find exactly what dict finds.
    class Str(str):
        pass

    nan = float("nan")
    stored = ["ab" * 10, "é" * 5 + "\U0001f600", 2**70, -(2**63), 2**63, -5, 1.5, nan, 1, "x"]
    m, d = both(gomap, [(k, i) for i, k in enumerate(stored)])
    probes = [
        "".join(["ab"] * 10), "".join(["é"] * 5) + "\U0001f600", int(str(2**70)), int(str(-(2**63))),
        int(str(2**63)), int("-5"), float("1.5"), nan, float("nan"), 1.0, True, Str("x"), "ab" * 9 + "ac",
        2**70 + 1, 1.5000001, 0, "",
    ]
    for p in probes:
        assert m.get(p, "absent") == d.get(p, "absent"), p
        assert (p in m) is (p in d), p


def test_typed_float_values_compare_by_value(gomap):
    # A float64 map stores numbers, not objects: NaN == NaN is False there, except
    # for the map compared with itself.
    m = gomap.Map("int64", "float64")
    m[1] = float("nan")
    assert m == m
    assert m != {1: float("nan")}


def test_map_containing_itself(gomap):
    m = gomap.Map("int64", "object")
    m[0] = m
    d = {}
    d[0] = d
    assert (m == m) is (d == d) is True
    assert not (m != m)


def test_two_maps_each_containing_itself_recurse_as_dicts_do(gomap):
    d1, d2 = {}, {}
    d1[0], d2[0] = d1, d2
    with pytest.raises(RecursionError):
        d1 == d2
    m1, m2 = gomap.Map("int64", "object"), gomap.Map("int64", "object")
    m1[0], m2[0] = m1, m2
    with pytest.raises(RecursionError):
        m1 == m2
    # and the interpreter is fine afterwards
    assert m1 == m1 and m1 != {}


def test_items_view_contains_uses_identity(gomap):
    nan = float("nan")
    m, d = both(gomap, [(1, nan)])
    assert ((1, nan) in m.items()) is ((1, nan) in d.items()) is True
    assert ((1, float("nan")) in m.items()) is ((1, float("nan")) in d.items()) is False


def test_eq_whose_value_eq_raises(gomap):
    class Bad:
        def __eq__(self, other):
            raise ZeroDivisionError

    b = Bad()
    m, d = both(gomap, [(1, b)])
    assert m == {1: b}  # identity: __eq__ not called, as dict
    with pytest.raises(ZeroDivisionError):
        m == {1: Bad()}
    with pytest.raises(ZeroDivisionError):
        d == {1: Bad()}


# ---------------------------------------------------------------------------
# lone surrogates
# ---------------------------------------------------------------------------

SURROGATES = ["\ud800", "a\udfffb", "\udc80" * 3]


@pytest.mark.parametrize("s", SURROGATES)
@pytest.mark.parametrize("value", ["int64", "float64", "object"])
def test_surrogate_reads_answer_absent(gomap, s, value):
    m = gomap.Map("string", value)
    m["x"] = 1
    before = m.snapshot()
    assert s not in m
    assert m.get(s) is None and m.get(s, 7) == 7
    with pytest.raises(KeyError):
        m[s]
    assert m.pop(s, 5) == 5
    with pytest.raises(KeyError):
        m.pop(s)
    m.delete(s)  # Go's delete of a missing key: no error
    with pytest.raises(KeyError):
        del m[s]
    assert s not in m.keys()
    assert (s, 1) not in m.items()
    assert m.snapshot() == before


@pytest.mark.parametrize("s", SURROGATES)
def test_surrogate_writes_raise_and_change_nothing(gomap, s):
    m = gomap.Map("string", "int64")
    m["x"] = 1
    before = m.snapshot()
    with pytest.raises(UnicodeEncodeError):
        m[s] = 1
    with pytest.raises(UnicodeEncodeError):
        m.setdefault(s, 1)
    with pytest.raises(UnicodeEncodeError):
        m.update({s: 1})
    with pytest.raises(UnicodeEncodeError):
        m.set_many(["y", s], [1, 2])
    assert m.snapshot() == before


def test_wrong_kinds_are_still_type_errors_on_writes_and_absent_on_membership(gomap):
    m = gomap.Map("string", "int64")
    assert b"x" not in m and 1 not in m and m.get(b"x") is None
    with pytest.raises(TypeError):
        m[b"x"] = 1
    b = gomap.Map("bytes", "int64")
    assert "x" not in b and b.get("x") is None
    with pytest.raises(TypeError):
        b["x"] = 1


def test_surrogate_batch_reads_answer_absent(gomap):
    pytest.importorskip("numpy")
    m = gomap.Map("string", "int64")
    m["x"] = 1
    m["y"] = 2
    before = m.snapshot()
    assert m.contains_many(["x", "\ud800", "y"]).tolist() == [True, False, True]
    assert m.get_many(["x", "\ud800"], default=-1).tolist() == [1, -1]
    with pytest.raises(KeyError) as e:
        m.get_many(["x", "a\udfff"])
    assert e.value.args == ("a\udfff",)
    assert m.snapshot() == before
    assert m.delete_many(["\ud800", "x"]).tolist() == [False, True]
    assert dict(m.items()) == {"y": 2}
    with pytest.raises(UnicodeEncodeError):
        m.set_many(["z", "\ud800"], [1, 2])
    assert dict(m.items()) == {"y": 2}
