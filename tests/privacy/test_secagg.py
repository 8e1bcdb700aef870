import numpy as np
import pytest

from cardiobox.privacy import secagg


def _keys(names: list[str]) -> tuple[dict[str, secagg.MaskingKey], dict[str, str]]:
    keys = {n: secagg.MaskingKey() for n in names}
    return keys, {n: k.public_text() for n, k in keys.items()}


def test_encode_decode_round_trip() -> None:
    x = np.array([0.0, 1.0, -1.0, 1.5, -(2.0**60), 3.3e20, -1e-12, 123456.789])
    back = secagg.decode(secagg.encode(x))
    assert np.allclose(back, x, rtol=1e-15, atol=2**-40)


def test_masks_cancel_and_hide() -> None:
    rng = np.random.default_rng(1)
    names = ["a", "b", "c", "d"]
    keys, pubs = _keys(names)
    ctx = secagg.round_context("run", 1, names)
    xs = [rng.normal(size=500) * 10.0 ** rng.integers(-6, 12, size=500) for _ in names]
    masked = [secagg.mask(x, n, keys[n], pubs, ctx) for x, n in zip(xs, names, strict=True)]
    wire = [secagg.Ring128.from_text(m.to_text()) for m in masked]
    total = secagg.unmask_sum(wire)
    expected = np.sum(xs, axis=0)
    assert np.allclose(total, expected, rtol=1e-12, atol=1e-9)
    # One masked vector alone says nothing about its values.
    alone = secagg.decode(masked[0])
    assert np.mean(np.abs(alone - xs[0]) > 1e6) > 0.99


def test_a_missing_site_leaves_garbage_and_new_context_new_masks() -> None:
    names = ["a", "b", "c"]
    keys, pubs = _keys(names)
    ones = np.ones(4)
    ctx = secagg.round_context("run", 1, names)
    partial = [secagg.mask(ones, n, keys[n], pubs, ctx) for n in names[:2]]
    assert not np.allclose(secagg.unmask_sum(partial), 2.0)
    other = secagg.round_context("run", 1, names[:2])
    assert other != ctx
    again = [
        secagg.mask(ones, n, keys[n], {k: pubs[k] for k in names[:2]}, other) for n in names[:2]
    ]
    assert np.allclose(secagg.unmask_sum(again), 2.0)


def test_bad_values_and_vectors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        secagg.encode(np.array([np.nan]))
    with pytest.raises(ValueError, match="exceeds"):
        secagg.encode(np.array([1e30]))
    with pytest.raises(ValueError, match="different lengths"):
        secagg.unmask_sum([secagg.Ring128.zeros(2), secagg.Ring128.zeros(3)])
    with pytest.raises(ValueError, match="16-byte"):
        secagg.Ring128.from_bytes(b"123")
    key = secagg.MaskingKey()
    with pytest.raises(ValueError, match="malformed"):
        key.shared_secret("bm90IGEga2V5")


def test_sparse_neighbour_graph_is_symmetric_connected_and_cancels() -> None:
    names = [f"site_{i:02d}" for i in range(50)]
    k = secagg.neighbour_count(50)
    assert k == 12 and secagg.neighbour_count(13) == 12 and secagg.neighbour_count(3) == 2
    graph = {n: set(secagg.neighbours(n, names)) for n in names}
    assert all(len(peers) == k and n not in peers for n, peers in graph.items())
    assert all(a in graph[b] for a in names for b in graph[a])  # symmetric
    seen, todo = {names[0]}, [names[0]]
    while todo:  # connected: only the total can be unmasked
        for b in graph[todo.pop()] - seen:
            seen.add(b)
            todo.append(b)
    assert seen == set(names)
    keys, pubs = _keys(names)
    ctx = secagg.round_context("run", 1, names)
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=7) for _ in names]
    masked = [
        secagg.mask(x, n, keys[n], {p: pubs[p] for p in graph[n]}, ctx)
        for x, n in zip(xs, names, strict=True)
    ]
    assert np.allclose(secagg.unmask_sum(masked), np.sum(xs, axis=0), atol=1e-9)
    assert not np.allclose(secagg.decode(masked[0]), xs[0])
