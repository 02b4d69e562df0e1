"""Secrets masked out of SSH output before the agent or the recording sees them.

Pure: no asyncio, sockets or database. The gateway builds `policy.for_session(...)` once per session and
one `Masker` per output stream, feeds it every chunk and flushes it on idle and at end of stream.
"""

from bastion.masking.detectors import BUILTIN_NAMES, Detector
from bastion.masking.policy import CustomRule, MaskingPolicy, MaskingRules, Override, load_masking
from bastion.masking.stream import Masker, mask_bytes

__all__ = [
    "BUILTIN_NAMES",
    "CustomRule",
    "Detector",
    "Masker",
    "MaskingPolicy",
    "MaskingRules",
    "Override",
    "load_masking",
    "mask_bytes",
]
