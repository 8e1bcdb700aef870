"""Development certificates and SuperNode keys for Flower's deployment runtime.

:func:`dev_certificates` makes a self-signed certificate authority and a server certificate for
``localhost`` / ``127.0.0.1`` / ``::1`` that the SuperLink serves over TLS (the SuperNodes and
``flwr`` trust the CA). :func:`node_keypair` makes a SuperNode's authentication key pair: an
elliptic-curve (NIST P-384) key in OpenSSH format, the form ``flower-supernode
--auth-supernode-private-key`` reads and ``flwr supernode register`` accepts.

For tests and one-machine demos only: a real federation uses certificates from the hospital's
own PKI, and each site makes its own key pair and sends only the public half to the hub.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: An OpenSSH public key line ("<type> <base64> [comment]"), as opposed to a file path.
_OPENSSH_KEY = re.compile(r"^(ssh|ecdsa|sk)-[\w@.-]+ [A-Za-z0-9+/]+=*( |$)")
#: How long development certificates stay valid.
DEV_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServerCertificates:
    """The TLS files of a SuperLink.

    Parameters
    ----------
    ca : Path
        The CA certificate (PEM) that SuperNodes and ``flwr`` pass as root certificate.
    cert : Path
        The server certificate (PEM), signed by the CA.
    key : Path
        The server's private key (PEM, readable by its owner only).
    """

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class NodeKeys:
    """A SuperNode's authentication key pair (OpenSSH format).

    Parameters
    ----------
    private : Path
        The private key, passed to ``flower-supernode --auth-supernode-private-key``.
    public : Path
        The public key, registered at the hub with ``flwr supernode register``.
    """

    private: Path
    public: Path


def _write_secret(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (created so, never widened later)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardiobox development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def dev_certificates(
    directory: str | Path,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
) -> ServerCertificates:
    """Write a self-signed CA and a server certificate for ``hosts`` into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Where to write ``ca.crt``, ``server.pem`` and ``server.key`` (created if missing).
    hosts : tuple of str
        Host names and IP addresses the server certificate is valid for (its subject
        alternative names; default: the loopback names).

    Returns
    -------
    ServerCertificates
        The paths of the three files. The CA's private key is not kept: these certificates
        are for one development federation and are remade, not extended.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + DEV_VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cardiobox development CA")
    signs_certificates = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(signs_certificates, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "localhost"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = ServerCertificates(out / "ca.crt", out / "server.pem", out / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_secret(
        files.key,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files


def node_keypair(directory: str | Path, name: str, overwrite: bool = False) -> NodeKeys:
    """Write a SuperNode authentication key pair ``<name>.key`` / ``<name>.pub``.

    Parameters
    ----------
    directory : str or Path
        Where to write the two files (created if missing).
    name : str
        The site's name (file stem and the public key's comment).
    overwrite : bool
        Replace an existing key pair (default false: a site's key is not lost by mistake).

    Returns
    -------
    NodeKeys
        The paths of the private key (owner-only) and the public key.

    Raises
    ------
    ValueError
        For a name that is not a plain file stem, or a key pair already there.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"node key name {name!r} must be a plain file name (no folders)")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = NodeKeys(out / f"{name}.key", out / f"{name}.pub")
    if not overwrite and (files.private.exists() or files.public.exists()):
        raise ValueError(f"{files.private} or {files.public} exists already (not replaced)")
    key = ec.generate_private_key(ec.SECP384R1())
    _write_secret(
        files.private,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    files.public.write_bytes(public + f" {name}\n".encode())
    return files


def read_authorized_keys(path: str | Path, into: str | Path) -> dict[str, Path]:
    """The SuperNode public keys a hub accepts, from a CSV with columns ``site,public_key``.

    ``public_key`` is an OpenSSH public key (``ecdsa-sha2-nistp384 AAAA...``) or the path of a
    ``.pub`` file holding one (relative to the CSV's folder). Each key is checked and written
    to ``into/<site>.pub``, the form ``flwr supernode register`` reads.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    into : str or Path
        The folder to write the checked public keys into.

    Returns
    -------
    dict of str to Path
        Site name → its public key file.

    Raises
    ------
    InputError
        Naming the row and the problem (missing column, duplicate site, a key that is not an
        elliptic-curve key on a NIST curve).
    """
    import csv

    from cardiobox.errors import InputError, Location

    source = Path(path)
    out = Path(into)
    out.mkdir(parents=True, exist_ok=True)
    try:
        rows = list(csv.DictReader(source.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise InputError("no such file", "missing-input", Location(file=str(source))) from None
    keys: dict[str, Path] = {}
    for line, row in enumerate(rows, start=2):
        where = Location(file=str(source), line=line)
        site, key = (row.get("site") or "").strip(), (row.get("public_key") or "").strip()
        if not site or not key:
            raise InputError("each row needs a site and a public_key", "authorized-keys", where)
        if Path(site).name != site or site.startswith("."):
            raise InputError(f"site {site!r} is not a plain name", "authorized-keys", where)
        if site in keys:
            raise InputError(f"site {site!r} appears twice", "authorized-keys", where)
        text = key if _OPENSSH_KEY.match(key) else None
        if text is None:
            key_file = (source.parent / key).resolve()
            try:
                text = key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise InputError(
                    f"cannot read {key_file}: {exc}", "authorized-keys", where
                ) from exc
        try:
            public = serialization.load_ssh_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise InputError(f"not an OpenSSH public key: {exc}", "authorized-keys", where) from exc
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in (
            "secp256r1", "secp384r1", "secp521r1",
        ):  # fmt: skip
            raise InputError(
                "SuperNode keys must be elliptic-curve keys on a NIST curve (P-256/384/521)",
                "authorized-keys",
                where,
            )
        keys[site] = out / f"{site}.pub"
        keys[site].write_text(text + "\n", encoding="ascii")
    return keys
