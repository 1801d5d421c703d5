"""The hub's rule with several processes (demos.realtime_delivery.hub): a channel publishes only
its next number; anything it skipped comes from the store first; a duplicate is dropped. Two
Stores on one SQLite file stand for two processes; no broker, no server."""
import pytest

from demos.realtime_delivery.hub import Hub
from demos.realtime_delivery.store import Store


class Recorder:
    """A subscriber that records what it is handed."""
    def __init__(self):
        self.seqs = []

    def deliver(self, message):
        self.seqs.append(message.seq)


@pytest.fixture
def two_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'messages.db'}"
    other, here = Store(url), Store(url)
    other.create("general")
    hub = Hub(here)
    subscriber = Recorder()
    hub.subscribe("general", subscriber)
    yield other, hub, subscriber
    other.close()
    here.close()


def test_a_doorbell_ahead_of_the_channel_publishes_the_skipped_messages_first(two_processes):
    other, hub, subscriber = two_processes
    messages = [other.append("general", "ann", f"m{i}") for i in range(1, 4)]
    hub.heard("general", 3, messages[2])          # 1 and 2 rang late, or never
    hub.heard("general", 1, messages[0])          # duplicates now
    hub.heard("general", 2, messages[1])
    hub.heard("general", 3, messages[2])
    assert subscriber.seqs == [1, 2, 3]
    assert hub.stats["doorbells.duplicate"] == 3
    assert [m.seq for m in hub.after("general", 0).messages] == [1, 2, 3]   # memory is unbroken


def test_a_local_send_after_another_process_wrote_publishes_those_first(two_processes):
    other, hub, subscriber = two_processes
    other.append("general", "ann", "from the other process")
    assert hub.send("general", "bob", "from here").seq == 2
    assert subscriber.seqs == [1, 2]


def test_the_safety_net_finds_what_no_doorbell_announced(two_processes):
    other, hub, subscriber = two_processes
    assert hub.catch_up_all() == 0
    other.append("general", "ann", "silent")
    assert hub.catch_up_all() == 1
    assert hub.catch_up_all() == 0
    assert subscriber.seqs == [1]


def test_a_doorbell_for_a_conversation_nobody_here_follows_is_ignored(two_processes):
    other, hub, _ = two_processes
    other.create("elsewhere")
    message = other.append("elsewhere", "ann", "hi")
    hub.heard("elsewhere", 1, message)
    assert "elsewhere" not in hub.channels
    assert hub.channel("elsewhere").last_seq == 1   # a channel made later starts from the store


def test_a_resend_is_neither_stored_nor_published_again(two_processes):
    _, hub, subscriber = two_processes
    announced = []
    hub.announce = lambda conversation, message: announced.append(message.seq)
    first = hub.send("general", "ann", "hello", client_id="k1")
    again = hub.send("general", "ann", "hello", client_id="k1")
    assert (first.seq, again.seq, again.repeated) == (1, 1, True)
    assert subscriber.seqs == [1] and announced == [1]
    assert (hub.stats["messages_stored"], hub.stats["sends.repeated"]) == (1, 1)
    assert hub.send("general", "ann", "hello", client_id="k2").seq == 2
    assert subscriber.seqs == [1, 2]
