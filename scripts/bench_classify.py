"""Classifier throughput over the shared corpus, in commands per second on one core."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bastion.classify import classify, load_rules

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared/corpus/commands.tsv"


def _commands(corpus_path: Path) -> list[str]:
    commands = []
    for line in Path(corpus_path).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            command = line.split("\t", 2)[1]
            commands.append(command.replace("\\n", "\n").replace("\\t", "\t"))
    return commands


def bench_classify(corpus_path: Path, *, seconds: float = 2.0) -> float:
    """Classify the corpus repeatedly for about ``seconds``; return commands classified per second."""
    rules = load_rules(ROOT / "policies/commands.yaml")
    commands = _commands(corpus_path)
    for command in commands:  # warm up: parser, rule caches
        classify(command, rules)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for command in commands:
            classify(command, rules)
        done += len(commands)
    return done / (time.perf_counter() - start)


if __name__ == "__main__":
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS
    print(f"classify: {bench_classify(corpus):,.0f} commands/s over {corpus}")
