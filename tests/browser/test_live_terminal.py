"""In a real browser, an operator opens a terminal in a running container: a command's output shows, resizing the
window changes `stty size` inside, and a dropped websocket reconnects to the same shell (a variable set before is
still there)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in, wait_listed

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def shell_box(stack):
    c = stack.engine.client().containers.run("busybox", ["sleep", "3600"], name="shell-box", detach=True,
                                             labels={"dockweb.team": "red"})
    assert wait_listed(stack, "shell-box"), stack.log_tail("events")
    return c.id


def screen_text(page) -> str:
    """The terminal's whole buffer as text (xterm's own model, not the rendered DOM)."""
    return page.evaluate("""() => {
        const term = document.getElementById("live-terminal").liveTerminal.term;
        const buffer = term.buffer.active;
        const lines = [];
        for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
        return lines.join("\\n");
    }""")


def wait_screen(page, pattern: str, timeout: float = 10000) -> re.Match:
    page.wait_for_function("""(pattern) => {
        const term = document.getElementById("live-terminal").liveTerminal?.term;
        if (!term) return false;
        const buffer = term.buffer.active;
        for (let i = 0; i < buffer.length; i++) if (new RegExp(pattern).test(buffer.getLine(i).translateToString(true))) return true;
        return false;
    }""", arg=pattern, timeout=timeout)
    return re.search(pattern, screen_text(page))


def term_size(page) -> tuple[int, int]:
    return tuple(page.evaluate("(() => { const t = document.getElementById('live-terminal').liveTerminal.term;"
                               " return [t.rows, t.cols]; })()"))


def open_terminal(page, cid: str) -> None:
    page.goto(f"/containers/{cid}/#terminal")
    page.get_by_role("button", name="Open a terminal").click()
    page.locator("#live-terminal[data-state=open]").wait_for()


def test_a_command_typed_in_the_terminal_shows_its_output(stack, page, shell_box):
    log_in(page, "olga")
    open_terminal(page, shell_box)
    page.keyboard.type("echo answer-$((6*7))\n")
    wait_screen(page, r"^answer-42$")


def test_resizing_the_window_changes_stty_size_inside(stack, page, shell_box):
    log_in(page, "olga")
    page.set_viewport_size({"width": 1280, "height": 800})
    open_terminal(page, shell_box)
    page.keyboard.type("stty size\n")
    rows, cols = term_size(page)
    wait_screen(page, rf"^{rows} {cols}$")

    page.set_viewport_size({"width": 900, "height": 700})
    page.wait_for_function(f"(() => {{ const t = document.getElementById('live-terminal').liveTerminal.term;"
                           f" return t.cols !== {cols}; }})()")
    new_rows, new_cols = term_size(page)
    page.keyboard.type("clear; stty size\n")
    wait_screen(page, rf"^{new_rows} {new_cols}$")
    assert new_cols < cols


def test_a_dropped_socket_reconnects_to_the_same_shell(stack, page, shell_box):
    log_in(page, "olga")
    open_terminal(page, shell_box)
    session = page.locator("#live-terminal").get_attribute("data-session")
    page.keyboard.type("export KEPT=before-the-drop-$((40+2))\n")
    page.keyboard.type("echo set-$KEPT\n")
    wait_screen(page, r"^set-before-the-drop-42$")

    # The network drops: the page's socket closes under it.
    page.evaluate("document.getElementById('live-terminal').liveTerminal.ws.close()")
    page.locator(".term-notice", has_text="Reconnected").wait_for()
    assert page.locator("#live-terminal").get_attribute("data-session") == session
    page.keyboard.type("clear; echo still-$KEPT\n")
    wait_screen(page, r"^still-before-the-drop-42$")

    # A reload of the page resumes the session too (its id is kept in sessionStorage).
    page.reload()
    page.locator("#live-terminal[data-state=open]").wait_for()
    assert page.locator("#live-terminal").get_attribute("data-session") == session
    page.locator(".term-screen").click()
    page.keyboard.type("echo again-$KEPT\n")
    wait_screen(page, r"^again-before-the-drop-42$")


def test_attach_types_into_a_tty_containers_main_process(stack, page):
    c = stack.engine.client().containers.run("busybox", ["sh"], name="tty-box", detach=True, tty=True,
                                             stdin_open=True, labels={"dockweb.team": "red"})
    assert wait_listed(stack, "tty-box"), stack.log_tail("events")
    log_in(page, "olga")
    page.goto(f"/containers/{c.id}/")
    page.get_by_role("tab", name="Terminal").click()
    page.get_by_role("link", name="Attach to the main process").click()
    page.locator("#live-terminal[data-state=open]").wait_for()
    page.keyboard.type("echo main-$((7*6)) $$\n")
    wait_screen(page, r"^main-42 1$")  # pid 1: the container's own shell
