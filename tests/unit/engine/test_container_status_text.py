"""The human status `docker ps` shows, derived from the container's state."""

from engine.containers.model import Container, ContainerState, human_duration

S = 1_000_000_000


def make(status, **kw):
    return Container("a" * 64, "c", 0, "busybox", "sha256:" + "b" * 64, "sh", [], {}, {}, "/nonexistent",
                     ContainerState(status=status, **kw))


def test_human_duration_follows_dockers_units():
    assert human_duration(S // 2) == "Less than a second"
    assert human_duration(1 * S) == "1 second"
    assert human_duration(42 * S) == "42 seconds"
    assert human_duration(61 * S) == "About a minute"
    assert human_duration(5 * 60 * S) == "5 minutes"
    assert human_duration(3600 * S) == "About an hour"
    assert human_duration(5 * 3600 * S) == "5 hours"
    assert human_duration(3 * 24 * 3600 * S) == "3 days"


def test_running_container_is_up():
    assert make("running", started_ns=0).status_text(now_ns=3 * S) == "Up 3 seconds"


def test_paused_container_says_paused():
    assert make("paused", started_ns=0).status_text(now_ns=3 * S) == "Up 3 seconds (Paused)"


def test_exited_container_shows_code_and_age():
    c = make("exited", exit_code=137, finished_ns=0)
    assert c.status_text(now_ns=120 * S) == "Exited (137) 2 minutes ago"


def test_created_container_is_created():
    assert make("created").status_text() == "Created"
