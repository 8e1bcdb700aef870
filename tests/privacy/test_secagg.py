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


def _ring_int(ring: secagg.Ring128) -> list[int]:
    return [int(lo) + (int(hi) << 64) for lo, hi in zip(ring.lo, ring.hi, strict=True)]


def test_encode_is_the_fixed_point_value_modulo_2_128() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate([
        rng.normal(size=300) * 10.0 ** rng.integers(-12, 25, size=300),
        [0.0, -0.0, 1.0, -1.0, 2.0**-41, -(2.0**-40), 2.0**85, -(2.0**85), -(2.0**-80)],
    ])  # fmt: skip
    expected = []
    for v in x:
        m = int(np.round(abs(v) * 2.0**secagg.SCALE_BITS))
        expected.append((-m) % 2**128 if v < 0 else m)
    assert _ring_int(secagg.encode(x)) == expected


def test_mask_is_the_encoding_plus_and_minus_each_pair_stream() -> None:
    """The one-pass limb sum equals the ring arithmetic done pair by pair."""
    names = ["a", "b", "c", "d", "e"]
    keys, pubs = _keys(names)
    ctx = secagg.round_context("run", 3, names)
    nonce = secagg.round_nonce(ctx)
    # Negative values and the ring's extremes too: signed limbs, carries across all four.
    x = np.concatenate([np.random.default_rng(2).normal(size=11) * 1e6,
                        [-(2.0**85), 2.0**85, -1e-13, -0.0, 0.0]])  # fmt: skip
    for me in names:
        peers = {p: pubs[p] for p in names if p != me}
        expected = secagg.encode(x)
        for p in sorted(peers):
            cipher = keys[me].pair_cipher(pubs[p])
            stream = cipher.encrypt(nonce, bytes(16 * x.size), None)[: 16 * x.size]
            pair = secagg.Ring128.from_bytes(stream)
            expected = expected + pair if me < p else expected - pair
        assert _ring_int(secagg.mask(x, me, keys[me], peers, ctx)) == _ring_int(expected)
    # Both sites of a pair derive the same key stream.
    assert keys["a"].pair_cipher(pubs["b"]).encrypt(nonce, bytes(32), None) == keys[
        "b"
    ].pair_cipher(pubs["a"]).encrypt(nonce, bytes(32), None)


def test_fresh_masks_every_round_and_keys_agreed_once_per_run() -> None:
    names = ["a", "b", "c"]
    keys, pubs = _keys(names)
    x = np.ones(8)
    peers = {p: pubs[p] for p in names if p != "a"}
    masked = {
        r: secagg.mask(x, "a", keys["a"], peers, secagg.round_context("run", r, names)).to_text()
        for r in (1, 2)
    }
    assert masked[1] != masked[2]  # another round, other masks
    other_sites = secagg.round_context("run", 1, ["a", "b"])
    assert secagg.round_nonce(other_sites) != secagg.round_nonce(
        secagg.round_context("run", 1, names)
    )
    # One key agreement and one derivation per peer for the run: the same cipher every round.
    assert keys["a"].pair_cipher(pubs["b"]) is keys["a"].pair_cipher(pubs["b"])


def test_sum_texts_unmasks_what_the_sites_send() -> None:
    names = [f"s{i}" for i in range(20)]  # beyond 13 sites: the sparse neighbour graph
    keys, pubs = _keys(names)
    ctx = secagg.round_context("run", 1, names)
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=30) * 1e3 for _ in names]
    texts = [
        secagg.mask(x, n, keys[n], {p: pubs[p] for p in secagg.neighbours(n, names)}, ctx).to_text()
        for x, n in zip(xs, names, strict=True)
    ]
    total = secagg.sum_texts(texts)
    assert np.allclose(total, np.sum(xs, axis=0), rtol=0, atol=1e-9)
    assert np.array_equal(total, secagg.unmask_sum([secagg.Ring128.from_text(t) for t in texts]))
    with pytest.raises(ValueError, match="different lengths"):
        secagg.sum_texts([texts[0], secagg.Ring128.zeros(2).to_text()])
    with pytest.raises(ValueError, match="no vectors"):
        secagg.sum_texts([])


def test_mask_text_is_the_masked_vector_as_sent() -> None:
    names = ["a", "b", "c"]
    keys, pubs = _keys(names)
    ctx = secagg.round_context("run", 1, names)
    x = np.array([-2.5, 0.0, 1e9, -1e-12])
    for me in names:
        peers = {p: pubs[p] for p in names if p != me}
        text = secagg.mask_text(x, me, keys[me], peers, ctx)
        assert text == secagg.mask(x, me, keys[me], peers, ctx).to_text()
