"""Persistent key material of the local Sigstore instance (see sigstore_local.py).

Everything that a verifier must keep trusting across restarts lives in the state directory:
the four signing keys, the CA certificate and the instance's creation time and tree id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_VALIDITY = dt.timedelta(days=3650)
CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ac-release.local"),
        x509.NameAttribute(NameOID.COMMON_NAME, "ac-release-local-sigstore"),
    ]
)
# Back-dates the CA and the trust-root validity so that a clock a little behind does not reject them.
CLOCK_SLACK = dt.timedelta(minutes=5)

KEY_NAMES = ("oidc", "ca", "ctlog", "rekor")


@dataclass(frozen=True)
class InstanceState:
    """Key material and identity of one local Sigstore instance."""

    oidc_key: ec.EllipticCurvePrivateKey
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    ctlog_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey
    created: dt.datetime
    tree_id: int

    @property
    def valid_from(self) -> dt.datetime:
        return self.created - CLOCK_SLACK


def spki_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key id (sha256 of the SubjectPublicKeyInfo), as the sigstore client computes it."""
    return hashlib.sha256(spki_der(public_key)).digest()


def load_or_create_state(state_dir: Path) -> InstanceState:
    """Load the instance from `state_dir`, creating whatever is missing on first use."""
    state_dir.mkdir(parents=True, exist_ok=True)
    keys_dir = state_dir / "keys"
    keys_dir.mkdir(mode=0o700, exist_ok=True)
    keys = {name: _load_or_create_key(keys_dir / f"{name}.key.pem") for name in KEY_NAMES}
    instance = _load_or_create_instance_info(state_dir / "instance.json")
    created = dt.datetime.fromisoformat(instance["created"])
    ca_cert = _load_or_create_ca_cert(state_dir / "ca.cert.pem", keys["ca"], created)
    return InstanceState(
        oidc_key=keys["oidc"],
        ca_key=keys["ca"],
        ca_cert=ca_cert,
        ctlog_key=keys["ctlog"],
        rekor_key=keys["rekor"],
        created=created,
        tree_id=int(instance["tree_id"]),
    )


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_file_if_absent(path, pem, mode=0o600)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC private key")
    return key


def _load_or_create_instance_info(path: Path) -> dict:
    if not path.exists():
        info = {
            "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            # Rekor's tree ids are positive int64; it names the log in checkpoints and entry ids.
            "tree_id": secrets.randbelow(2**62) + 1,
        }
        write_file_if_absent(path, json.dumps(info, indent=2).encode() + b"\n", mode=0o644)
    return json.loads(path.read_text())


def _load_or_create_ca_cert(path: Path, ca_key: ec.EllipticCurvePrivateKey, created: dt.datetime) -> x509.Certificate:
    if not path.exists():
        cert = _build_ca_cert(ca_key, created)
        write_file_if_absent(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    if cert.public_key() != ca_key.public_key():
        raise ValueError(f"{path} does not belong to the CA key of this state directory")
    return cert


def _build_ca_cert(ca_key: ec.EllipticCurvePrivateKey, created: dt.datetime) -> x509.Certificate:
    not_before = created - CLOCK_SLACK
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(CA_NAME)
        .issuer_name(CA_NAME)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def write_file_if_absent(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` atomically with `mode`, unless another writer got there first."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            # link() fails if the file exists: two processes initialising the same state
            # directory agree on whichever file landed first.
            os.link(tmp_name, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp_name)
