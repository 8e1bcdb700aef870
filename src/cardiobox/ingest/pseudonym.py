"""Pseudonymous identifiers: HMAC-SHA256 of local ids under the site's secret key.

The key lives outside the site store, in a file only the site can read (``--key-file``, or the
file named by the environment variable ``CARDIOBOX_SITE_KEY``, or ``<store>.key`` beside the
store, created on first use with permissions 0600). The store records the key's fingerprint and
refuses data pseudonymised under another key, so that one patient never gets two pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cardiobox.duck import sql_str
from cardiobox.errors import InputError, Location

ENV_VAR = "CARDIOBOX_SITE_KEY"
_BLOCK = 64  # SHA-256's block size, in bytes (RFC 2104)


@dataclass(frozen=True)
class SiteKey:
    """The site's secret key and where it came from."""

    key: bytes
    path: Path
    created: bool = False

    @property
    def fingerprint(self) -> str:
        """A public fingerprint of the key (safe to store and print)."""
        return hashlib.sha256(b"cardiobox-key-fingerprint|" + self.key).hexdigest()[:16]

    def pseudonym(self, kind: str, local_id: str) -> str:
        """The pseudonym of a local identifier (32 hex characters, a valid FHIR id).

        ``kind`` (``Patient``, ``Encounter``) keeps ids of different kinds apart.
        """
        msg = f"{kind}|{local_id}".encode()
        return hmac.digest(self.key, msg, "sha256").hex()[:32]  # one-shot: fast in C

    def sql_parameters(self) -> dict[str, bytes]:
        """The named parameters of :func:`pseudonym_sql`: the key's inner and outer pads.

        They are as secret as the key: pass them to a query, never store or print them.
        """
        key = self.key if len(self.key) <= _BLOCK else hashlib.sha256(self.key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return {
            "hmac_inner": bytes(b ^ 0x36 for b in key),
            "hmac_outer": bytes(b ^ 0x5C for b in key),
        }


def pseudonym_sql(kind: str, local_sql: str) -> str:
    """DuckDB SQL computing :meth:`SiteKey.pseudonym` of the VARCHAR ``local_sql``.

    HMAC-SHA256 written out (RFC 2104): ``H(outer || H(inner || message))``, with the pads
    of :meth:`SiteKey.sql_parameters` as the named parameters ``$hmac_inner`` and
    ``$hmac_outer``; the message is the UTF-8 text ``kind|local``.
    """
    message = f"encode({sql_str(kind + '|')} || {local_sql})"
    return f"left(sha256($hmac_outer || unhex(sha256($hmac_inner || {message}))), 32)"


def key_path_for(store: Path, key_file: str | Path | None) -> Path:
    """Where the key is: ``key_file``, else ``$CARDIOBOX_SITE_KEY``, else ``<store>.key``."""
    if key_file:
        return Path(key_file)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return store.with_name(store.name + ".key")


def load_or_create_key(path: Path, create: bool = True) -> SiteKey:
    """Read the site key, or create a new random one (256 bits) if allowed.

    Raises
    ------
    InputError
        When the file is missing and ``create`` is false, or holds no usable key.
    """
    if path.is_file():
        text = path.read_text(encoding="ascii", errors="replace").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise InputError(
                "the site key file must hold at least 32 hexadecimal characters",
                rule="site-key",
                location=Location(file=str(path)),
            )
        return SiteKey(key, path)
    if not create:
        raise InputError(
            f"no site key at {path}; pass --key-file or set {ENV_VAR}",
            rule="site-key",
            location=Location(file=str(path)),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return SiteKey(key, path, created=True)
