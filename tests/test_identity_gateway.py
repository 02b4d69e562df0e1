"""The identity matrix end to end: real `ssh` → `bastion serve` → real sshd, certificates from real `ssh-keygen -s`
and `bastion cert issue`, tokens made here. Every refusal is checked on both sides: nothing ran on the target,
and the audit event names the reason, while the client learns only "Permission denied"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.identity.issue import load_public_key
from bastion.identity.token import jwk_thumbprint
from tests.harness import DEMO_ISSUER, Agent, Bastion, keygen


def _claims(subject: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": DEMO_ISSUER, "aud": "bastion", "sub": subject, "roles": ["tester"], "iat": now, "nbf": now,
              "exp": now + 600, "jti": secrets.token_hex(8), **changes}
    return {name: value for name, value in claims.items() if value is not None}


def _issuer_key(bastion: Bastion) -> Any:
    return serialization.load_pem_private_key((bastion.dir / "issuer.key").read_bytes(), password=None)


def _signed(bastion: Bastion, subject: str, key: Any = None, **changes: Any) -> str:
    return jwt.encode(_claims(subject, **changes), key or _issuer_key(bastion), algorithm="EdDSA")


def _hs256_with_issuer_public_key(bastion: Bastion, subject: str) -> str:
    """HMAC keyed with the issuer's public PEM: the key-confusion attack (pyjwt refuses to make it)."""
    segments = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
                for part in ({"alg": "HS256", "typ": "JWT"}, _claims(subject))]
    signing_input = b".".join(segments)
    mac = hmac.new((bastion.dir / "issuer.pub").read_bytes(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def _other_key_thumbprint() -> str:
    return jwk_thumbprint(ed25519.Ed25519PrivateKey.generate().public_key())


def _events(bastion: Bastion, kind: str) -> list[tuple[str | None, dict[str, Any]]]:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    try:
        rows = db.execute("select subject, details from audit_event where type = ? order by seq", (kind,)).fetchall()
    finally:
        db.close()
    return [(subject, json.loads(details)) for subject, details in rows]


def _failure_reasons(bastion: Bastion, key_id: str) -> set[str]:
    return {d["reason"] for _, d in _events(bastion, "auth.failure") if d.get("cert_key_id") == key_id}


def _wait_for_closed_session(bastion: Bastion, subject: str, limit: float = 30.0) -> str:
    """The recording of the subject's one session, once the bastion has closed it (and so its recording)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        db = sqlite3.connect(bastion.dir / "bastion.db")
        try:
            row = db.execute("select recording, ended from sessions where subject = ?", (subject,)).fetchone()
        finally:
            db.close()
        if row is not None and row[1] is not None:
            return row[0]
        time.sleep(0.05)
    raise AssertionError(f"the session of {subject} was not closed within {limit} s")


def _sessions(bastion: Bastion, subject: str) -> int:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    try:
        return db.execute("select count(*) from sessions where subject = ?", (subject,)).fetchone()[0]
    finally:
        db.close()


def _audit_text(bastion: Bastion) -> str:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    try:
        return "\n".join(" ".join(str(c) for c in row) for row in db.execute("select * from audit_event"))
    finally:
        db.close()


def _assert_token_kept_secret(bastion: Bastion, token: str) -> None:
    signature = token.rsplit(".", 1)[-1]
    for where, text in (("audit table", _audit_text(bastion)), ("serve log", bastion.log())):
        assert token not in text, f"the token is in the {where}"
        if len(signature) > 16:
            assert signature not in text, f"the token's signature is in the {where}"


def _fingerprint(agent: Agent) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{agent.key}.pub"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def _assert_runs(bastion: Bastion, agent: Agent, tmp_path: Path) -> None:
    marker = tmp_path / f"ran-{agent.subject}"
    result = bastion.ssh(agent, "web-1", f"touch {marker}; echo in")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"in\n"
    assert marker.exists()
    assert _sessions(bastion, agent.subject) == 1
    assert any(subject == agent.subject for subject, _ in _events(bastion, "auth.success"))


def _assert_refused(bastion: Bastion, agent: Agent, reason: str, tmp_path: Path, token: str | None = None) -> None:
    marker = tmp_path / f"ran-{agent.subject}"
    result = bastion.ssh(agent, "web-1", f"touch {marker}")
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert reason.encode() not in result.stderr and b"bastion:" not in result.stderr
    assert not marker.exists()
    assert _sessions(bastion, agent.subject) == 0
    assert _failure_reasons(bastion, agent.subject) == {reason}
    if token:
        _assert_token_kept_secret(bastion, token)


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("rogue") / "rogue_ca")


def test_ssh_keygen_certificate_gets_in(bastion: Bastion, tmp_path: Path) -> None:
    token = bastion.token("id-keygen", ["tester"])
    agent = bastion.agent("id-keygen", token=token)
    _assert_runs(bastion, agent, tmp_path)
    success = [d for s, d in _events(bastion, "auth.success") if s == "id-keygen"][-1]
    assert success["cert_key_id"] == "id-keygen"
    assert success["key_fingerprint"] == _fingerprint(agent)
    assert success["jti"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    _assert_token_kept_secret(bastion, token)


def test_bastion_issued_certificate_gets_in(bastion: Bastion, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id-issued")
    token = bastion.cli("token", "issue", "--sub", "id-issued", "--roles", "tester,ops", "--ttl", "10m",
                        "--pubkey", f"{key}.pub").stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == jwk_thumbprint(load_public_key(Path(f"{key}.pub")))
    assert claims["roles"] == ["ops", "tester"]
    issued = bastion.cli("cert", "issue", "--token", "-", "--pubkey", f"{key}.pub", "--validity", "2h",
                         "-o", f"{key}-cert.pub", input=token.encode())
    assert "capped at the token's expiry" in issued.stderr
    assert token not in issued.stdout + issued.stderr
    cert = serialization.load_ssh_public_identity(Path(f"{key}-cert.pub").read_bytes())
    assert isinstance(cert, serialization.SSHCertificate)
    assert cert.valid_before <= claims["exp"]
    assert f"serial {cert.serial}," in issued.stderr
    _assert_runs(bastion, Agent(key, Path(f"{key}-cert.pub"), "id-issued"), tmp_path)
    _assert_token_kept_secret(bastion, token)


def test_cert_issue_refuses_a_token_the_gateway_would_refuse(bastion: Bastion, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id-bound-elsewhere")
    token = bastion.token("id-bound-elsewhere", ["tester"], pubkey=load_public_key(bastion.dir / "user_ca.pub"))
    (tmp_path / "token").write_text(token + "\n")
    result = bastion.cli("cert", "issue", "--token", str(tmp_path / "token"), "--pubkey", f"{key}.pub",
                         "-o", f"{key}-cert.pub", check=False)
    assert result.returncode == 1
    assert result.stderr == "bastion: the token does not verify (key-binding-mismatch); no certificate issued\n"
    assert not Path(f"{key}-cert.pub").exists()


TOKEN_REFUSALS: dict[str, tuple[Callable[[Bastion, str], str], str]] = {
    "unknown signing key": (lambda b, s: _signed(b, s, key=ed25519.Ed25519PrivateKey.generate()), "bad-signature"),
    "expired": (lambda b, s: _signed(b, s, exp=int(time.time()) - 300), "token-expired"),
    "not yet valid": (lambda b, s: _signed(b, s, nbf=int(time.time()) + 300), "token-not-yet-valid"),
    "wrong iss": (lambda b, s: _signed(b, s, iss="https://evil.example"), "wrong-issuer"),
    "wrong aud": (lambda b, s: _signed(b, s, aud="elsewhere"), "wrong-audience"),
    "no sub": (lambda b, s: _signed(b, s, sub=None), "no-sub"),
    "alg none": (lambda b, s: jwt.encode(_claims(s), None, algorithm="none"), "alg-not-allowed"),
    "HS256 with the issuer's public key": (_hs256_with_issuer_public_key, "alg-not-allowed"),
    "garbage extension": (lambda b, s: "not-a-jwt-at-all", "bad-token"),
    "cnf.jkt of another key": (lambda b, s: _signed(b, s, cnf={"jkt": _other_key_thumbprint()}),
                               "key-binding-mismatch"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_REFUSALS))
def test_bad_token_is_refused(bastion: Bastion, tmp_path: Path, case: str) -> None:
    make, reason = TOKEN_REFUSALS[case]
    subject = "id-tok-" + case.replace(" ", "-").replace("'", "").replace(".", "")
    token = make(bastion, subject)
    agent = bastion.agent(subject, token=token)
    _assert_refused(bastion, agent, reason, tmp_path, token)


def test_certificate_without_the_extension_is_refused(bastion: Bastion, tmp_path: Path) -> None:
    _assert_refused(bastion, bastion.agent("id-no-extension", extension=""), "no-token", tmp_path)


def test_expired_certificate_is_refused(bastion: Bastion, tmp_path: Path) -> None:
    token = bastion.token("id-cert-expired", ["tester"])
    agent = bastion.agent("id-cert-expired", token=token, validity="20200101:20200102")
    _assert_refused(bastion, agent, "cert-expired", tmp_path, token)


def test_untrusted_ca_is_refused(bastion: Bastion, tmp_path: Path, rogue_ca: Path) -> None:
    token = bastion.token("id-rogue-ca", ["tester"])
    _assert_refused(bastion, bastion.agent("id-rogue-ca", token=token, ca=rogue_ca), "untrusted-ca", tmp_path, token)


@pytest.mark.parametrize("what", ["jti", "serial", "key"])
def test_revoked_credentials_are_refused_at_login(bastion: Bastion, tmp_path: Path, what: str) -> None:
    subject = f"id-revoked-{what}"
    token = bastion.token(subject, ["tester"])
    agent = bastion.agent(subject, token=token, serial=secrets.randbits(62))
    value = {
        "jti": lambda: jwt.decode(token, options={"verify_signature": False})["jti"],
        "serial": lambda: str(_serial(agent)),
        "key": lambda: _fingerprint(agent),
    }[what]()
    flag = {"jti": "--jti", "serial": "--serial", "key": "--key-fingerprint"}[what]
    result = bastion.cli("revoke", flag, value, "--reason", f"test {what}")
    assert result.stdout.endswith(f" {value} revoked\n")
    _assert_refused(bastion, agent, "revoked", tmp_path, token)
    added = [d for _, d in _events(bastion, "revocation.added") if d["value"] == value]
    assert added == [{"kind": what, "value": value, "reason": f"test {what}"}]
    listed = bastion.cli("revoke", "list").stdout
    assert any(line.split()[:2] == [what, value] for line in listed.splitlines())


def _serial(agent: Agent) -> int:
    cert = serialization.load_ssh_public_identity(agent.cert.read_bytes())
    assert isinstance(cert, serialization.SSHCertificate)
    return cert.serial


@pytest.fixture
def control_path() -> Iterator[Path]:
    """A short socket path (unix sockets are limited to about 100 bytes, test temp dirs can be longer)."""
    with tempfile.TemporaryDirectory(prefix="bcm-") as directory:
        yield Path(directory) / "m"


def test_revoking_a_live_connection_refuses_its_next_channel(bastion: Bastion, tmp_path: Path,
                                                             control_path: Path) -> None:
    agent = bastion.agent("id-live-revoked", serial=secrets.randbits(62))
    mux = ("-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}", "-o", "ControlPersist=60")
    try:
        first = bastion.ssh(agent, "web-1", f"touch {tmp_path / 'ran-first'}; echo first", *mux)
        assert first.stdout == b"first\n", first.stderr
        assert (tmp_path / "ran-first").exists()
        assert control_path.exists()
        bastion.cli("revoke", "--serial", str(_serial(agent)))
        marker = tmp_path / "ran-second"
        second = bastion.ssh(agent, "web-1", f"touch {marker}", *mux)
        assert second.returncode == 255
        assert b"bastion: credentials revoked" in second.stderr
        assert not marker.exists()
        assert _sessions(bastion, agent.subject) == 1
        refusals = [d for s, d in _events(bastion, "auth.failure") if s == agent.subject]
        assert [(d["reason"], d["stage"], d["cert_serial"]) for d in refusals] == [
            ("revoked", "channel", _serial(agent))]
    finally:
        subprocess.run([*bastion.ssh_args(agent, "web-1", "-o", f"ControlPath={control_path}", "-O", "exit")],
                       capture_output=True, timeout=30)


def test_token_expiring_mid_session_ends_it_with_a_line(bastion: Bastion) -> None:
    token = bastion.token("id-expiring", ["tester"], ttl=timedelta(seconds=5))
    agent = bastion.agent("id-expiring", token=token)
    result = bastion.ssh(agent, "web-1", "sleep 30; echo should-not-print", timeout=120)
    assert result.returncode == 255
    assert b"bastion: token expired\n" in result.stderr
    assert b"should-not-print" not in result.stdout
    recording = _wait_for_closed_session(bastion, "id-expiring")
    events = [json.loads(line) for line in (bastion.dir / "recordings" / recording).read_text().splitlines()[1:]]
    assert any(e[1] == "o" and "bastion: token expired" in e[2] for e in events)
    _assert_token_kept_secret(bastion, token)


@pytest.mark.parametrize(("args", "message"), [
    (("--serial", "12a"), "bastion: --serial '12a': expected a certificate serial (0 to 18446744073709551615)\n"),
    (("--key-fingerprint", "MD5:aa"),
     "bastion: --key-fingerprint 'MD5:aa': expected SHA256:… as ssh-keygen -l prints it\n"),
    ((), "bastion: name what to revoke: --jti ID, --serial N or --key-fingerprint SHA256:…\n"),
    (("list", "--jti", "x"), "bastion: 'revoke list' takes no --jti, --serial, --key-fingerprint or --reason\n"),
])
def test_revoke_refuses_malformed_requests_in_one_line(bastion: Bastion, args: tuple[str, ...], message: str) -> None:
    before = len(_events(bastion, "revocation.added"))
    result = bastion.cli("revoke", *args, check=False)
    assert (result.returncode, result.stderr) == (1, message)
    assert len(_events(bastion, "revocation.added")) == before


def test_revoking_twice_is_harmless_and_audited_once(bastion: Bastion) -> None:
    assert bastion.cli("revoke", "--serial", "0077").stdout == "bastion: certificate serial 77 revoked\n"
    assert bastion.cli("revoke", "--serial", "77").stdout == "bastion: certificate serial 77 was already revoked\n"
    assert [d for _, d in _events(bastion, "revocation.added") if d["value"] == "77"] == [
        {"kind": "serial", "value": "77", "reason": ""}]
    assert bastion.cli("audit", "verify").returncode == 0
