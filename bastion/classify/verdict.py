"""The classifier's answer: a verdict and the reasons that decided it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["READ", "WRITE", "UNKNOWN"]
_MAX_REASONS = 20


@dataclass(frozen=True, slots=True)
class Verdict:
    """READ only when every part of the command was proven read-only; UNKNOWN is treated as WRITE."""

    command: str
    verdict: Level
    reasons: list[str] = field(default_factory=list)

    @property
    def is_read(self) -> bool:
        return self.verdict == "READ"

    def to_dict(self) -> dict[str, object]:
        return {"command": self.command, "verdict": self.verdict, "reasons": list(self.reasons)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


class Findings:
    """Collects WRITE and UNKNOWN findings while walking; READ is what remains when there are none."""

    __slots__ = ("programs", "unknown", "write")

    def __init__(self) -> None:
        self.write: list[str] = []
        self.unknown: list[str] = []
        self.programs: list[str] = []

    def add_write(self, reason: str) -> None:
        if len(self.write) < _MAX_REASONS and reason not in self.write:
            self.write.append(reason)

    def add_unknown(self, reason: str) -> None:
        if len(self.unknown) < _MAX_REASONS and reason not in self.unknown:
            self.unknown.append(reason)

    def verdict(self, command: str) -> Verdict:
        if self.write:
            return Verdict(command, "WRITE", [f"WRITE: {r}" for r in self.write] + self._unknown_reasons())
        if self.unknown:
            return Verdict(command, "UNKNOWN", self._unknown_reasons())
        names = ", ".join(dict.fromkeys(self.programs)) or "no program"
        return Verdict(command, "READ", [f"READ: every command is on the read list ({names})"])

    def _unknown_reasons(self) -> list[str]:
        return [f"UNKNOWN: {r}" for r in self.unknown]
