"""Threads of one daemon compiling the same seccomp profile at once all succeed and leave one cached program."""

from __future__ import annotations

import threading

import pytest

from engine.runtime import seccomp

pytest.importorskip("pyseccomp", reason="pyseccomp (libseccomp) is needed to compile a filter")

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


def test_concurrent_first_compiles_share_one_cache_file(tmp_path):
    results, errors = [], []
    start = threading.Barrier(8)

    def compile_one():
        start.wait()
        try:
            results.append(seccomp.compile_bpf(PROFILE, tmp_path))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=compile_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(set(results)) == 1 and results[0]
    assert [p.name for p in tmp_path.iterdir()] == [f"{seccomp.cache_key(PROFILE)}.bpf"]
