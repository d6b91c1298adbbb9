"""engine/events.py: the event log behind GET /events: API shape, backlog, live delivery, until and stop."""

from __future__ import annotations

import threading
import time

from engine.events import Event, EventLog


def take(iterator, n: int, timeout: float = 5.0) -> list:
    """Collect the next n real events (skipping idle ticks) or fail after timeout."""
    out = []
    deadline = time.monotonic() + timeout
    for ev in iterator:
        if ev is not None:
            out.append(ev)
            if len(out) == n:
                return out
        assert time.monotonic() < deadline, f"only {len(out)} of {n} events in {timeout}s"
    return out


def test_container_event_has_the_api_fields_and_the_legacy_ones():
    ev = Event("container", "start", "c1", {"image": "busybox", "name": "web"}, time_ns=1_700_000_000_123_456_789)
    assert ev.to_api() == {
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": "c1", "Attributes": {"image": "busybox", "name": "web"}},
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
        "status": "start",
        "id": "c1",
        "from": "busybox",
    }


def test_legacy_fields_can_be_left_out():
    doc = Event("container", "die", "c1", {"image": "busybox"}).to_api(legacy=False)
    assert not {"status", "id", "from"} & doc.keys()


def test_image_event_has_no_container_legacy_from():
    doc = Event("image", "tag", "sha256:abc", {"name": "x:1"}).to_api()
    assert doc["Type"] == "image" and "from" not in doc


def test_to_api_copies_the_attributes():
    ev = Event("container", "create", "c1", {"name": "a"})
    ev.to_api()["Actor"]["Attributes"]["name"] = "changed"
    assert ev.attributes == {"name": "a"}


def test_publish_returns_the_event_with_a_current_time():
    log = EventLog()
    before = time.time_ns()
    ev = log.publish("container", "create", "c1", {"name": "a"})
    assert (ev.type, ev.action, ev.actor_id, ev.attributes) == ("container", "create", "c1", {"name": "a"})
    assert before <= ev.time_ns <= time.time_ns()


def test_publish_copies_the_callers_attributes():
    attrs = {"name": "a"}
    ev = EventLog().publish("container", "create", "c1", attrs)
    attrs["name"] = "b"
    assert ev.attributes == {"name": "a"}


def test_follow_without_since_skips_past_events_and_waits_for_new_ones():
    log = EventLog()
    log.publish("container", "create", "old")
    stream = log.follow(None, None, poll=0.05)
    assert next(stream) is None  # an idle tick: nothing new yet
    log.publish("container", "start", "new")
    assert [e.actor_id for e in take(stream, 1)] == ["new"]


def test_follow_since_replays_the_backlog_then_goes_live():
    log = EventLog()
    log.publish("container", "create", "a")
    mark = time.time_ns()
    log.publish("container", "start", "b")
    log.publish("container", "die", "c")
    stream = log.follow(mark, None, poll=0.05)
    assert [e.actor_id for e in take(stream, 2)] == ["b", "c"]
    log.publish("container", "destroy", "d")
    assert [e.actor_id for e in take(stream, 1)] == ["d"]


def test_follow_until_in_the_past_returns_the_window_and_ends():
    log = EventLog()
    first = log.publish("container", "create", "a")
    second = log.publish("container", "start", "b")
    log.publish("container", "die", "c")
    events = [e for e in log.follow(first.time_ns, second.time_ns, poll=0.05) if e is not None]
    assert [e.actor_id for e in events] == ["a", "b"]


def test_follow_until_in_the_future_ends_when_it_passes():
    log = EventLog()
    until = time.time_ns() + 300_000_000
    started = time.monotonic()
    list(log.follow(None, until, poll=0.05))
    assert 0.2 <= time.monotonic() - started < 3


def test_follow_until_delivers_live_events_before_it_then_ends():
    log = EventLog()
    until = time.time_ns() + 400_000_000
    timer = threading.Timer(0.1, log.publish, args=("container", "start", "early"))
    timer.start()
    try:
        events = [e for e in log.follow(None, until, poll=0.05) if e is not None]
    finally:
        timer.cancel()
    assert [e.actor_id for e in events] == ["early"]
    assert time.time_ns() >= until


def test_follow_stops_when_the_stop_event_is_set():
    log = EventLog()
    stop = threading.Event()
    stream = log.follow(None, None, stop=stop, poll=0.05)
    assert next(stream) is None
    stop.set()
    assert list(stream) == []


def test_follow_wakes_on_publish_from_another_thread_without_waiting_for_the_poll():
    log = EventLog()
    stream = log.follow(None, None, poll=10.0)
    timer = threading.Timer(0.1, log.publish, args=("container", "start", "x"))
    started = time.monotonic()
    timer.start()
    try:
        assert [e.actor_id for e in take(stream, 1)] == ["x"]
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5


def test_follow_delivers_every_event_of_a_burst_in_order():
    log = EventLog()
    stream = log.follow(None, None, poll=0.05)
    assert next(stream) is None
    for i in range(50):
        log.publish("container", "start", str(i))
    assert [e.actor_id for e in take(stream, 50)] == [str(i) for i in range(50)]


def test_ring_keeps_only_the_last_events():
    log = EventLog(capacity=3)
    for i in range(5):
        log.publish("container", "start", str(i))
    events = [e for e in log.follow(0, time.time_ns(), poll=0.05) if e is not None]
    assert [e.actor_id for e in events] == ["2", "3", "4"]


def test_two_followers_each_get_every_event():
    log = EventLog()
    a = log.follow(None, None, poll=0.05)
    b = log.follow(None, None, poll=0.05)
    assert next(a) is None and next(b) is None
    log.publish("container", "start", "x")
    log.publish("container", "die", "x")
    assert [e.action for e in take(a, 2)] == ["start", "die"]
    assert [e.action for e in take(b, 2)] == ["start", "die"]
