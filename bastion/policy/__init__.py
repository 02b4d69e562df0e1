"""Who may do what on which target: policies/policy.yaml and the decision for every request.

Pure: no asyncio, sockets or database. The gateway loads the policy once (``load_policy(policies_dir)``) and
calls ``policy.decide(roles, target, labels, Request(...))`` for every exec, shell, subsystem, forwarding and
env request; the Decision's ``to_dict()`` goes into the audit event.

Request kinds
-------------
EXEC with verdict READ is ``read``; WRITE, UNKNOWN or no verdict at all is ``write`` (what the classifier did not
prove READ is held as a write, and the reason says "UNKNOWN is treated as WRITE"). SHELL, SFTP and SCP are
``shell``, ``sftp`` and ``scp``; local and remote port forwarding are both ``port_forwarding``; then ``x11``,
``agent_forwarding`` and ``env``.

How a decision is made
----------------------
Within one role, the first target rule whose ``match`` fits the target wins (names are case-sensitive fnmatch
globs, labels must all be equal); a kind that rule does not name is denied, and later rules are not consulted,
so a narrow rule placed first can take rights away from a broad one after it. Across the identity's roles the
most permissive action wins (allow > approve > deny): a role is a grant, and holding one more grant never takes
anything away. When several roles say approve, the single strictest of those rules supplies every approval
parameter: the most approvers, then the shortest approval lifetime, then the shortest wait. Taking them from one
rule (rather than mixing) keeps the rule named in the decision honest about where each number came from, and
choosing the strictest means a second role can never lower the number of humans a first role demanded. Ties
otherwise go to the role whose name sorts first, so the same request always names the same rule.

An identity with no role the policy knows is denied everything by ``default: deny``; role names the policy
does not define are ignored. A missing policy.yaml is an error rather than an empty policy, so a typo in the
path cannot look like a deliberate lock-down.

Environment variables
---------------------
TERM, LANG and LC_* always pass. A rule's ``env`` lists further names or NAME_* prefixes; env requests are
allowed or denied, never held (there is no command to approve yet when a client sends them). Names that would
change how the classified command runs (PATH, BASH_ENV, LD_*, GIT_*, …: see ``bastion.policy.env``) cannot be
granted at all.

Approvers and admin permissions
-------------------------------
``approve`` lists the targets a role may approve for and requires ``approvals.decide`` in the same role, so a
scope without the permission to use it is a configuration error rather than a silent no-op. ``may_approve`` only
checks the scope; refusing self-approval is the approval queue's job.
"""

from bastion.policy.decide import DEFAULT_DENY, Policy, load_policy
from bastion.policy.env import BASE_ENV
from bastion.policy.model import AdminPermission, PolicyFile
from bastion.policy.request import Action, Decision, Kind, Request, RequestKind

__all__ = [
    "BASE_ENV",
    "DEFAULT_DENY",
    "Action",
    "AdminPermission",
    "Decision",
    "Kind",
    "Policy",
    "PolicyFile",
    "Request",
    "RequestKind",
    "load_policy",
]
