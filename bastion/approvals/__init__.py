"""Approvals: the pure state machine (`machine`) and the store-backed queue shared by bastion processes (`queue`)."""

from bastion.approvals.machine import Approval, ApprovalError, Approver, State
from bastion.approvals.queue import ApprovalQueue

__all__ = ["Approval", "ApprovalError", "ApprovalQueue", "Approver", "State"]
