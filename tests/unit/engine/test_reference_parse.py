"""Parsing and normalizing image references as the docker CLI and dockerd do."""

import pytest

from engine.errors import InvalidParameter
from engine.images import reference


@pytest.mark.parametrize("text,familiar,full", [
    ("busybox", "busybox", "docker.io/library/busybox"),
    ("busybox:1.36", "busybox:1.36", "docker.io/library/busybox:1.36"),
    ("docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "busybox", "docker.io/library/busybox"),
    ("foo/bar:v2", "foo/bar:v2", "docker.io/foo/bar:v2"),
    ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1", "localhost:5000/a/b:v1"),
    ("localhost/x", "localhost/x", "localhost/x"),
    ("registry.example.com/team/app", "registry.example.com/team/app", "registry.example.com/team/app"),
])
def test_references_normalize_to_the_familiar_form_docker_images_shows(text, familiar, full):
    ref = reference.parse(text)
    assert ref.familiar() == familiar
    assert ref.full() == full


def test_a_name_without_tag_gets_latest_when_tagged_by_default():
    assert reference.parse_tagged("busybox").familiar() == "busybox:latest"
    assert reference.parse_tagged("localhost:5000/a/b").full() == "localhost:5000/a/b:latest"


def test_a_digest_reference_keeps_its_digest_and_gets_no_default_tag():
    digest = "sha256:" + "a" * 64
    ref = reference.parse_tagged(f"busybox@{digest}")
    assert ref.digest == digest and ref.tag == ""
    assert ref.familiar() == f"busybox@{digest}"


def test_uppercase_repository_is_refused_with_dockers_text():
    with pytest.raises(InvalidParameter) as e:
        reference.parse("Busybox")
    assert e.value.message == "invalid reference format: repository name (library/Busybox) must be lowercase"


@pytest.mark.parametrize("text", ["busybox:", ":tag", "a//b", "busybox:-bad", "a b", "busybox@sha256:abc"])
def test_malformed_references_are_invalid(text):
    with pytest.raises(InvalidParameter):
        reference.parse(text)


def test_malformed_reference_uses_dockers_invalid_reference_format_text():
    with pytest.raises(InvalidParameter) as e:
        reference.parse("busybox:")
    assert e.value.message == "invalid reference format"


def test_a_64_hex_name_is_refused_as_a_repository():
    with pytest.raises(InvalidParameter, match="cannot specify 64-byte hexadecimal strings"):
        reference.parse("a" * 64)


def test_ids_are_recognised_with_and_without_the_algorithm():
    assert reference.digest_of("b" * 64) == "sha256:" + "b" * 64
    assert reference.digest_of("sha256:" + "b" * 64) == "sha256:" + "b" * 64
    assert reference.digest_of("busybox") is None


def test_repo_tag_combines_repo_and_tag_parameters():
    assert reference.repo_tag("localhost:5000/busybox", "v1").full() == "localhost:5000/busybox:v1"
    assert reference.repo_tag("foo:bar").familiar() == "foo:bar"
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        reference.repo_tag("foo", "bad tag")


def test_reference_filter_patterns_do_not_cross_slashes():
    ref = reference.parse("foo/bar:v1")
    assert reference.familiar_match("foo/*", ref)
    assert reference.familiar_match("foo/bar", ref)
    assert not reference.familiar_match("*", ref)
    assert reference.familiar_match("busy*", reference.parse("busybox:latest"))
