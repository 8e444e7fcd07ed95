"""The TLS material of a target's own services: a CA made here and a server certificate for 127.0.0.1/localhost.

The CA's private key signs the server certificate and is then dropped, never written: nothing can issue another
certificate under this CA. A new server certificate (expired, or another host) comes with a new CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ac_release.core.fsutil import atomic_write_bytes

VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=7)


def ensure_server_certificate(ca_file: Path, cert_file: Path, key_file: Path, host: str) -> bool:
    """Make the CA and the server certificate unless valid ones for `host` exist; True when they were (re)made."""
    if _still_valid(ca_file, cert_file, key_file, host):
        return False
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ac-release services CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if host not in ("localhost", "127.0.0.1"):
        names.append(_san(host))
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write_bytes(key_file, key_pem, mode=0o600)
    atomic_write_bytes(cert_file, server.public_bytes(serialization.Encoding.PEM))
    atomic_write_bytes(ca_file, ca.public_bytes(serialization.Encoding.PEM))
    return True


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _still_valid(ca_file: Path, cert_file: Path, key_file: Path, host: str) -> bool:
    if not (ca_file.is_file() and cert_file.is_file() and key_file.is_file()):
        return False
    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        server = x509.load_pem_x509_certificate(cert_file.read_bytes())
        server.verify_directly_issued_by(ca)
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # unreadable, not issued by this CA, no SAN: make new ones
        return False
    wanted = x509.DNSName("localhost") if host == "localhost" else _san(host)
    renew = datetime.datetime.now(datetime.UTC) + RENEW_BEFORE
    return wanted in names and min(ca.not_valid_after_utc, server.not_valid_after_utc) > renew
