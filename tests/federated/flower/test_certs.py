"""Development TLS certificates, SuperNode key pairs and the hub's authorized keys."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cardiobox.errors import InputError
from cardiobox.federated.flower.certs import (
    dev_certificates,
    node_keypair,
    read_authorized_keys,
)


def test_dev_certificates_chain_to_the_ca_for_loopback(tmp_path: Path) -> None:
    files = dev_certificates(tmp_path / "certs")
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    # The standard library accepts them as a server's certificate chain and trust anchor.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.cert, files.key)
    client = ssl.create_default_context(cafile=str(files.ca))
    assert client.get_ca_certs()[0]["subject"][1][0][1] == "cardiobox development CA"


def test_node_keypair_is_an_openssh_p384_key(tmp_path: Path) -> None:
    keys = node_keypair(tmp_path, "north")
    private = serialization.load_ssh_private_key(keys.private.read_bytes(), None)
    public = serialization.load_ssh_public_key(keys.public.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    assert keys.public.read_text().endswith(" north\n")


def test_node_keypair_never_replaces_a_key_by_default(tmp_path: Path) -> None:
    first = node_keypair(tmp_path, "north").private.read_bytes()
    with pytest.raises(ValueError, match="exists already"):
        node_keypair(tmp_path, "north")
    assert node_keypair(tmp_path, "north", overwrite=True).private.read_bytes() != first
    with pytest.raises(ValueError, match="plain file name"):
        node_keypair(tmp_path, "../north")


def test_authorized_keys_inline_or_as_files(tmp_path: Path) -> None:
    north = node_keypair(tmp_path / "keys", "north")
    south = node_keypair(tmp_path / "keys", "south")
    csv = tmp_path / "keys.csv"
    inline = south.public.read_text().strip()
    csv.write_text(f"site,public_key\nnorth,keys/north.pub\nsouth,{inline}\n")
    keys = read_authorized_keys(csv, tmp_path / "out")
    assert sorted(keys) == ["north", "south"]
    assert keys["north"].read_text().split()[:2] == north.public.read_text().split()[:2]
    assert keys["south"].read_text().strip() == inline


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("north,\n", "needs a site and a public_key"),
        ("north,nope.pub\n", "cannot read"),
        ("north,ecdsa-sha2-nistp384 AAAA\n", "not an OpenSSH public key"),
        ("north,ED25519\n", "NIST curve"),
        ("north,K\nnorth,K\n", "appears twice"),
    ],
)
def test_authorized_keys_refuse_bad_rows(tmp_path: Path, rows: str, message: str) -> None:
    key = node_keypair(tmp_path, "k").public.read_text().strip()
    ed = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    csv = tmp_path / "keys.csv"
    csv.write_text(
        "site,public_key\n" + rows.replace("ED25519", ed.decode()).replace(",K", f",{key}")
    )
    with pytest.raises(InputError, match=message) as err:
        read_authorized_keys(csv, tmp_path / "out")
    assert err.value.location.file == str(csv) and err.value.location.line is not None
