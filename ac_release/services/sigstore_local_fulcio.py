"""Fulcio and its CT log for the local Sigstore instance: short-lived code-signing certs with one SCT.

Two request shapes are served: v2 (`POST /api/v2/signingCert`, JSON with a CSR; sigstore-python) and the legacy v1
(`POST /api/v1/signingCert`, a PEM public key plus a signed challenge, or a CSR; cosign 2.x) whose answer is a PEM
certificate chain.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ac_release.services import actions_identity
from ac_release.services.sigstore_local_oidc import is_email
from ac_release.services.sigstore_local_state import InstanceState, key_id

LEAF_VALIDITY = dt.timedelta(minutes=10)
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

# RFC 6962 / RFC 5246 constants of the SCT wire format.
_SCT_VERSION_V1 = 0
_SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP = 0
_ENTRY_TYPE_PRECERT = 1
_HASH_SHA256 = 4
_SIGNATURE_ECDSA = 3


class CertificateRequestRejected(Exception):
    """The signing-certificate request is malformed or its key is unacceptable."""


def identity_from_claims(claims: dict) -> str:
    """The token's subject as Fulcio takes it: a verified email if the token has one, else `sub`. The legacy v1
    challenge is a signature over it; the certificate names it, unless the token is GitHub Actions' (`certified`)."""
    email = claims.get("email")
    if email is not None:
        if claims.get("email_verified") is not True:
            raise CertificateRequestRejected("identity token email is not verified")
        return str(email)
    return str(claims["sub"])


def certified(claims: dict) -> tuple[str, dict[str, bytes]]:
    """The certificate's identity and extra extensions (dotted OID -> value). A GitHub Actions token gets the workflow
    URI and GitHub's extensions, as public Fulcio issues them; any other token its email or subject, nothing more."""
    if not actions_identity.is_actions_token(claims):
        return identity_from_claims(claims), {}
    try:
        return actions_identity.certificate_identity(claims), actions_identity.certificate_extensions(claims)
    except KeyError as exc:
        raise CertificateRequestRejected(f"GitHub Actions identity token has no {exc.args[0]!r} claim") from None


def parse_signing_cert_request(body: bytes, bearer_token: str | None) -> tuple[str, x509.CertificateSigningRequest]:
    """Parse Fulcio's v2 `signingCert` JSON body; return the identity token and the CSR."""
    try:
        request = json.loads(body)
        csr_pem = base64.b64decode(request["certificateSigningRequest"], validate=True)
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise CertificateRequestRejected("expected a JSON body with a base64 PEM certificateSigningRequest") from exc
    token = bearer_token or request.get("credentials", {}).get("oidcIdentityToken")
    if not token:
        raise CertificateRequestRejected("no identity token: send it as a Bearer Authorization header")
    return token, csr


def check_proof_of_possession(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    """The CSR's self-signature proves that the requester holds the key to be certified."""
    public_key = _accepted_key(csr.public_key())
    if not csr.is_signature_valid:
        raise CertificateRequestRejected("certificate signing request signature is invalid")
    return public_key


@dataclass(frozen=True)
class LegacyRequest:
    """A v1 request: either a CSR, or a public key with a signature over the identity (Fulcio's challenge)."""

    csr: x509.CertificateSigningRequest | None = None
    public_key: ec.EllipticCurvePublicKey | None = None
    signed_identity: bytes = b""


def parse_legacy_signing_cert_request(body: bytes) -> LegacyRequest:
    """Parse Fulcio's v1 `signingCert` body: `{"publicKey": {"content": b64(PEM)}, "signedEmailAddress": b64(sig)}`
    (Go []byte fields, so base64), or `{"certificateSigningRequest": b64(PEM CSR)}`."""
    try:
        request = json.loads(body)
        if request.get("certificateSigningRequest"):
            csr_pem = base64.b64decode(request["certificateSigningRequest"], validate=True)
            return LegacyRequest(csr=x509.load_pem_x509_csr(csr_pem))
        key_pem = base64.b64decode(request["publicKey"]["content"], validate=True)
        public_key = serialization.load_pem_public_key(key_pem)
        signed_identity = base64.b64decode(request["signedEmailAddress"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise CertificateRequestRejected(
            "expected a JSON body with publicKey.content (base64 PEM) and signedEmailAddress (base64), "
            "or certificateSigningRequest (base64 PEM)"
        ) from exc
    return LegacyRequest(public_key=_accepted_key(public_key), signed_identity=signed_identity)


def check_legacy_proof_of_possession(request: LegacyRequest, identity: str) -> ec.EllipticCurvePublicKey:
    """The key holder signed the identity being certified (v1 challenge), or sent a self-signed CSR."""
    if request.csr is not None:
        return check_proof_of_possession(request.csr)
    public_key = request.public_key
    if public_key is None:
        raise CertificateRequestRejected("no public key in the request")
    try:
        public_key.verify(request.signed_identity, identity.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise CertificateRequestRejected(f"signedEmailAddress is not a signature of {identity!r} by the key") from exc
    return public_key


def _accepted_key(public_key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ACCEPTED_CURVES):
        raise CertificateRequestRejected("only ECDSA P-256, P-384 and P-521 keys are certified")
    return public_key


def issue_signing_certificate(
    state: InstanceState, public_key: ec.EllipticCurvePublicKey, claims: dict, issuer: str
) -> x509.Certificate:
    """A leaf certificate for the token's identity (see `certified`), chained to the instance CA, with one SCT."""
    identity, extensions = certified(claims)
    builder = _leaf_builder(state, public_key, identity, issuer, extensions)
    # The SCT signs the *precertificate* TBS, which a verifier rebuilds from the final certificate by
    # dropping the SCT-list extension (cryptography's `tbs_precertificate_bytes`). So sign once
    # without that extension, sign the SCT over that TBS, then append the SCT list as the last
    # extension of an otherwise identical certificate.
    precertificate = builder.sign(state.ca_key, hashes.SHA256())
    sct = _signed_certificate_timestamp(state, precertificate.tbs_certificate_bytes)
    certificate = builder.add_extension(
        x509.UnrecognizedExtension(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, asn1.encode_der(_sct_list(sct))),
        critical=False,
    ).sign(state.ca_key, hashes.SHA256())
    if certificate.tbs_precertificate_bytes != precertificate.tbs_certificate_bytes:
        raise AssertionError("embedded SCT does not cover the final certificate's TBS")
    return certificate


def signing_cert_response(certificate: x509.Certificate, ca_cert: x509.Certificate) -> dict:
    """Fulcio v2 response body; the client reads signedCertificateEmbeddedSct.chain.certificates."""
    chain = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (certificate, ca_cert)]
    return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}


def legacy_signing_cert_response(certificate: x509.Certificate, ca_cert: x509.Certificate) -> bytes:
    """Fulcio v1 response body (application/pem-certificate-chain): the leaf first, then its chain."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, ca_cert))


def trust_bundle_response(ca_cert: x509.Certificate) -> dict:
    return {"chains": [{"certificates": [ca_cert.public_bytes(serialization.Encoding.PEM).decode()]}]}


def subject_alternative_name(identity: str) -> x509.GeneralName:
    if "://" in identity:
        return x509.UniformResourceIdentifier(identity)
    if is_email(identity):
        return x509.RFC822Name(identity)
    raise CertificateRequestRejected(f"identity {identity!r} is neither an email address nor a URI")


def _leaf_builder(
    state: InstanceState,
    public_key: ec.EllipticCurvePublicKey,
    identity: str,
    issuer: str,
    extensions: Mapping[str, bytes],
) -> x509.CertificateBuilder:
    not_before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_ski = state.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    sigstore_extensions = {
        # 57264.1.1 holds the raw issuer string (what `verify identity --cert-oidc-issuer` checks);
        # 57264.1.8 is its DER UTF8String successor.
        OIDC_ISSUER_OID.dotted_string: issuer.encode(),
        OIDC_ISSUER_V2_OID.dotted_string: asn1.encode_der(issuer),
        **extensions,
    }
    builder = (
        x509.CertificateBuilder()
        # Like Fulcio: an empty subject, the identity lives in the (then critical) SAN.
        .subject_name(x509.Name([]))
        .issuer_name(state.ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + LEAF_VALIDITY)
        .add_extension(_digital_signature_only(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectAlternativeName([subject_alternative_name(identity)]), critical=True)
    )
    for oid in sorted(sigstore_extensions, key=lambda dotted: [int(arc) for arc in dotted.split(".")]):  # as Fulcio
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), sigstore_extensions[oid])
        builder = builder.add_extension(extension, critical=False)
    return builder


def _digital_signature_only() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _signed_certificate_timestamp(state: InstanceState, precertificate_tbs: bytes) -> bytes:
    """One serialized RFC 6962 SCT for a precertificate issued by the instance CA."""
    timestamp_ms = int(time.time() * 1000)
    no_extensions = b""
    signed_data = (
        struct.pack("!BBQH", _SCT_VERSION_V1, _SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP, timestamp_ms, _ENTRY_TYPE_PRECERT)
        + key_id(state.ca_cert.public_key())  # issuer_key_hash: sha256 of the issuer's SPKI
        + _u24_prefixed(precertificate_tbs)
        + _u16_prefixed(no_extensions)
    )
    signature = state.ctlog_key.sign(signed_data, ec.ECDSA(hashes.SHA256()))
    return (
        struct.pack("!B", _SCT_VERSION_V1)
        + key_id(state.ctlog_key.public_key())  # LogID
        + struct.pack("!Q", timestamp_ms)
        + _u16_prefixed(no_extensions)
        + struct.pack("!BB", _HASH_SHA256, _SIGNATURE_ECDSA)
        + _u16_prefixed(signature)
    )


def _sct_list(*serialized_scts: bytes) -> bytes:
    return _u16_prefixed(b"".join(_u16_prefixed(sct) for sct in serialized_scts))


def _u16_prefixed(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _u24_prefixed(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:] + data
