"""Secure aggregation by pairwise additive masking (Bonawitz et al. 2017, without dropout shares).

Each site turns its vector into fixed-point integers modulo 2^128 and adds, for each of its
neighbours in the round, a mask that the pair derives from an X25519 key agreement: the site
whose name sorts first adds it, the other subtracts it. Summed over the round's sites the masks
cancel, so the hub learns the sum of the vectors and nothing about any one of them (against a
hub that follows the protocol but is curious; public keys pass through the hub unsigned).
Up to 13 sites every pair is masked; beyond, each site masks with its 2·⌈log2 n⌉ nearest sites
on a ring of the sorted names (:func:`neighbours`, as in SecAgg+): the graph stays connected,
so only the total is revealed, but a hub colluding with all of a site's neighbours could
unmask that site.

The masks are a ChaCha20 key stream keyed by HKDF-SHA256 of the pair's shared secret, bound to
the run, the round and the set of sites. When a site drops out the hub repeats the round with
the sites left: a new set gives new masks, and no mask is ever reused.

Fixed point: values are scaled by 2^40 (resolution 9.1e-13) and must stay below 2^86 in
magnitude; a sum over sites keeps the precision of each term (the error of a sum of ``k``
terms is at most ``k · 2^-41``).

Arithmetic modulo 2^128 is done on pairs of uint64 arrays (low and high words) with numpy.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCALE_BITS = 40
_SCALE = float(2**SCALE_BITS)
_TWO64 = float(2**64)
#: The largest magnitude a value may have before scaling overflows the ring's sign bit.
MAX_ABS = 2.0 ** (127 - SCALE_BITS - 1)

U64 = np.uint64


@dataclass(frozen=True)
class Ring128:
    """Vectors of integers modulo 2^128 as low and high uint64 words."""

    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def zeros(n: int) -> Ring128:
        """The zero vector of length ``n``."""
        return Ring128(np.zeros(n, dtype=U64), np.zeros(n, dtype=U64))

    def __add__(self, other: Ring128) -> Ring128:
        lo = self.lo + other.lo  # wraps modulo 2^64
        carry = (lo < self.lo).astype(U64)
        return Ring128(lo, self.hi + other.hi + carry)

    def __neg__(self) -> Ring128:
        lo = ~self.lo + U64(1)
        carry = (lo == 0).astype(U64)
        return Ring128(lo, ~self.hi + carry)

    def __sub__(self, other: Ring128) -> Ring128:
        return self + (-other)

    def to_bytes(self) -> bytes:
        """Little-endian words, low then high, element by element."""
        return np.stack([self.lo, self.hi], axis=1).astype("<u8").tobytes()

    @staticmethod
    def from_bytes(data: bytes) -> Ring128:
        """Inverse of :meth:`to_bytes`."""
        if len(data) % 16:
            raise ValueError("a masked vector must be a whole number of 16-byte elements")
        words = np.frombuffer(data, dtype="<u8").reshape(-1, 2).astype(U64)
        return Ring128(words[:, 0].copy(), words[:, 1].copy())

    def to_text(self) -> str:
        """Base64 of :meth:`to_bytes`, for JSON messages."""
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @staticmethod
    def from_text(text: str) -> Ring128:
        """Inverse of :meth:`to_text`."""
        return Ring128.from_bytes(base64.b64decode(text.encode("ascii"), validate=True))


def encode(values: np.ndarray) -> Ring128:
    """Fixed-point encoding of a float vector into the ring.

    Raises
    ------
    ValueError
        For a non-finite value or one too large for the ring.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("secure aggregation: a value to sum is NaN or infinite")
    if x.size and np.max(np.abs(x)) >= MAX_ABS:
        raise ValueError(f"secure aggregation: a value to sum exceeds {MAX_ABS:.3g} in magnitude")
    scaled = np.round(np.abs(x) * _SCALE)  # whole numbers, so the splits below are exact
    hi = np.floor(scaled / _TWO64)
    lo = scaled - hi * _TWO64
    magnitude = Ring128(lo.astype(U64), hi.astype(U64))
    negative = Ring128.zeros(x.size) - magnitude
    neg = x < 0
    return Ring128(
        np.where(neg, negative.lo, magnitude.lo), np.where(neg, negative.hi, magnitude.hi)
    )


def decode(ring: Ring128) -> np.ndarray:
    """Inverse of :func:`encode` (applied to a sum, gives the sum of the floats)."""
    neg = ring.hi >= U64(2**63)
    magnitude = -ring
    lo = np.where(neg, magnitude.lo, ring.lo).astype(np.float64)
    hi = np.where(neg, magnitude.hi, ring.hi).astype(np.float64)
    value = (hi * _TWO64 + lo) / _SCALE
    return np.where(neg, -value, value)


class MaskingKey:
    """A site's X25519 key pair for one run."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self._secrets: dict[str, bytes] = {}  # one exchange per peer per run, not per round

    def public_text(self) -> str:
        """The public key, base64, to send to the hub."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")

    def shared_secret(self, peer_public_text: str) -> bytes:
        """The X25519 shared secret with a peer."""
        if peer_public_text in self._secrets:
            return self._secrets[peer_public_text]
        try:
            raw = base64.b64decode(peer_public_text.encode("ascii"), validate=True)
            peer = X25519PublicKey.from_public_bytes(raw)
        except Exception as exc:
            raise ValueError(
                f"secure aggregation: a peer's public key is malformed ({exc})"
            ) from exc
        secret = self._private.exchange(peer)
        self._secrets[peer_public_text] = secret
        return secret


def neighbour_count(n_sites: int) -> int:
    """How many peers each site masks with: all of them up to 13 sites, then 2·⌈log2 n⌉."""
    if n_sites <= 13:
        return max(n_sites - 1, 0)
    return min(n_sites - 1, 2 * math.ceil(math.log2(n_sites)))


def neighbours(me: str, sites: Sequence[str], k: int | None = None) -> list[str]:
    """The peers ``me`` masks with: its ``k`` nearest sites on a ring of the sorted names.

    The relation is symmetric (``a`` is ``b``'s neighbour exactly when ``b`` is ``a``'s), so
    every pair's mask is added once and subtracted once, and the ring keeps the graph
    connected: the hub learns only the sum of all the sites (SecAgg+'s sparse graph, which
    costs each site O(log n) masks instead of n − 1).
    """
    ring = sorted(set(sites))
    n = len(ring)
    k = neighbour_count(n) if k is None else k
    i = ring.index(me)
    if k >= n - 1:
        return [s for s in ring if s != me]
    half = k // 2
    chosen = {ring[(i + d) % n] for d in range(-half, half + 1) if d}
    return sorted(chosen)


def round_context(run_id: str, round_no: int, sites: Sequence[str]) -> bytes:
    """Bytes binding masks to one run, one round and one set of sites."""
    names = "\x1f".join(sorted(sites))
    return hashlib.sha256(f"{run_id}\x1e{round_no}\x1e{names}".encode()).digest()


def _pair_mask(secret: bytes, context: bytes, n: int) -> Ring128:
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=b"cardiobox-secagg" + context)
    key_nonce = okm.derive(secret)
    cipher = Cipher(algorithms.ChaCha20(key_nonce[:32], key_nonce[32:]), mode=None)
    stream = cipher.encryptor().update(bytes(16 * n))
    return Ring128.from_bytes(stream)


def mask(
    values: np.ndarray,
    me: str,
    key: MaskingKey,
    peers: Mapping[str, str],
    context: bytes,
) -> Ring128:
    """Encode ``values`` and add this site's pairwise masks.

    Parameters
    ----------
    values : numpy.ndarray
        The float vector to contribute.
    me : str
        This site's name.
    key : MaskingKey
        This site's key pair for the run.
    peers : mapping of str to str
        The sites this one masks with (its :func:`neighbours` in the round) and their public
        keys.
    context : bytes
        :func:`round_context` of the round.
    """
    out = encode(values)
    n = out.lo.size
    for name, public in sorted(peers.items()):
        if name == me:
            continue
        m = _pair_mask(key.shared_secret(public), context, n)
        out = out + m if me < name else out - m
    return out


def unmask_sum(masked: Sequence[Ring128]) -> np.ndarray:
    """Sum the masked vectors of every site of a round (the masks cancel) and decode."""
    if not masked:
        raise ValueError("secure aggregation: no vectors to sum")
    n = masked[0].lo.size
    if any(m.lo.size != n for m in masked):
        raise ValueError("secure aggregation: the sites sent vectors of different lengths")
    total = Ring128.zeros(n)
    for m in masked:
        total = total + m
    return decode(total)
