"""Throughput of the streaming masker on realistic output, with masking on and off.

The text is mostly ordinary log lines (timestamps, IPs, hashes, UUIDs, numbers) with an occasional
secret, fed in 16 KiB chunks as an SSH channel would deliver them.
"""

from __future__ import annotations

import random
import sys
import time

from bastion.masking import Masker, MaskingPolicy, MaskingRules

CHUNK = 16 * 1024

_SECRETS = (
    b"export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    b'{"password": "correct horse battery staple"}',
    b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    b"card on file 4111 1111 1111 1111",
    b"GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345",
)


def realistic_output(size: int, seed: int = 7) -> bytes:
    """About `size` bytes of log-like lines; one line in 200 carries a secret."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    total = 0
    while total < size:
        if rng.random() < 0.005:
            line = rng.choice(_SECRETS)
        else:
            line = (
                f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z INFO [worker-{rng.randint(1, 16)}] "
                f"GET /api/v1/items/{rng.randint(1, 10**6)} from 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                f"{rng.randint(1, 254)} status=200 bytes={rng.randint(100, 99999)} took={rng.random():.3f}s "
                f"req={rng.getrandbits(128):032x}"
            ).encode()
        lines.append(line)
        total += len(line) + 1
    return b"\n".join(lines) + b"\n"


def _throughput(rules: MaskingRules, data: bytes) -> float:
    masker = Masker(rules)
    started = time.perf_counter()
    for i in range(0, len(data), CHUNK):
        masker.feed(data[i : i + CHUNK])
    masker.flush()
    elapsed = time.perf_counter() - started
    return len(data) / (1024 * 1024) / elapsed


def bench_masking(size_mb: int) -> dict:
    """MB/s through a per-stream masker with every built-in detector, and with masking off."""
    data = realistic_output(size_mb * 1024 * 1024)
    on = MaskingPolicy().for_session(["agent"], "bench", {})
    off = MaskingRules(())
    return {
        "size_mb": size_mb,
        "chunk_bytes": CHUNK,
        "masking_on_mb_s": round(_throughput(on, data), 1),
        "masking_off_mb_s": round(_throughput(off, data), 1),
    }


if __name__ == "__main__":
    result = bench_masking(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
    print(" ".join(f"{k}={v}" for k, v in result.items()))
