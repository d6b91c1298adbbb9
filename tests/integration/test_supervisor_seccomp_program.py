"""The seccomp program an init gets: the bundle's seccomp.bpf when the daemon compiled it, else compiled then."""

import json

import pytest

from engine.runtime import seccomp, supervisor

pytestmark = pytest.mark.root

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NATIVE"],
           "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


def bundle_with(tmp_path, seccomp_profile):
    bundle = tmp_path / "root" / "containers" / "c1"
    bundle.mkdir(parents=True)
    spec = {"process": {"args": ["true"]}, "linux": {"namespaces": [{"type": "pid"}]}}
    if seccomp_profile:
        spec["linux"]["seccomp"] = seccomp_profile
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle, spec


def test_the_init_gets_the_program_the_daemon_wrote_into_the_bundle(tmp_path):
    bundle, spec = bundle_with(tmp_path, PROFILE)
    (bundle / "seccomp.bpf").write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # one "allow" instruction
    loaded, bpf = supervisor.load_spec(str(bundle))
    assert loaded == spec and bpf == b"\x06\x00\x00\x00\x00\x00\xff\x7f"


def test_without_seccomp_bpf_the_init_compiles_the_profile_through_the_engines_cache(tmp_path):
    bundle, _ = bundle_with(tmp_path, PROFILE)
    _, bpf = supervisor.load_spec(str(bundle))
    assert bpf == seccomp.compile_bpf(PROFILE)
    assert list((tmp_path / "root" / "run" / "seccomp").glob("*.bpf"))


def test_a_spec_without_seccomp_gives_no_program_even_with_a_stale_file(tmp_path):
    bundle, _ = bundle_with(tmp_path, None)
    (bundle / "seccomp.bpf").write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    assert supervisor.load_spec(str(bundle))[1] is None


def test_write_seccomp_bpf_writes_the_compiled_profile_and_removes_it_without_one(tmp_path):
    bundle, spec = bundle_with(tmp_path, PROFILE)
    supervisor.write_seccomp_bpf(bundle, spec, tmp_path / "cache")
    assert (bundle / "seccomp.bpf").read_bytes() == seccomp.compile_bpf(PROFILE)
    supervisor.write_seccomp_bpf(bundle, {"linux": {}})
    assert not (bundle / "seccomp.bpf").exists()
