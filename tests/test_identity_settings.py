"""Identity settings refuse unsafe or mistyped configuration at load and resolve paths from the config dir."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import ValidationError

from bastion.errors import ConfigError
from bastion.identity import IdentitySettings, jwk_thumbprint
from bastion.identity.keys import issuer_keys


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")], check=True)
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    (tmp_path / "issuer.pub").write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return tmp_path


def settings(**changes: Any) -> dict[str, Any]:
    issuer = {"issuer": "https://idp.example", "public_keys": ["issuer.pub"], **changes.pop("issuer", {})}
    return {"trusted_user_cas": ["ca.pub"], "issuers": [issuer], **changes}


def test_defaults_and_relative_paths(config_dir: Path) -> None:
    loaded = IdentitySettings.model_validate(settings()).resolve(config_dir)
    assert loaded.trusted_user_cas == [config_dir / "ca.pub"]
    assert loaded.issuers[0].public_keys == [config_dir / "issuer.pub"]
    assert loaded.issuers[0].algorithms == ["RS256", "ES256", "EdDSA"]
    assert (loaded.token_extension, loaded.roles_claim, loaded.clock_skew_s) == ("token@bastion", "roles", 60)
    assert (loaded.issuers[0].audience, loaded.require_key_binding) == ("bastion", False)


def test_absolute_paths_are_kept(config_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    raw = settings(
        trusted_user_cas=[str(config_dir / "ca.pub")],
        issuer={"public_keys": [str(config_dir / "issuer.pub")]},
    )
    loaded = IdentitySettings.model_validate(raw).resolve(tmp_path_factory.mktemp("elsewhere"))
    assert loaded.trusted_user_cas == [config_dir / "ca.pub"]


@pytest.mark.parametrize(
    "raw",
    [
        settings(token_extention="typo"),
        settings(issuer={"audiance": "typo"}),
        settings(clock_skew_s=61),
        settings(clock_skew_s=-1),
        settings(issuer={"algorithms": ["none"]}),
        settings(issuer={"algorithms": ["NONE"]}),
        settings(issuer={"algorithms": ["RS1"]}),
        settings(issuer={"algorithms": []}),
        settings(issuer={"algorithms": ["HS256"]}),
        settings(issuer={"algorithms": ["RS256"], "public_keys": []}),
        settings(trusted_user_cas=[]),
        settings(issuers=[]),
        settings(principals=["a b"]),
        {
            "trusted_user_cas": ["ca.pub"],
            "issuers": [{"issuer": "x", "public_keys": ["a.pem"]}, {"issuer": "x", "public_keys": ["b.pem"]}],
        },
    ],
)
def test_invalid_settings_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IdentitySettings.model_validate(raw)


def test_hmac_needs_a_shared_secret_env_and_the_env_must_be_set(config_dir: Path) -> None:
    raw = settings(
        issuer={"algorithms": ["HS256"], "public_keys": [], "shared_secret_env": "BASTION_TEST_HS"}
    )
    parsed = IdentitySettings.model_validate(raw)
    os.environ.pop("BASTION_TEST_HS", None)
    with pytest.raises(ConfigError, match="BASTION_TEST_HS"):
        parsed.resolve(config_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trusted_user_cas": ["missing.pub"]}, "missing.pub"),
        ({"trusted_user_cas": ["issuer.pub"]}, "not an OpenSSH public key"),
        ({"issuer": {"public_keys": ["ca.pub"]}}, "not a PEM public key"),
    ],
)
def test_unreadable_key_files_fail_at_load(config_dir: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IdentitySettings.model_validate(settings(**change)).resolve(config_dir)


def test_jwks_file_keys_with_kid_and_alg(config_dir: Path) -> None:
    import jwt

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key)), "kid": "r1", "alg": "RS256"},
        {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc-only"},
        {"kty": "unknown-kind", "kid": "skipped"},
    ]
    (config_dir / "jwks.json").write_text(json.dumps({"keys": keys}))
    loaded = IdentitySettings.model_validate(
        settings(issuer={"public_keys": [], "jwks_file": "jwks.json"})
    ).resolve(config_dir)
    [key] = issuer_keys(loaded.issuers[0])
    assert (key.kid, key.alg) == ("r1", "RS256")
    assert jwk_thumbprint(key.key) == jwk_thumbprint(rsa_key)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not a JWKS"),
        ('{"keys": []}', "no usable signing key"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric"),
    ],
)
def test_bad_jwks_file_fails_at_load(config_dir: Path, document: str, message: str) -> None:
    (config_dir / "jwks.json").write_text(document)
    raw = settings(issuer={"public_keys": [], "jwks_file": "jwks.json"})
    with pytest.raises(ConfigError, match=message):
        IdentitySettings.model_validate(raw).resolve(config_dir)


def test_role_map_empty_means_names_as_they_are(config_dir: Path) -> None:
    plain = IdentitySettings.model_validate(settings())
    mapped = IdentitySettings.model_validate(settings(role_map={"sre": ["operator"]}))
    assert plain.map_roles(frozenset({"operator", "x"})) == {"operator", "x"}
    assert mapped.map_roles(frozenset({"operator", "sre", "x"})) == {"operator"}
    assert mapped.map_roles(frozenset({"operator"})) == frozenset()
