"""The one exception family for errors meant for users.

Every message is a single line that is safe to show: it never contains a credential, a token or a key.
The command line and the SSH edge turn these into `bastion: <message>` and an exit status.
"""


class BastionError(Exception):
    """An error a user can act on; `str(err)` is the one-line message."""


class ConfigError(BastionError):
    """bastion.yaml or a policy file is missing or invalid."""


class NotFound(BastionError):
    """A named object (target, session, approval…) does not exist."""


class Refused(BastionError):
    """A request was refused on purpose (policy, host key mismatch, revoked identity…)."""


class StoreError(BastionError):
    """The database or a recording could not be written: the action it guards must not happen."""
