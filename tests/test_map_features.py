"""The dict and Go conveniences of Map, side by side with dict: kind aliases, `|`,
`|=`, fromkeys, items=/collect (Go's maps.Collect), delete_if/retain (Go's
maps.DeleteFunc), to_dict; docstrings on every public method."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gomap
from gomap import Map

HK = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x2545F4914F6CDD1D)


def draws(seed):
    """A deterministic, unending source of Go fastrand() values."""
    x = seed

    def next_draw():
        nonlocal x
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        return x >> 11

    return next_draw


def counting_source():
    calls = []

    def draw():
        calls.append(1)
        return 12345

    return draw, calls


# ---- kind aliases -------------------------------------------------------------------

KEY_ALIASES = {"int": "int64", "float": "float64", "str": "string", "bytes": "bytes", "object": "object"}
KEY_TYPES = {int: "int64", float: "float64", str: "string", bytes: "bytes", object: "object"}


@pytest.mark.parametrize("alias,canonical", sorted(KEY_ALIASES.items()))
def test_key_alias_strings(alias, canonical):
    assert Map(alias).key_kind == canonical
    assert Map(key=alias).key_kind == canonical


@pytest.mark.parametrize("typ,canonical", [(t, c) for t, c in KEY_TYPES.items()])
def test_key_alias_types(typ, canonical):
    assert Map(typ).key_kind == canonical


@pytest.mark.parametrize("alias,canonical", [("int", "int64"), ("float", "float64"), ("object", "object")])
def test_value_alias_strings(alias, canonical):
    assert Map("int64", alias).value_kind == canonical
    assert Map("int64", value=alias).value_kind == canonical


def test_alias_maps_behave_as_their_canonical_kind():
    m = Map("int", "float")
    m[1] = 2.5
    with pytest.raises(TypeError):
        m["x"] = 1.0
    with pytest.raises(OverflowError):
        m[2**63] = 1.0
    assert m.snapshot() == Map("int64", "float64", hashkey=m.hashkey, rand=[m.snapshot()["hash0"]],
                               items={1: 2.5}).snapshot()


@pytest.mark.parametrize("bad", ["integer", "Int", "string64", "", "uint8"])
def test_unknown_key_kind_lists_names_and_types(bad):
    with pytest.raises(ValueError) as e:
        Map(bad)
    msg = str(e.value)
    assert repr(bad).strip("'") in msg
    for name in ["int64", "int32", "uint64", "uint32", "float64", "float32", "string", "bytes", "object"]:
        assert name in msg
    assert "aliases int, float, str, bytes, object" in msg
    assert "Python types" in msg


@pytest.mark.parametrize("bad", ["str", "string", "bytes", "int32", "nope", str, bytes, list])
def test_unknown_value_kind_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError) as e:
        Map("int64", bad)
    msg = str(e.value)
    assert "value kind" in msg and "int64, float64, object" in msg and "Python types" in msg


def test_kind_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match="key kind must be a str or a type"):
        Map(3)


# ---- | and |= -------------------------------------------------------------------------


def grown_map(n=200, seed=1, key="int64", value="int64"):
    m = Map(key, value, hashkey=HK, rand=draws(seed))
    for i in range(n):
        m[i * 7] = i
    return m


def test_or_matches_dict_and_keeps_kinds_and_hashkey():
    m = grown_map(100)
    other = {5: -1, 7: -7, 10_000: 1}
    r = m | other
    assert type(r) is Map
    assert (r.key_kind, r.value_kind, r.hashkey) == (m.key_kind, m.value_kind, m.hashkey)
    assert r.to_dict() == m.to_dict() | other
    assert m.to_dict() == grown_map(100).to_dict()  # the left side is unchanged


def test_or_starts_from_a_structural_copy():
    m = grown_map(100)
    assert (m | {}).snapshot() == m.snapshot()
    r = m | {7: 99}
    expect = m.copy()
    expect[7] = 99
    assert r.snapshot() == expect.snapshot()


def test_or_with_a_map_on_the_right():
    a, b = grown_map(50), Map("int", "int", items={0: 100, 1: 101})
    assert (a | b).to_dict() == a.to_dict() | b.to_dict()


def test_ror_dict_on_the_left():
    m = Map("int", "int", hashkey=HK, items={1: 10, 2: 20})
    r = {2: -2, 3: -3} | m
    assert type(r) is Map and r.hashkey == HK and r.key_kind == "int64"
    assert r.to_dict() == {2: -2, 3: -3} | m.to_dict()


def test_or_refuses_non_mappings_like_dict():
    m = Map("int", "int")
    with pytest.raises(TypeError):
        m | [(1, 2)]  # noqa: B018
    with pytest.raises(TypeError):
        [(1, 2)] | m  # noqa: B018


def test_or_with_a_bad_value_leaves_the_left_alone():
    m = grown_map(30)
    before = m.snapshot()
    with pytest.raises(TypeError):
        m | {1: "x"}  # noqa: B018
    assert m.snapshot() == before


def test_ior_is_update_and_returns_the_same_object():
    m = grown_map(40)
    d = m.to_dict()
    same = m
    m |= {3: 3, 1000: 1}
    d |= {3: 3, 1000: 1}
    assert m is same and m.to_dict() == d
    m |= [(5000, 5), (5001, 6)]
    d |= [(5000, 5), (5001, 6)]
    assert m.to_dict() == d
    with pytest.raises(TypeError):
        m |= 5


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(-50, 50), st.integers()), st.dictionaries(st.integers(-50, 50), st.integers()))
def test_or_ior_vs_dict(a, b):
    m = Map("int64", "object", items=a)
    assert (m | b).to_dict() == a | b
    assert (b | m).to_dict() == b | a
    m |= b
    assert m.to_dict() == a | b


# ---- fromkeys, items=, collect --------------------------------------------------------


def test_fromkeys_vs_dict():
    keys = ["b", "a", "b", "c"]
    m = Map.fromkeys(keys, 0, key_kind="str", value_kind="int")
    assert (m.key_kind, m.value_kind) == ("string", "int64")
    assert m.to_dict() == dict.fromkeys(keys, 0)
    assert Map.fromkeys(range(5)).to_dict() == dict.fromkeys(range(5))
    assert Map.fromkeys(range(5)).key_kind == "object"


def test_fromkeys_passes_hint_hashkey_rand():
    m = Map.fromkeys(range(3), 1.5, key_kind=int, value_kind=float, hint=100, hashkey=HK, rand=[77])
    s = m.snapshot()
    assert (s["B"], s["hash0"], m.hashkey) == (4, 77, HK)


def test_fromkeys_builds_the_subclass_and_uses_its_setitem():
    seen = []

    class Sub(Map):
        def __setitem__(self, k, v):
            seen.append(k)
            super().__setitem__(k, v)

    m = Sub.fromkeys([1, 2], key_kind="int", value_kind="int", value=0)
    assert type(m) is Sub and seen == [1, 2] and m.to_dict() == {1: 0, 2: 0}


def test_fromkeys_bad_key_raises():
    with pytest.raises(TypeError):
        Map.fromkeys([1, "x"], 0, key_kind="int", value_kind="int")
    with pytest.raises(TypeError):
        Map.fromkeys(5)


def test_items_constructor_matches_dict_and_go_assignment_order():
    pairs = [(3, 1), (1, 2), (3, 3), (2, 4)]
    m = Map("int", "int", items=pairs, hashkey=HK, rand=[9])
    assert m.to_dict() == dict(pairs)
    # the same as making the map and assigning in order (Go's maps.Collect)
    n = Map("int", "int", hashkey=HK, rand=[9])
    for k, v in pairs:
        n[k] = v
    assert m.snapshot() == n.snapshot()
    assert Map("str", "object", items={"a": [1]}).to_dict() == {"a": [1]}


def test_items_constructor_bad_items_raise():
    with pytest.raises(ValueError, match="length 3"):
        Map("int", "int", items=[(1, 2, 3)])
    with pytest.raises(TypeError):
        Map("int", "int", items=[(1, "x")])
    with pytest.raises(TypeError):
        Map("int", "int", items=7)


def test_collect_is_the_constructor_with_items():
    pairs = [(i, -i) for i in range(100)]
    m = Map.collect(pairs, "int", "int", 10, hashkey=HK, rand=[5])
    n = Map("int", "int", 10, items=pairs, hashkey=HK, rand=[5])
    assert type(m) is Map and m.snapshot() == n.snapshot()
    assert Map.collect(iter(pairs)).to_dict() == dict(pairs)

    class Sub(Map):
        pass

    assert type(Sub.collect({1: 2})) is Sub


# ---- delete_if / retain ---------------------------------------------------------------


def growing_map(seed):
    m = Map("int64", "int64", hashkey=HK, rand=draws(seed))
    i = 0
    while True:  # stop in the middle of a doubling: evacuation is pending
        m[i] = i * i
        i += 1
        if i > 20 and m.stats()["growing"]:
            return m


def go_delete_func(m, pred):
    """Go's maps.DeleteFunc written out: for k, v := range m { if pred(k, v) { delete(m, k) } }."""
    for k, v in m.items():
        if pred(k, v):
            m.delete(k)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_delete_if_is_go_delete_func_step_for_step(seed):
    # same hashkey and draws: the same iteration start and the same deletes
    # interleaved with evacuation give the same buckets, bit for bit.
    a, b = growing_map(seed), growing_map(seed)
    assert a.stats()["growing"]
    n = len(a)  # keys 0 .. n-1
    pred = lambda k, v: k % 3 == 0  # noqa: E731
    removed = a.delete_if(pred)
    go_delete_func(b, pred)
    assert a.snapshot() == b.snapshot()
    assert removed == len(range(0, n, 3)) == n - len(a)
    assert sorted(a) == [k for k in range(n) if k % 3]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(-1000, 1000), st.integers(-5, 5)), st.integers(-5, 5))
def test_delete_if_and_retain_vs_dict(d, t):
    m = Map("int64", "int64", items=d)
    n = Map("int64", "int64", items=d)
    removed = m.delete_if(lambda k, v: v > t)
    assert m.to_dict() == {k: v for k, v in d.items() if not v > t}
    assert removed == sum(1 for v in d.values() if v > t)
    kept = n.retain(lambda k, v: v > t)
    assert n.to_dict() == {k: v for k, v in d.items() if v > t}
    assert kept == sum(1 for v in d.values() if not v > t)


def test_delete_if_draws_once_per_iteration_like_go():
    draw, calls = counting_source()
    m = Map("int", "int", hashkey=HK, rand=draw, items={i: i for i in range(10)})
    before = len(calls)
    m.delete_if(lambda k, v: False)
    assert len(calls) == before + 1  # mapiterinit on a non-empty map
    Map("int", "int", rand=draw).delete_if(lambda k, v: True)  # empty: creation draw only
    assert len(calls) == before + 2


def test_pred_runs_with_no_claim_held():
    m = Map("int", "object", items={i: i for i in range(50)})

    def pred(k, v):
        # reads and writes of the same map inside pred: no ConcurrentMapError
        assert m[k] == v
        m[k + 1000] = "new"
        return k % 2 == 0

    m.delete_if(pred)
    assert all(k % 2 for k in m if k < 1000)


def test_pred_exception_propagates_and_earlier_deletes_stay():
    m = Map("int", "int", items={i: i for i in range(40)})
    seen = []

    def pred(k, v):
        seen.append(k)
        if len(seen) == 10:
            raise ZeroDivisionError
        return True

    with pytest.raises(ZeroDivisionError):
        m.delete_if(pred)
    assert len(m) == 40 - 9 and not set(seen[:9]) & set(m)


def test_delete_if_needs_a_callable():
    m = Map("int", "int", items={1: 1})
    with pytest.raises(TypeError, match="callable"):
        m.delete_if(3)
    with pytest.raises(TypeError, match="callable"):
        m.retain(None)
    assert m.to_dict() == {1: 1}


# ---- to_dict, json, reversed ----------------------------------------------------------


def test_to_dict_draws_nothing_and_changes_nothing():
    draw, calls = counting_source()
    m = Map("str", "float", rand=draw, items={"a": 1.0, "b": 2.0})
    before, snap = len(calls), m.snapshot()
    d = m.to_dict()
    assert type(d) is dict and d == {"a": 1.0, "b": 2.0}
    assert len(calls) == before and m.snapshot() == snap
    bucket_order = [k for chain in snap["buckets"] for b in chain for k in b["keys"] if k is not None]
    assert list(d) == bucket_order


def test_json_needs_to_dict():
    m = Map("str", "int", items={"a": 1})
    with pytest.raises(TypeError):
        json.dumps(m)
    assert json.loads(json.dumps(m.to_dict())) == {"a": 1}


def test_reversed_is_a_type_error():
    with pytest.raises(TypeError):
        reversed(Map("int", "int", items={1: 1}))


# ---- docstrings -----------------------------------------------------------------------

# operator slots (`|`, `|=`) carry CPython's generic text; they are described in the
# module docstring and the README.
DUNDERS_WITH_DOCS = ["__copy__", "__reduce__"]


@pytest.mark.parametrize("name", [n for n in dir(Map) if not n.startswith("_")] + DUNDERS_WITH_DOCS)
def test_every_public_method_has_a_docstring(name):
    doc = getattr(Map, name).__doc__
    assert doc and len(doc.strip()) > 20, f"Map.{name} has no docstring"
    inherited = getattr(object, name, None)
    assert inherited is None or doc != inherited.__doc__, f"Map.{name} only inherits object's docstring"


def test_module_docstrings():
    assert gomap._core.__doc__ and "docs/fidelity.md" in gomap._core.__doc__
    assert "module documentation" in Map.__doc__
    assert "docs/fidelity.md" in Map.snapshot.__doc__


@pytest.mark.parametrize("cls", [gomap._core.map_keys, gomap._core.map_values, gomap._core.map_items,
                                 gomap._core.MapIterator])
def test_views_and_iterator_have_docstrings(cls):
    assert cls.__doc__ and cls.__doc__.strip()
    for name in dir(cls):
        if not name.startswith("_"):
            assert (getattr(cls, name).__doc__ or "").strip(), f"{cls.__name__}.{name}"


def test_module_functions_have_docstrings():
    assert gomap.build_info.__doc__ and gomap._core.ConcurrentMapError.__doc__
