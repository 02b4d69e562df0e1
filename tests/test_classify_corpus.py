"""Every line of the shared labelled corpus: no WRITE line may classify READ; READ recall is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.classify import classify, load_rules

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/commands.tsv"
MIN_READ_RECALL = 0.85


def load_corpus(path: Path) -> list[tuple[str, str, str]]:
    """(expected, command, source) triples; \\n and \\t in the command are escapes."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        expected, command, source = line.split("\t", 2)
        rows.append((expected, command.replace("\\n", "\n").replace("\\t", "\t"), source))
    return rows


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str, str]]:
    if not CORPUS.is_file():
        pytest.skip(f"corpus not found at {CORPUS} (shared/ must sit beside the repository)")
    return load_corpus(CORPUS)


@pytest.fixture(scope="module")
def rules():
    return load_rules(ROOT / "policies/commands.yaml")


def test_no_write_is_classified_read(corpus, rules) -> None:
    leaks = [
        (cmd, classify(cmd, rules).reasons)
        for expected, cmd, _ in corpus
        if expected == "WRITE" and classify(cmd, rules).is_read
    ]
    assert not leaks, f"WRITE commands classified READ: {leaks}"


def test_read_recall(corpus, rules, capsys) -> None:
    reads = [cmd for expected, cmd, _ in corpus if expected == "READ"]
    missed = [(cmd, classify(cmd, rules).reasons) for cmd in reads if not classify(cmd, rules).is_read]
    recall = 1 - len(missed) / len(reads)
    with capsys.disabled():
        print(f"\nREAD recall: {recall:.1%} ({len(reads) - len(missed)}/{len(reads)})")
        for cmd, reasons in missed:
            print(f"  not READ: {cmd!r}: {reasons[0] if reasons else ''}")
    assert recall >= MIN_READ_RECALL


def test_every_corpus_line_gets_a_verdict(corpus, rules) -> None:
    for _, cmd, _ in corpus:
        verdict = classify(cmd, rules)
        assert verdict.verdict in ("READ", "WRITE", "UNKNOWN")
        assert verdict.reasons
