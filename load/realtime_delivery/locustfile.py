"""Web IM load: a publisher at a fixed rate (open loop) and receivers on one transport.

Every receiver reports each message it receives as a Locust request named ``deliver <transport>``
whose response time is the end-to-end delivery latency, from the publisher's ``client_ts`` to the
receiver's receipt; a message published before the receiver subscribed is reported as
``replay <transport>`` instead, and one received while Locust is still spawning receivers (busy
connecting them) as ``ramp <transport>``. A lost, duplicated or reordered message is a failure named
``order <transport>``; a gap marker from the server (the receiver fell behind the window) is a
request named ``gap <transport>``. Poll requests show as ``poll short`` and ``poll long``, so
requests per delivered message come straight out of Locust's stats.

Pick the transport by naming the user classes (one transport per run, so server CPU per delivery
can be attributed):

    locust -f load/realtime_delivery/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 101 -r 50 -t 30s --message-rate 20 Publisher LongPoller
"""
import itertools
import json
import random
import secrets
import time

import requests
import websocket
from gevent.lock import Semaphore
from locust import FastHttpUser, User, events, task
from locust.user.users import LOCUST_STATE_STOPPING

from demos.realtime_delivery.sse_parser import SseParser
import load.recorder  # noqa: F401  (registers --raw-dir and keeps the raw record of every request)
from load import pacing
from load.realtime_delivery.order import OrderCheck

receiver_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--conversations", type=int, default=1, help="conversations the load spreads over")
    parser.add_argument("--message-rate", type=float, default=10.0, help="messages per second, all publishers")
    parser.add_argument("--message-bytes", type=int, default=100, help="body size of each message")
    parser.add_argument("--publishers", type=int, default=1, help="Publisher users sharing the rate")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="short polling interval (s)")
    parser.add_argument("--long-poll-timeout", type=float, default=30.0, help="long poll hold (s)")
    parser.add_argument("--ws-url", default="", help="ws://host:port (default: from the server's /api/config)")
    parser.add_argument("--publish-host", default="",
                        help="where the publisher sends (default --host): the server itself when receivers "
                             "go through a delay proxy, so only the receivers' link is slow and measured")


@events.init.add_listener
def _fix_publisher_count(environment, **_):
    if environment.parsed_options:
        Publisher.fixed_count = environment.parsed_options.publishers


def conversation_ids(options) -> list[str]:
    return [f"c{number}" for number in range(options.conversations)]


prepared: dict = {}
preparing = Semaphore()


def prepare_server(host: str, conversation_ids: list[str]) -> dict:
    """Once per Locust process, however many receivers it spawns: create the conversations
    (idempotent: whoever comes first, publisher or receiver) and read where the WebSocket listens.
    A request per receiver would cost a connection each: 10,000 receivers would leave tens of
    thousands of sockets in TIME_WAIT and run out of ephemeral ports."""
    with preparing:
        if host not in prepared:
            with requests.Session() as session:
                for cid in conversation_ids:
                    session.post(f"{host}/api/conversations", json={"id": cid}, timeout=10).raise_for_status()
                config = session.get(f"{host}/api/config", timeout=10).json()
            prepared[host] = {"ws_url": config.get("ws_url") or f"ws://127.0.0.1:{config['ws_port']}"}
        return prepared[host]


class Publisher(FastHttpUser):
    """Sends messages round-robin over the conversations, evenly spaced: open loop. Each message
    carries its own ``id`` (the send's idempotency key), as a careful client's would: a resend
    after a lost answer would be stored once."""
    fixed_count = 1

    def __init__(self, environment):
        options = environment.parsed_options
        if options and options.publish_host:
            self.host = options.publish_host   # before FastHttpUser builds its client from it
        super().__init__(environment)

    def on_start(self):
        options = self.environment.parsed_options
        self.conversations = itertools.cycle(conversation_ids(options))
        for cid in conversation_ids(options):
            self.client.post("/api/conversations", json={"id": cid}, name="setup")
        self.pace = pacing.open_loop(options.message_rate / options.publishers, constant=True)
        self.body = "x" * options.message_bytes
        self.ids = (f"{secrets.token_hex(4)}-{n}" for n in itertools.count())   # unique across users and processes

    def wait_time(self):
        return self.pace(self)

    @task
    def publish(self):
        cid = next(self.conversations)
        self.client.post(f"/api/conversations/{cid}/messages", name="publish",
                         json={"sender": "publisher", "body": self.body, "client_ts": time.time(),
                               "id": next(self.ids)})


class Receiver:
    """What every transport's receiver does with what it gets: check order, report latency."""
    transport = ""

    def subscribe(self, streaming: bool = False):
        """Pick a conversation. A poller is subscribed from its first poll on; a stream only once
        connected (``mark_subscribed``): over a slow link connecting takes round trips, and what
        was published meanwhile comes as a replay, not as a push."""
        options = self.environment.parsed_options
        ids = conversation_ids(options)
        self.cid = ids[next(receiver_numbers) % len(ids)]
        self.order = OrderCheck()
        prepare_server(options.publish_host or self.host, ids)   # set-up, not the measured link
        self.subscribed_at = float("inf") if streaming else time.time()

    def mark_subscribed(self):
        self.subscribed_at = min(self.subscribed_at, time.time())   # the first connection only

    def report(self, name: str, started: float, response_time_ms: float, length: int = 0, error=None):
        self.environment.events.request.fire(
            request_type="IM", name=f"{name} {self.transport}", start_time=started,
            response_time=response_time_ms, response_length=length, exception=error, context={})

    def receive(self, message: dict) -> None:
        now = time.time()
        if message.get("gap") or message.get("type") == "gap":
            self.report("gap", now, 0.0)
            self.order.gap(int(message.get("first_seq") or 0))
            return
        problem, new = self.order.take(int(message["seq"]))
        if problem is not None:
            self.report("order", now, 0.0, error=AssertionError(f"{self.cid}: {problem}"))
        if not new:
            return
        sent = float(message.get("client_ts") or message.get("sent_at") or now)
        if sent < self.subscribed_at:
            name = "replay"       # published before this receiver asked: catching up, not pushed
        elif pacing.ramping():
            name = "ramp"         # delivered while receivers are still being connected
        else:
            name = "deliver"
        self.report(name, sent, max(0.0, (now - sent) * 1000), len(message.get("body", "")))

    def poll_page(self, path: str, name: str) -> None:
        """One poll (the pollers are FastHttpUsers): what it answers is checked and reported."""
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code == 200:
                self.receive_page(response.json())

    def receive_page(self, page: dict) -> None:
        if page.get("gap"):
            self.receive({"gap": True, "first_seq": page.get("first_seq")})
        for message in page.get("messages", []):
            self.receive(message)

    def stopping(self) -> bool:
        return self._state == LOCUST_STATE_STOPPING


class ShortPoller(Receiver, FastHttpUser):
    """Asks every ``--poll-interval`` seconds, whether or not anything is new."""
    transport = "short-poll"

    def on_start(self):
        self.subscribe()
        self.interval = self.environment.parsed_options.poll_interval
        self.pace = pacing.open_loop(1.0 / self.interval, constant=True)
        time.sleep(random.uniform(0, self.interval))   # spread the users' phases over one interval
        self._due = time.monotonic()                   # the first poll is due now

    def wait_time(self):
        return self.pace(self)

    @task
    def poll(self):
        self.poll_page(f"/api/conversations/{self.cid}/messages?after={self.order.last_seq}", "poll short")


class LongPoller(Receiver, FastHttpUser):
    """Keeps one request always pending; asks again at once with its new N."""
    transport = "long-poll"

    def on_start(self):
        self.subscribe()
        self.hold = self.environment.parsed_options.long_poll_timeout
        self.client.client.network_timeout = self.hold + 15   # geventhttpclient's read timeout

    @task
    def poll(self):
        self.poll_page(f"/api/conversations/{self.cid}/poll?after={self.order.last_seq}&timeout={self.hold:g}", "poll long")


class SseReceiver(Receiver, User):
    """One streaming response; on a dropped stream, reconnects with Last-Event-ID."""
    transport = "sse"

    def on_start(self):
        self.subscribe(streaming=True)
        self.session = requests.Session()

    @task
    def listen(self):
        url = f"{self.host}/api/conversations/{self.cid}/events?after={self.order.last_seq}"
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(self.order.last_seq)}
        started = time.time()
        try:
            with self.session.get(url, headers=headers, stream=True, timeout=(10, 30)) as response:   # heartbeats every 15 s
                self.report("connect", started, (time.time() - started) * 1000)
                self.mark_subscribed()
                parser = SseParser()
                for line in response.iter_lines(chunk_size=None, decode_unicode=True):
                    if self.stopping():
                        return
                    event = parser.feed(line)
                    if event is not None and event["event"] in ("message", "gap"):
                        payload = json.loads(event["data"])
                        self.receive(payload if event["event"] == "message" else {"gap": True, **payload})
        except (requests.RequestException, ValueError) as error:
            if not self.stopping():
                self.report("connect", started, (time.time() - started) * 1000, error=error)
                time.sleep(1)


class WebSocketReceiver(Receiver, User):
    """Sends its last N on connect; the server replays, then pushes. Resumes after a close."""
    transport = "websocket"

    def on_start(self):
        self.subscribe(streaming=True)
        options = self.environment.parsed_options
        self.ws_base = options.ws_url or prepare_server(options.publish_host or self.host, [])["ws_url"]

    @task
    def listen(self):
        started = time.time()
        try:
            connection = websocket.create_connection(f"{self.ws_base}/ws/{self.cid}", timeout=10)
        except (OSError, websocket.WebSocketException) as error:
            self.report("connect", started, (time.time() - started) * 1000, error=error)
            time.sleep(1)
            return
        self.report("connect", started, (time.time() - started) * 1000)
        try:
            connection.settimeout(2.0)   # to notice the end of the run; 10,000 idle clients wake 5,000 times a second
            connection.send(json.dumps({"after": self.order.last_seq}))
            while not self.stopping():
                try:
                    frame = connection.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not frame:
                    break                       # closed (e.g. 1013 "try again later"): resume from N
                message = json.loads(frame)
                if message.get("type") in ("message", "gap"):
                    self.receive(message)
                elif message.get("type") == "subscribed":
                    self.mark_subscribed()      # what came before was the replay of what it missed
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            connection.close()
