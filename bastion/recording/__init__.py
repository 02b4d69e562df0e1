"""Session recordings in asciicast v2: a pure encoder and a file sink."""

from bastion.recording.asciicast import CastEncoder, CastHeader
from bastion.recording.sink import RecordingSink

__all__ = ["CastEncoder", "CastHeader", "RecordingSink"]
