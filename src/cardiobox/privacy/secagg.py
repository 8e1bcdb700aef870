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

The masks are a ChaCha20 key stream: the pair's key is HKDF-SHA256 of its shared secret (one
key agreement and one derivation per pair and run, as the keys live for one run), and the
stream's nonce is drawn from the round's context — the run, the round and the set of sites —
so every round gets fresh masks. When a site drops out the hub repeats the round with the
sites left: a new set gives new masks, and no mask is ever reused. A site's encoding and its
masks are summed in one pass over all its neighbours (32-bit limbs in signed 64-bit words,
the subtracted masks with a minus sign, carries propagated once).

Fixed point: values are scaled by 2^40 (resolution 9.1e-13) and must stay below 2^86 in
magnitude; a sum over sites keeps the precision of each term (the error of a sum of ``k``
terms is at most ``k · 2^-41``).

Arithmetic modulo 2^128 is done on pairs of uint64 arrays (low and high words) with numpy.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCALE_BITS = 40
_SCALE = float(2**SCALE_BITS)
_TWO64 = float(2**64)
#: The largest magnitude a value may have before scaling overflows the ring's sign bit.
MAX_ABS = 2.0 ** (127 - SCALE_BITS - 1)

U64 = np.uint64
I64 = np.int64
_LIMB = U64(0xFFFFFFFF)
_THIRTY_TWO = U64(32)
_THIRTY_TWO_SIGNED = I64(32)
_TWO32 = float(2**32)
#: Scales that bring each 32-bit limb of a whole number down to the units (least first).
_LIMB_SCALES = np.array([1.0, 2.0**-32, 2.0**-64, 2.0**-96])
#: HKDF ``info`` of a pair's ChaCha20 key.
PAIR_KEY_INFO = b"cardiobox-secagg-pair-key"


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

    def limbs(self) -> np.ndarray:
        """The elements as four 32-bit limbs each, least significant first (n × 4, uint64)."""
        out = np.empty((self.lo.size, 4), dtype=U64)
        out[:, 0] = self.lo & _LIMB
        out[:, 1] = self.lo >> _THIRTY_TWO
        out[:, 2] = self.hi & _LIMB
        out[:, 3] = self.hi >> _THIRTY_TWO
        return out

    @staticmethod
    def sum_limbs(limbs: np.ndarray, negated: int = 0) -> Ring128:
        """The sum modulo 2^128 of stacked vectors given as 32-bit limbs (k × n × 4).

        ``negated`` is added to every element of the sum: for each vector whose limbs were
        complemented (``0xFFFFFFFF − limb``, i.e. ``−x − 1``) a one turns it into ``−x``.
        """
        return _ring(_carry_out(limbs.sum(axis=0, dtype=U64), negated))

    def to_text(self) -> str:
        """Base64 of :meth:`to_bytes`, for JSON messages."""
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @staticmethod
    def from_text(text: str) -> Ring128:
        """Inverse of :meth:`to_text`."""
        return Ring128.from_bytes(base64.b64decode(text.encode("ascii"), validate=True))


def _carry_out(total: np.ndarray, carry_in: np.ndarray | int) -> np.ndarray:
    """Limb sums (n × 4 uint64, each below 2^63) as ring elements' 32-bit limbs (n × 4).

    ``carry_in`` is added to the lowest limbs and each limb's carry moved up once; the cast to
    32 bits keeps each limb's own bits and drops the carry out of the top one (modulo 2^128).
    Little-endian limbs are also :meth:`Ring128.to_bytes`'s layout.
    """
    total[:, 0] += carry_in
    for j in range(3):
        total[:, j + 1] += total[:, j] >> _THIRTY_TWO
    return total.astype("<u4")


def _ring(limbs: np.ndarray) -> Ring128:
    """32-bit limbs (n × 4, little-endian, contiguous) as a :class:`Ring128`."""
    words = limbs.view("<u8").astype(U64)  # (n × 2): low word, high word
    return Ring128(np.ascontiguousarray(words[:, 0]), np.ascontiguousarray(words[:, 1]))


def _encode_digits(values: np.ndarray) -> np.ndarray:
    """Fixed-point encoding of a float vector as its ring elements' 32-bit digits.

    An n × 4 float64 array, least significant digit first: the digits of ``round(x · 2^40)``
    modulo 2^128 (two's complement, so a negative value needs no separate step).

    Raises
    ------
    ValueError
        For a non-finite value or one too large for the ring.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size and not np.abs(x).max() < MAX_ABS:  # NaN fails the comparison too
        if not np.all(np.isfinite(x)):
            raise ValueError("secure aggregation: a value to sum is NaN or infinite")
        raise ValueError(f"secure aggregation: a value to sum exceeds {MAX_ABS:.3g} in magnitude")
    # A whole number of at most 53 significant bits: scaling by powers of two, floor and the
    # floored remainder modulo 2^32 (in [0, 2^32), for negative numbers too) are all exact in
    # float64, and floor(s / 2^32j) mod 2^32 is digit j of s modulo 2^128.
    scaled = np.round(x * _SCALE)
    digits: np.ndarray = np.floor(scaled[:, None] * _LIMB_SCALES) % _TWO32
    return digits


def encode(values: np.ndarray) -> Ring128:
    """Fixed-point encoding of a float vector into the ring.

    Raises
    ------
    ValueError
        For a non-finite value or one too large for the ring.
    """
    return _ring(_encode_digits(values).astype("<u4"))


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
        self._ciphers: dict[str, ChaCha20Poly1305] = {}  # one derivation per peer per run

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

    def pair_cipher(self, peer_public_text: str) -> ChaCha20Poly1305:
        """The pair's ChaCha20 keyed by HKDF-SHA256 of the shared secret (made once per run)."""
        cipher = self._ciphers.get(peer_public_text)
        if cipher is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PAIR_KEY_INFO)
            cipher = ChaCha20Poly1305(hkdf.derive(self.shared_secret(peer_public_text)))
            self._ciphers[peer_public_text] = cipher
        return cipher


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
    return list(_neighbours(me, tuple(sites), k))


@functools.lru_cache(maxsize=4096)
def _neighbours(me: str, sites: tuple[str, ...], k: int | None) -> tuple[str, ...]:
    # Cached: every round of a run asks again with the same sites.
    ring = sorted(set(sites))
    n = len(ring)
    k = neighbour_count(n) if k is None else k
    i = ring.index(me)
    if k >= n - 1:
        return tuple(s for s in ring if s != me)
    half = k // 2
    chosen = {ring[(i + d) % n] for d in range(-half, half + 1) if d}
    return tuple(sorted(chosen))


def round_context(run_id: str, round_no: int, sites: Sequence[str]) -> bytes:
    """Bytes binding masks to one run, one round and one set of sites."""
    names = "\x1f".join(sorted(sites))
    return hashlib.sha256(f"{run_id}\x1e{round_no}\x1e{names}".encode()).digest()


def round_nonce(context: bytes) -> bytes:
    """The 96-bit ChaCha20 nonce of a round's masks, from its :func:`round_context`."""
    return hashlib.sha256(b"cardiobox-secagg-nonce" + context).digest()[:12]


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
    return _ring(_masked_limbs(values, me, key, peers, context))


def mask_text(
    values: np.ndarray,
    me: str,
    key: MaskingKey,
    peers: Mapping[str, str],
    context: bytes,
) -> str:
    """:func:`mask` as sent: the same as ``mask(...).to_text()``, with fewer steps."""
    return base64.b64encode(_masked_limbs(values, me, key, peers, context).tobytes()).decode()


def _masked_limbs(
    values: np.ndarray, me: str, key: MaskingKey, peers: Mapping[str, str], context: bytes
) -> np.ndarray:
    """The masked vector's 32-bit limbs (n × 4, little-endian): :meth:`Ring128.to_bytes`'s layout.

    The encoding's digits and every pair's stream are summed as signed 64-bit limbs — the
    streams this site adds with a plus, those it subtracts with a minus — and the carries are
    moved up once at the end; the cast to 32 bits keeps each limb modulo 2^32 (the top limb's
    carry out is the reduction modulo 2^128).
    """
    total = _encode_digits(values).astype(I64)
    others = sorted(p for p in peers if p != me)
    if others:
        n, k = total.shape[0], len(others)
        # Each pair's stream: ChaCha20-Poly1305 of zeros is the ChaCha20 key stream from block
        # 1 (RFC 8439) and a 16-byte tag, cut off below; the cipher is kept for the run.
        nonce, zeros = round_nonce(context), bytes(16 * n)
        streams = b"".join([key.pair_cipher(peers[p]).encrypt(nonce, zeros, None) for p in others])
        masks = np.frombuffer(streams, dtype="<u4").reshape(k, 4 * n + 4)[:, : 4 * n]
        # The site whose name sorts first adds the pair's mask, the other subtracts it: the
        # peers before this site (in sorted order) are those whose masks it subtracts.
        signs = _pair_signs(k, bisect.bisect_left(others, me))
        total += (signs @ masks.astype(I64)).reshape(n, 4)
        for j in range(3):  # each limb's sum is within ±(k + 1)·2^32: no int64 overflow
            total[:, j + 1] += total[:, j] >> _THIRTY_TWO_SIGNED
    out: np.ndarray = total.astype("<u4")
    return out


@functools.lru_cache(maxsize=256)
def _pair_signs(k: int, before: int) -> np.ndarray:
    """−1 for the first ``before`` of ``k`` pair streams (subtracted), +1 for the others."""
    signs = np.ones(k, dtype=I64)
    signs[:before] = -1
    signs.flags.writeable = False
    return signs


def sum_texts(texts: Sequence[str]) -> np.ndarray:
    """Unmask and decode the sum of a round's masked vectors as sent (:meth:`Ring128.to_text`).

    Raises
    ------
    ValueError
        For malformed base64, or vectors of different or broken lengths.
    """
    if not texts:
        raise ValueError("secure aggregation: no vectors to sum")
    raw = [base64.b64decode(t.encode("ascii"), validate=True) for t in texts]
    if len({len(r) for r in raw}) != 1:
        raise ValueError("secure aggregation: the sites sent vectors of different lengths")
    if len(raw[0]) % 16:
        raise ValueError("a masked vector must be a whole number of 16-byte elements")
    limbs = np.frombuffer(b"".join(raw), dtype="<u4").reshape(len(raw), -1, 4)
    return decode(Ring128.sum_limbs(limbs))


def unmask_sum(masked: Sequence[Ring128]) -> np.ndarray:
    """Sum the masked vectors of every site of a round (the masks cancel) and decode."""
    if not masked:
        raise ValueError("secure aggregation: no vectors to sum")
    n = masked[0].lo.size
    if any(m.lo.size != n for m in masked):
        raise ValueError("secure aggregation: the sites sent vectors of different lengths")
    return decode(Ring128.sum_limbs(np.stack([m.limbs() for m in masked])))
