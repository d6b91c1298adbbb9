"""Polling helper for integration tests that wait on the engine's state."""

import time


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Return predicate()'s first truthy value within timeout seconds, else its last (falsy) value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
