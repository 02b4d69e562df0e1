"""Verifying the IdP's JWT carried in the agent's certificate.

The issuer is chosen by the token's unverified `iss`, but nothing else is trusted before the signature checks
out: the algorithm must be on that issuer's allowlist (so `none` and HMAC-with-a-public-key never reach a
verifier), and symmetric algorithms are only ever given the issuer's explicitly configured shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from bastion.errors import ConfigError
from bastion.identity.keys import VerificationKey, issuer_keys
from bastion.identity.model import IdentityRefused
from bastion.identity.settings import HMAC_ALGORITHMS, IdentitySettings, IssuerSettings

# Far above any real JWT, far below what would make parsing a cost an attacker could impose.
MAX_TOKEN_LENGTH = 16 * 1024

_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS": (rsa.RSAPublicKey,),
    "PS": (rsa.RSAPublicKey,),
    "ES": (ec.EllipticCurvePublicKey,),
    "Ed": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}


@dataclass(frozen=True)
class VerifiedToken:
    """The claims bastion uses, from a token whose signature, issuer, audience and times all checked out."""

    subject: str
    display_name: str | None
    roles: frozenset[str]
    expires: datetime
    jti: str | None
    issuer: str


def verify_token(
    token: str,
    settings: IdentitySettings,
    *,
    cert_public_key: PublicKeyTypes,
    now: datetime | None = None,
) -> VerifiedToken:
    """Verify `token` for the agent holding `cert_public_key`; raises IdentityRefused with its reason."""
    if not token:
        raise IdentityRefused("no-token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise IdentityRefused("bad-token")
    header, unverified = _unverified(token)
    issuer = settings.issuer(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
    if issuer is None:
        raise IdentityRefused("wrong-issuer")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in issuer.algorithms:
        raise IdentityRefused("alg-not-allowed")
    claims = _verified_claims(token, issuer, alg, header.get("kid"))
    expires = _check_times(claims, settings.clock_skew_s, now)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdentityRefused("no-sub")
    _check_key_binding(claims, settings.require_key_binding, cert_public_key)
    jti = claims.get("jti")
    return VerifiedToken(
        subject=subject,
        display_name=_display_name(claims),
        roles=settings.map_roles(_role_names(claims, settings.roles_claim)),
        expires=datetime.fromtimestamp(expires, UTC),
        jti=jti if isinstance(jti, str) else None,
        issuer=issuer.issuer,
    )


def jwk_thumbprint(public_key: PublicKeyTypes) -> str:
    """RFC 7638 thumbprint (base64url SHA-256, no padding) of `public_key` as a JWK: what `cnf.jkt` names."""
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        crv = "Ed25519" if isinstance(public_key, ed25519.Ed25519PublicKey) else "Ed448"
        members = {"crv": crv, "kty": "OKP", "x": _b64(_raw(public_key))}
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_CURVES:
            raise ValueError(f"no JWK curve name for {public_key.curve.name}")
        size = (public_key.curve.key_size + 7) // 8
        numbers = public_key.public_numbers()
        members = {
            "crv": _EC_CURVES[public_key.curve.name],
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(size, "big")),
            "y": _b64(numbers.y.to_bytes(size, "big")),
        }
    elif isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        members = {"e": _b64(_uint(numbers.e)), "kty": "RSA", "n": _b64(_uint(numbers.n))}
    else:
        raise ValueError(f"no JWK form for {type(public_key).__name__}")
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise IdentityRefused("bad-token") from None
    return header, claims


def _verified_claims(token: str, issuer: IssuerSettings, alg: str, kid: object) -> dict[str, Any]:
    """Claims of a token signed by one of the issuer's keys, with `iss` and `aud` checked by pyjwt."""
    for key in _candidate_keys(issuer, alg, kid):
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=issuer.audience,
                issuer=issuer.issuer,
                # Times are checked by _check_times against an injectable clock.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
            continue
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError):
            raise IdentityRefused("wrong-audience") from None
        except jwt.InvalidIssuerError:
            raise IdentityRefused("wrong-issuer") from None
        except jwt.InvalidSubjectError:
            raise IdentityRefused("no-sub") from None
        except jwt.PyJWTError:
            raise IdentityRefused("bad-token") from None
    raise IdentityRefused("bad-signature")


def _candidate_keys(issuer: IssuerSettings, alg: str, kid: object) -> list[Any]:
    """The keys worth trying: a `kid` picks its JWKS key; PEM files carry no kid and are tried in turn."""
    if alg in HMAC_ALGORITHMS:
        try:
            return [issuer.shared_secret()]
        except ConfigError:
            raise IdentityRefused("issuer-key-unavailable") from None
    keys = issuer_keys(issuer)
    if kid is not None:
        keys = [k for k in keys if k.kid == kid] or [k for k in keys if k.kid is None]
        if not keys:
            raise IdentityRefused("unknown-kid")
    return [k.key for k in keys if _fits(k, alg)]


def _fits(key: VerificationKey, alg: str) -> bool:
    return (key.alg is None or key.alg == alg) and isinstance(key.key, _KEY_TYPES.get(alg[:2], ()))


def _check_times(claims: Mapping[str, Any], skew: int, now: datetime | None) -> float:
    """Apply `exp`, `nbf` and `iat` with `skew` seconds of leeway; returns `exp`."""
    t = now.timestamp() if now is not None else time.time()
    exp, nbf, iat = (_number(claims, name) for name in ("exp", "nbf", "iat"))
    if exp is None:
        raise IdentityRefused("no-exp")
    if t >= exp + skew:
        raise IdentityRefused("token-expired")
    if nbf is not None and nbf > t + skew:
        raise IdentityRefused("token-not-yet-valid")
    if iat is not None and iat > t + skew:
        raise IdentityRefused("token-issued-in-future")
    return exp


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdentityRefused("bad-token")
    return float(value)


def _check_key_binding(claims: Mapping[str, Any], required: bool, public_key: PublicKeyTypes) -> None:
    cnf = claims.get("cnf")
    if cnf is not None and not isinstance(cnf, dict):
        raise IdentityRefused("bad-token")
    jkt = (cnf or {}).get("jkt")
    if jkt is None:
        if required:
            raise IdentityRefused("key-binding-required")
        return
    try:
        expected = jwk_thumbprint(public_key)
    except ValueError:
        raise IdentityRefused("unsupported-key") from None
    if not isinstance(jkt, str) or not hmac.compare_digest(jkt.encode(), expected.encode()):
        raise IdentityRefused("key-binding-mismatch")


def _role_names(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """Names in the roles claim; a dotted name reaches into nested objects (`realm_access.roles`)."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _display_name(claims: Mapping[str, Any]) -> str | None:
    for name in ("email", "name"):
        if isinstance(claims.get(name), str) and claims[name]:
            return claims[name]
    return None


def _raw(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
