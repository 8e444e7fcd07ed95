"""Identity tokens of the local Sigstore instance: ES256 JWTs signed and checked with its OIDC key."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ac_release.services.sigstore_local_state import key_id

AUDIENCE = "sigstore"
CLOCK_LEEWAY_S = 30
_P256_COORDINATE_BYTES = 32


class InvalidToken(Exception):
    """The identity token is malformed, not ours, or not valid now."""


def issue_token(
    key: ec.EllipticCurvePrivateKey, issuer: str, identity: str, lifetime_s: int, now: int | None = None
) -> str:
    """A signed identity token for `identity`, in the shape the sigstore client and Fulcio expect."""
    if lifetime_s <= 0:
        raise ValueError("lifetime_s must be positive")
    issued_at = int(time.time()) if now is None else now
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": identity,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime_s,
        "jti": secrets.token_hex(16),
    }
    if is_email(identity):
        claims |= {"email": identity, "email_verified": True}
    return sign_claims(key, claims)


def sign_claims(key: ec.EllipticCurvePrivateKey, claims: dict) -> str:
    """`claims` as an ES256 JWT signed with `key`."""
    header = {"alg": "ES256", "typ": "JWT", "kid": token_key_id(key.public_key())}
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    raw_signature = r.to_bytes(_P256_COORDINATE_BYTES, "big") + s.to_bytes(_P256_COORDINATE_BYTES, "big")
    return f"{signing_input.decode()}.{_b64url(raw_signature)}"


def verify_token(public_key: ec.EllipticCurvePublicKey, token: str, issuer: str) -> dict:
    """Check signature, issuer, audience and validity period; return the claims."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(claims_b64))
        raw_signature = _b64url_decode(signature_b64)
    except (ValueError, binascii.Error) as exc:
        raise InvalidToken("malformed identity token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed identity token")
    if header.get("alg") != "ES256" or len(raw_signature) != 2 * _P256_COORDINATE_BYTES:
        raise InvalidToken("identity token must be signed with ES256")
    _verify_es256(public_key, f"{header_b64}.{claims_b64}".encode(), raw_signature)
    _check_claims(claims, issuer)
    return claims


def is_email(identity: str) -> bool:
    return "@" in identity and "://" not in identity


def token_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    return key_id(public_key)[:8].hex()


def _verify_es256(public_key: ec.EllipticCurvePublicKey, signing_input: bytes, raw_signature: bytes) -> None:
    r = int.from_bytes(raw_signature[:_P256_COORDINATE_BYTES], "big")
    s = int.from_bytes(raw_signature[_P256_COORDINATE_BYTES:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise InvalidToken("identity token signature is not from this instance") from exc


def _check_claims(claims: dict, issuer: str) -> None:
    if claims.get("iss") != issuer:
        raise InvalidToken(f"identity token issuer is not {issuer!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if AUDIENCE not in audiences:
        raise InvalidToken(f"identity token audience does not include {AUDIENCE!r}")
    now = time.time()
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires + CLOCK_LEEWAY_S < now:
        raise InvalidToken("identity token has expired")
    not_before = claims.get("nbf", claims.get("iat"))
    if not isinstance(not_before, int) or not_before - CLOCK_LEEWAY_S > now:
        raise InvalidToken("identity token is not valid yet")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("identity token has no subject")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: dict) -> str:
    return _b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
