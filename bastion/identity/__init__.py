"""Who is connecting: an OpenSSH user certificate from a trusted CA, carrying the IdP's JWT.

Pure: nothing here opens a socket or a database. The asyncssh hook that hands the certificate to this code
lives in `bastion.identity.certext`, imported only by the gateway, so the core never imports asyncssh.
"""

from bastion.identity.certificate import CertInfo, RevocationCheck, authenticate, verify_certificate
from bastion.identity.model import Identity, IdentityRefused
from bastion.identity.settings import IdentitySettings, IssuerSettings
from bastion.identity.token import VerifiedToken, jwk_thumbprint, verify_token

__all__ = [
    "CertInfo",
    "Identity",
    "IdentityRefused",
    "IdentitySettings",
    "IssuerSettings",
    "RevocationCheck",
    "VerifiedToken",
    "authenticate",
    "jwk_thumbprint",
    "verify_certificate",
    "verify_token",
]
