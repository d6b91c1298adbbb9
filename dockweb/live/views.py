"""The log page's HTTP helpers: earlier history for scrolling up, and search over the whole log."""

from __future__ import annotations

import re
import time
from typing import Iterator

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse

from dockweb.containers import services
from dockweb.core import client
from dockweb.core.errors import EngineError
from dockweb.live.engine import MUX_STREAM, RAW_STREAM, LogDecoder, parse_time

WINDOW_MAX = 10000
SEARCH_MAX = 1000
SEARCH_SECONDS = 20.0   # a search gives up (truncated) after this long, so a huge log cannot hold a worker
PATTERN_MAX = 500


def log_lines(container, **params) -> Iterator[tuple[str, str, str]]:
    """Yield (t, stream, text) for the container's log lines the engine returns for params (no follow)."""
    api = client.engine_client(container.host).api
    query = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": "all"}
    query.update({k: v for k, v in params.items() if v is not None and v != ""})
    with client.calling(container.host, f"reading the logs of container {container.name}"):
        resp = api._get(api._url("/containers/{0}/logs", container.engine_id), params=query, stream=True)
        api._raise_for_status(resp)
        ctype = resp.headers.get("Content-Type", "").split(";")[0]
        if ctype in (RAW_STREAM, MUX_STREAM):
            tty = ctype == RAW_STREAM
        else:
            tty = bool((api.inspect_container(container.engine_id).get("Config") or {}).get("Tty"))
        decoder = LogDecoder(tty)
        try:
            for block in resp.iter_content(256 * 1024):
                yield from decoder.feed(block)
            yield from decoder.flush()
        finally:
            resp.close()


def _as_json(lines) -> list[dict]:
    return [{"t": t, "s": s, "l": text} for t, s, text in lines]


def _bounded(value: str, default: int, top: int) -> int:
    return min(int(value), top) if value.isdigit() and int(value) > 0 else default


def _answer(view):
    """Answer refusals and engine errors as JSON the page can show."""
    def wrapped(request, ref: str):
        try:
            return view(request, ref)
        except Http404 as e:
            return JsonResponse({"error": str(e)}, status=404)
        except PermissionDenied as e:
            return JsonResponse({"error": str(e)}, status=403)
        except EngineError as e:
            return JsonResponse({"error": e.message}, status=e.status if e.status in (400, 404, 409) else 502)
    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@login_required
@_answer
def logs_window(request, ref: str):
    """Return up to limit lines written before `before` (oldest first) and whether there are more.

    Several lines may share one timestamp: skip=N says the page already has the last N lines at exactly
    `before`, and they are left out; without skip, every line at `before` is left out.
    """
    c = services.get_container(request.user, ref, "logs")
    limit = _bounded(request.GET.get("limit", ""), 2000, WINDOW_MAX)
    skip = _bounded(request.GET.get("skip", ""), 0, WINDOW_MAX)
    before = request.GET.get("before", "")
    before_ns = parse_time(before) if before else time.time_ns()
    if before and not before_ns:
        return JsonResponse({"error": f"before={before!r} is not an RFC 3339 time"}, status=400)
    # The engine compares at microseconds: ask a little past `before` and cut exactly here.
    until_us = before_ns // 1000 + 2
    slack = 64
    lines = list(log_lines(c, until=f"{until_us // 10**6}.{until_us % 10**6:06d}", tail=limit + skip + 1 + slack))
    kept = [line for line in lines if parse_time(line[0]) < before_ns]
    at_before = [line for line in lines if parse_time(line[0]) == before_ns]
    if skip:
        kept += at_before[:max(len(at_before) - skip, 0)]
    more = len(kept) > limit or len(lines) >= limit + skip + 1 + slack
    return JsonResponse({"lines": _as_json(kept[-limit:]), "more": more})


@login_required
@_answer
def logs_search(request, ref: str):
    """Return the lines of the whole log that contain q (or match it as a regular expression)."""
    c = services.get_container(request.user, ref, "logs")
    q = request.GET.get("q", "")
    if not q:
        return JsonResponse({"error": "give the text to search for (q=...)"}, status=400)
    if len(q) > PATTERN_MAX:
        return JsonResponse({"error": f"the search text is longer than {PATTERN_MAX} characters"}, status=400)
    limit = _bounded(request.GET.get("limit", ""), 200, SEARCH_MAX)
    if request.GET.get("regex") in ("1", "true", "on"):
        try:
            matches = re.compile(q).search
        except re.error as e:
            return JsonResponse({"error": f"invalid regular expression: {e}"}, status=400)
    else:
        needle = q.casefold()

        def matches(text: str) -> bool:
            return needle in text.casefold()
    found, truncated = [], False
    deadline = time.monotonic() + SEARCH_SECONDS
    for n, line in enumerate(log_lines(c, since=request.GET.get("since"), until=request.GET.get("until"))):
        if matches(line[2]):
            if len(found) == limit:
                truncated = True
                break
            found.append(line)
        if n % 4096 == 0 and time.monotonic() > deadline:
            truncated = True
            break
    return JsonResponse({"matches": _as_json(found), "truncated": truncated})
