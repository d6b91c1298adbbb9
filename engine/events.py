"""The event log behind GET /events: container, image, volume and network events, in memory, with subscribers."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict = field(default_factory=dict)
    time_ns: int = field(default_factory=time.time_ns)

    def to_api(self, legacy: bool = True) -> dict:
        """Shape the event as the Engine API sends it (legacy status/id/from up to API 1.51)."""
        doc = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local",
            "time": self.time_ns // 1_000_000_000,
            "timeNano": self.time_ns,
        }
        if legacy and self.type == "container":
            doc["status"] = self.action
            doc["id"] = self.actor_id
            doc["from"] = self.attributes.get("image", "")
        return doc


class EventLog:
    """Keep the last events in a ring and wake subscribers when a new one is published."""

    def __init__(self, capacity: int = 10000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._cond = threading.Condition()
        self._seq = 0

    def publish(self, type: str, action: str, actor_id: str, attributes: dict | None = None) -> Event:
        """Record an event and wake every subscriber."""
        ev = Event(type, action, actor_id, dict(attributes or {}))
        with self._cond:
            self._events.append(ev)
            self._seq += 1
            self._cond.notify_all()
        return ev

    def follow(self, since_ns: int | None, until_ns: int | None, stop: threading.Event | None = None,
               poll: float = 1.0) -> Iterator[Event | None]:
        """Yield past events from since_ns, then live ones until until_ns; yield None on idle ticks."""
        with self._cond:
            backlog = [e for e in self._events if since_ns is not None and e.time_ns >= since_ns]
            seq = self._seq
        last_ns = 0
        for ev in backlog:
            if until_ns is not None and ev.time_ns > until_ns:
                return
            last_ns = ev.time_ns
            yield ev
        while True:
            if until_ns is not None and time.time_ns() >= until_ns:
                return
            if stop is not None and stop.is_set():
                return
            with self._cond:
                if self._seq == seq:
                    timeout = poll
                    if until_ns is not None:
                        timeout = min(poll, max(0.0, (until_ns - time.time_ns()) / 1e9))
                    self._cond.wait(timeout)
                new = self._seq - seq
                fresh = list(self._events)[-new:] if new else []
                seq = self._seq
            if not fresh:
                yield None
            for ev in fresh:
                if until_ns is not None and ev.time_ns > until_ns:
                    return
                if ev.time_ns < last_ns:
                    continue
                yield ev
