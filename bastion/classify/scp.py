"""The far side of the legacy scp protocol, recognised exactly so policy can treat it as a transfer."""

from __future__ import annotations

import re

# What the legacy scp client asks the far side to run: `scp [-v -d -p -r] -t|-f [--] PATH`, the path a plain
# word or one single-quoted string. Anything else (a second command, an expansion) is classified as usual.
_SCP = re.compile(r"scp(?: -[dprv]+)* -[dprv]*[tf][dprv]*(?: -[dprv]+)*(?: --)? (?:'[^']*'|[\w./~@%+,:=-]+)")


def is_legacy_scp(text: str) -> bool:
    return _SCP.fullmatch(text) is not None
