"""Unit tests of the gateway's request shapes that need no server."""

from __future__ import annotations

import pytest

from bastion.classify.scp import is_legacy_scp


@pytest.mark.parametrize("text", ["scp -t /tmp/x", "scp -f '/tmp/a b'", "scp -r -t /tmp", "scp -v -d -t -- /srv/f",
                                  "scp -tr /tmp/x"])
def test_the_legacy_scp_server_side_is_recognised(text: str) -> None:
    assert is_legacy_scp(text)


@pytest.mark.parametrize("text", ["scp -f /dev/null; touch /tmp/x", "scp -t $(id)", "scp -t /tmp/x && rm -rf /",
                                  "scp -t `id`", "scp -f /a\ntouch /b", "scp host:/a /b", "scp -t", "scp -x -t /a",
                                  "/usr/bin/scp -t /a", "scp -t /a | sh"])
def test_anything_else_is_classified_as_a_command(text: str) -> None:
    assert not is_legacy_scp(text)
