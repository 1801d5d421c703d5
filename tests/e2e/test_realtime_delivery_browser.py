"""Chapter 1's chat page (``GET /``) in headless Chromium, against the server as a real process.

What a reader sees must hold what the chapter claims: two pages on different transports show the
same messages with the same sequence numbers, each once and in order; a page carries on by itself
after the server is SIGKILLed and restarted, missing nothing and repeating nothing; every message
shows its delivery latency; messages that fell out of the window are marked by a gap line.
"""
import re
import threading
import time
import urllib.error

import pytest
try:   # without selenium the ``chromium`` fixture skips (REQUIRE_SERVERS=1: fails) with a hint
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:
    pass

from demos.realtime_delivery.clients import Http
from load.harness import wait_for

CONNECTED = {   # the status line once each transport is following the conversation
    "short-poll": "short polling every second",
    "long-poll": "long polling: a request is always pending",
    "sse": "Server-Sent Events: streaming",
    "websocket": "WebSocket: open",
}
READ_PAGE = """
return {
  messages: [...document.querySelectorAll("#log div.message")].map((line) => ({
    seq: Number(line.dataset.seq), body: line.querySelector(".body").textContent,
    sender: line.querySelector("b").textContent, latency: line.querySelector(".latency").textContent,
  })),
  gaps: [...document.querySelectorAll("#log .gap")].map((line) => line.textContent),
  duplicates: document.querySelectorAll("#log .duplicate").length,
  status: document.getElementById("status").textContent,
  stats: document.getElementById("stats").textContent,
  notReloaded: window.notReloaded === true,
};
"""


class Page:
    """One browser window on the chat page; Selenium drives one window at a time, so each call
    switches to its own first."""

    def __init__(self, driver, server, conversation: str, transport: str, sender: str):
        self.driver, self.transport = driver, transport
        if driver.current_url not in ("about:blank", "data:,"):
            driver.switch_to.new_window("window")   # a window of its own, not a background tab
        self.handle = driver.current_window_handle
        driver.get(f"{server.url}/?conversation={conversation}&transport={transport}&sender={sender}")
        driver.execute_script("window.notReloaded = true")   # gone if the page ever reloads
        wait_for(lambda: self.read()["status"] == CONNECTED[transport], 10, f"{transport} to connect")

    def focus(self):
        if self.driver.current_window_handle != self.handle:
            self.driver.switch_to.window(self.handle)
        return self.driver

    def read(self) -> dict:
        return self.focus().execute_script(READ_PAGE)

    def send(self, body: str) -> None:
        """Type into the form and press Enter; the page empties the field once the server acked."""
        field = self.focus().find_element(By.CSS_SELECTOR, "#send input[name=body]")
        field.send_keys(body, Keys.ENTER)
        wait_for(lambda: field.get_attribute("value") == "", 5, f"the page to send {body!r}")

    def wait_for_messages(self, count: int, timeout_s: float = 10) -> dict:
        return wait_for(lambda: (lambda page: page if len(page["messages"]) >= count else None)(self.read()),
                        timeout_s, f"{count} messages on the {self.transport} page")


def seqs_and_bodies(page: dict) -> list[tuple[int, str]]:
    return [(message["seq"], message["body"]) for message in page["messages"]]


def latency_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+) ms", text)
    assert match, f"no delivery latency shown: {text!r}"
    return int(match.group(1))


@pytest.mark.parametrize("first, second", [("long-poll", "websocket"), ("sse", "short-poll")])
def test_two_pages_on_different_transports_show_the_same_numbered_messages(browser, realtime, first, second):
    server = realtime()
    pages = [Page(browser, server, "pair", transport, sender=transport) for transport in (first, second)]
    sent = []
    for round_ in range(3):
        for page in pages:
            body = f"{page.transport} says {round_}"
            page.send(body)
            sent.append(body)
    expected = list(enumerate(sent, start=1))
    for page in pages:
        shown = page.wait_for_messages(len(sent))
        time.sleep(0.3 if page is pages[-1] else 0)           # a late duplicate would have arrived by now
        shown = page.read()
        assert seqs_and_bodies(shown) == expected, page.transport
        assert shown["gaps"] == [] and shown["duplicates"] == 0
        assert [message["sender"] for message in shown["messages"]] == [first, second] * 3
        assert all(0 <= latency_ms(message["latency"]) < 5000 for message in shown["messages"])


@pytest.mark.parametrize("transport", ["long-poll", "websocket", "sse"])
def test_a_page_carries_on_after_the_server_is_killed_and_restarted(browser, realtime, transport):
    server = realtime()
    http = Http(server.url, timeout_s=5)
    page = Page(browser, server, "restart", transport, sender="reader")
    sent = []   # bodies, in the order the server acknowledged them

    def send(body: str, retry_until: float = 0.0) -> None:
        while True:
            try:
                seq = http.send("restart", "writer", body, client_ts=time.time())
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > retry_until:   # refused: the server is down, nothing was stored
                    raise
                time.sleep(0.05)
            else:
                sent.append(body)
                assert seq == len(sent)
                return

    for n in range(3):
        send(f"before {n}")
    page.wait_for_messages(3)

    server.kill()                                            # SIGKILL: no goodbye to the page
    wait_for(lambda: page.read()["status"] != CONNECTED[transport], 10, "the page to notice the server is gone")
    field = page.focus().find_element(By.CSS_SELECTOR, "#send input[name=body]")
    field.send_keys("typed while down", Keys.ENTER)          # refused: the page keeps the text
    # a writer keeps trying during the downtime; its messages land the moment the server is back
    writer = threading.Thread(target=lambda: [send(f"during {n}", time.monotonic() + 20) for n in range(3)])
    writer.start()
    time.sleep(0.5)
    assert field.get_attribute("value") == "typed while down"
    server.start()                                           # same ports, same data
    writer.join(25)
    assert not writer.is_alive()
    page.send("")                                            # Enter again: now it goes through
    sent.append("typed while down")
    for n in range(3):
        send(f"after {n}")

    page.wait_for_messages(len(sent), timeout_s=15)
    time.sleep(0.3)                                          # room for a duplicate to show up
    shown = page.read()
    assert seqs_and_bodies(shown) == list(enumerate(sent, start=1))   # each once, in order, no hole
    assert shown["gaps"] == [] and shown["duplicates"] == 0
    assert shown["notReloaded"], "the page was reloaded"
    assert shown["status"] == CONNECTED[transport]


def test_connect_follows_another_conversation_from_its_first_message(browser, realtime):
    server = realtime()
    http = Http(server.url, timeout_s=5)
    for conversation, count in (("a", 5), ("b", 2)):
        http.create(conversation)
        for n in range(count):
            http.send(conversation, "writer", f"{conversation}{n}")
    page = Page(browser, server, "a", "long-poll", sender="reader")
    page.wait_for_messages(5)

    def switch(conversation: str, transport: str) -> None:
        driver = page.focus()
        field = driver.find_element(By.ID, "conversation")
        field.clear()
        field.send_keys(conversation)
        Select(driver.find_element(By.ID, "transport")).select_by_value(transport)
        driver.find_element(By.ID, "connect").click()
        page.transport = transport
        wait_for(lambda: page.read()["status"] == CONNECTED[transport], 10, f"{transport} to connect")

    switch("b", "sse")                                       # b's numbers start again from 1
    http.send("a", "writer", "a5")                           # the abandoned long poll must not show it
    http.send("b", "writer", "b2")
    page.wait_for_messages(3)
    time.sleep(0.3)
    assert seqs_and_bodies(page.read()) == [(1, "b0"), (2, "b1"), (3, "b2")]

    switch("a", "websocket")
    page.wait_for_messages(6)
    time.sleep(0.3)
    assert seqs_and_bodies(page.read()) == [(n + 1, f"a{n}") for n in range(6)]


def test_the_page_shows_delivery_latency_and_gaps(browser, realtime, tmp_path):
    server = realtime(env={"WINDOW_LENGTH": "5"})
    http = Http(server.url, timeout_s=5)
    http.create("window")
    for n in range(8):                                       # 1-3 fall out of a 5-message window
        http.send("window", "early", f"early {n}")
    page = Page(browser, server, "window", "websocket", sender="ann")
    shown = page.wait_for_messages(5)
    assert shown["gaps"] == ["(messages before #4 fell out of the window)"]
    assert [message["seq"] for message in shown["messages"]] == [4, 5, 6, 7, 8]

    http.send("window", "bob", "from elsewhere", client_ts=time.time())
    page.send("hello from the page")
    shown = page.wait_for_messages(7)
    live = shown["messages"][-2:]
    assert [(message["sender"], message["body"]) for message in live] == [
        ("bob", "from elsewhere"), ("ann", "hello from the page")]
    assert all(0 <= latency_ms(message["latency"]) < 2000 for message in live)
    assert re.fullmatch(r"7 received; delivery latency median \d+ ms over the last 2", shown["stats"]), shown["stats"]

    # what a buggy server would send, handed to the page: a number again, then one skipped
    page.focus().execute_script('show({seq: 9, sender: "bob", body: "from elsewhere", client_ts: null});'
                                'show({seq: 12, sender: "bob", body: "after a hole", client_ts: null});')
    shown = page.read()
    assert shown["duplicates"] == 1 and seqs_and_bodies(shown)[-2:] == [(9, "from elsewhere"), (12, "after a hole")]
    assert shown["gaps"][-1] == "(#11 never arrived)"
    assert shown["stats"].endswith("; 1 shown twice"), shown["stats"]

    screenshot = tmp_path / "chat.png"
    assert page.focus().save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
