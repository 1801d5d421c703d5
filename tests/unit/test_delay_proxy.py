"""The delay proxy delays each direction by its share of the RTT, never less, and otherwise
forwards bytes as TCP would: in order, intact, half-closes and resets included."""
import asyncio
import contextlib
import hashlib
import os
import socket
import statistics
import struct
import sys
import threading
import time

import pytest

from load.delay_proxy import DelayProxy, PreciseEpollSelector, main, new_event_loop, parse_address, proxy_in_thread

TEST_TIMEOUT_S = 10


def run(coroutine):
    """Run on the loop the CLI uses (on Linux: timers woken by a timerfd)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coroutine, TEST_TIMEOUT_S))


@contextlib.asynccontextmanager
async def echo_server(handler=None):
    """A server on a free loopback port that sends back what it reads, then ends when the client does."""
    async def echo(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler or echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def connect(proxy: DelayProxy):
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(reader, writer, message: bytes) -> float:
    started = time.monotonic()
    writer.write(message)
    assert await reader.readexactly(len(message)) == message
    return time.monotonic() - started


def test_a_round_trip_takes_the_rtt_and_a_new_connection_one_more_for_the_handshake():
    async def scenario():
        async with echo_server() as port, DelayProxy(("127.0.0.1", port), rtt_s=0.05) as proxy:
            reader, writer = await connect(proxy)
            first = await round_trip(reader, writer, b"hello")
            later = [await round_trip(reader, writer, b"ping %d" % i) for i in range(8)]
            writer.close()
            return first, later

    first, later = run(scenario())
    assert 0.100 <= first < 0.100 + 0.030           # 2 RTT: TCP's handshake, then the request
    assert min(later) >= 0.050, later               # never less than the RTT
    assert statistics.median(later) < 0.050 + 0.005, later


def test_without_the_handshake_the_first_answer_takes_one_rtt():
    async def scenario():
        async with echo_server() as port, DelayProxy(("127.0.0.1", port), 0.04, handshake=False) as proxy:
            reader, writer = await connect(proxy)
            elapsed = await round_trip(reader, writer, b"hello")
            writer.close()
            return elapsed

    assert 0.040 <= run(scenario()) < 0.040 + 0.020


def test_each_direction_gets_its_own_delay():
    arrivals = []

    async def stamp(reader, writer):             # notes when the request arrived, then echoes it
        data = await reader.read(100)
        arrivals.append(time.monotonic())
        writer.write(data)
        await writer.drain()
        writer.close()

    async def scenario():
        async with echo_server(stamp) as port, \
                DelayProxy(("127.0.0.1", port), up_s=0.060, down_s=0.010, handshake=False) as proxy:
            reader, writer = await connect(proxy)
            sent = time.monotonic()
            writer.write(b"x")
            await reader.readexactly(1)
            writer.close()
            return arrivals[0] - sent, time.monotonic() - arrivals[0]

    up, down = run(scenario())
    assert 0.060 <= up < 0.060 + 0.015
    assert 0.010 <= down < 0.010 + 0.015


def test_many_small_writes_arrive_in_order_and_none_before_its_delay():
    one_way_s = 0.020
    early = []

    async def check_times(reader, writer):       # each line says when it was sent
        while line := await reader.readline():
            sent_at = float(line.split()[1])
            early.append(time.monotonic() - sent_at < one_way_s)
            writer.write(line)
        writer.close()

    async def scenario():
        async with echo_server(check_times) as port, \
                DelayProxy(("127.0.0.1", port), rtt_s=2 * one_way_s) as proxy:
            reader, writer = await connect(proxy)
            sent = []
            for i in range(400):
                line = b"%d %.9f\n" % (i, time.monotonic())
                sent.append(line)
                writer.write(line)
                if i % 7 == 0:
                    await asyncio.sleep(0.001 * (i % 3))   # bursts and pauses
            writer.write_eof()
            received = await reader.read()
            writer.close()
            return b"".join(sent), received

    sent, received = run(scenario())
    assert received == sent
    assert len(early) == 400 and not any(early)


def test_a_large_transfer_arrives_intact_and_the_queue_stays_under_its_cap():
    cap = 1 * 2**20
    payload = os.urandom(8 * 2**20)
    largest_queue = [0]

    async def watch(proxy):
        while True:
            for link in proxy.links:
                largest_queue[0] = max(largest_queue[0], link.up.queued_bytes, link.down.queued_bytes)
            await asyncio.sleep(0.0005)

    async def scenario():
        async with echo_server() as port, \
                DelayProxy(("127.0.0.1", port), rtt_s=0.02, max_queued_bytes=cap) as proxy:
            watcher = asyncio.create_task(watch(proxy))
            reader, writer = await connect(proxy)

            async def send():
                for start in range(0, len(payload), 100_000):
                    writer.write(payload[start:start + 100_000])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            received = await reader.read()
            await sender
            watcher.cancel()
            writer.close()
            return received

    received = run(scenario())
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
    read_size = 256 * 1024                       # asyncio reads up to this much at once
    assert cap / 2 < largest_queue[0] <= cap + read_size


def test_a_slow_reader_holds_the_sender_back():
    cap = 1 * 2**20
    written = [0]
    total = 48 * 2**20
    chunk = os.urandom(2**20)

    async def flood(reader, writer):              # writes as fast as the proxy takes it
        with contextlib.suppress(ConnectionError):
            while written[0] < total:
                writer.write(chunk)
                await writer.drain()
                written[0] += len(chunk)
            writer.write_eof()
        writer.close()

    async def scenario():
        async with echo_server(flood) as port, \
                DelayProxy(("127.0.0.1", port), rtt_s=0.01, max_queued_bytes=cap) as proxy:
            reader, writer = await connect(proxy)
            await asyncio.sleep(0.5)               # the client reads nothing meanwhile
            held_back_at = written[0]
            queued = max(link.down.queued_bytes for link in proxy.links)
            received = await reader.read()
            writer.close()
            return held_back_at, queued, len(received)

    held_back_at, queued, received = run(scenario())
    assert queued <= cap + 256 * 1024
    assert held_back_at < total / 2, held_back_at   # kernel buffers and the cap, not 48 MiB
    assert received == total


def test_a_half_close_reaches_the_server_after_the_delay_and_the_answer_still_comes_back():
    one_way_s = 0.03
    seen = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve_one():                          # reads to EOF, answers, then closes
            connection, _ = listener.accept()
            with connection:
                data = b""
                while chunk := connection.recv(65536):
                    data += chunk
                seen["eof_at"] = time.monotonic()
                connection.sendall(data + b" and bye")

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        with proxy_in_thread(listener.getsockname(), rtt_s=2 * one_way_s, handshake=False) as proxy, \
                socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"hello")
            client.shutdown(socket.SHUT_WR)
            shut_at = time.monotonic()
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            done_at = time.monotonic()
        server.join(5)
    assert answer == b"hello and bye"
    assert one_way_s <= seen["eof_at"] - shut_at < one_way_s + 0.02
    assert done_at - shut_at >= 2 * one_way_s


def test_two_hundred_concurrent_connections_each_get_their_own_bytes():
    async def client(proxy, number):
        reader, writer = await connect(proxy)
        payload = b"%d:" % number + os.urandom(2000 + number * 50)
        for start in range(0, len(payload), 3000):
            writer.write(payload[start:start + 3000])
            await asyncio.sleep(0.001)
        writer.write_eof()
        received = await reader.read()
        writer.close()
        return received == payload, len(payload)

    async def scenario():
        async with echo_server() as port, DelayProxy(("127.0.0.1", port), rtt_s=0.05) as proxy:
            results = await asyncio.gather(*(client(proxy, n) for n in range(200)))
            for _ in range(100):                  # the last closes are still on their way
                if not proxy.links:
                    break
                await asyncio.sleep(0.01)
            return results, proxy.stats()

    results, stats = run(scenario())
    assert all(intact for intact, _ in results) and len(results) == 200
    sent = sum(size for _, size in results)
    assert stats == {"connections_accepted": 200, "connections_open": 0, "bytes_up": sent, "bytes_down": sent}


def test_a_reset_by_the_server_reaches_the_client_after_the_data_before_it():
    async def answer_then_reset(reader, writer):
        await reader.read(100)
        writer.write(b"partial")
        await writer.drain()
        await asyncio.sleep(0.005)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def scenario():
        async with echo_server(answer_then_reset) as port, \
                DelayProxy(("127.0.0.1", port), rtt_s=0.04, handshake=False) as proxy:
            reader, writer = await connect(proxy)
            writer.write(b"go")
            started = time.monotonic()
            data = await reader.readexactly(7)
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()
            return data, time.monotonic() - started

    data, elapsed = run(scenario())
    assert data == b"partial"
    assert 0.040 <= elapsed < 0.040 + 0.030


def test_a_refused_target_resets_the_client_instead_of_hanging():
    with socket.create_server(("127.0.0.1", 0)) as unused:
        closed_port = unused.getsockname()[1]

    async def scenario():
        async with DelayProxy(("127.0.0.1", closed_port), rtt_s=0.02) as proxy:
            reader, writer = await connect(proxy)
            writer.write(b"anyone?")
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()
            for _ in range(100):
                if not proxy.links:
                    break
                await asyncio.sleep(0.01)
            return len(proxy.links)

    assert run(scenario()) == 0


def test_addresses_and_arguments():
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:80") == ("::1", 80)
    with pytest.raises(SystemExit):
        main(["--target", "127.0.0.1:1"])         # no delay given: refuse rather than guess
    with pytest.raises(SystemExit):
        main(["--target", "nowhere", "--rtt-ms", "50"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the timerfd is Linux's")
def test_the_loop_wakes_for_its_timers_on_time_and_sleeps_when_it_has_none():
    async def lateness():
        loop = asyncio.get_running_loop()
        assert isinstance(loop._selector, PreciseEpollSelector)
        late = []
        for i in range(100):
            due = loop.time() + 0.001 + 0.00037 * (i % 5)     # fractions of a millisecond
            fired = loop.create_future()
            loop.call_at(due, lambda due=due: fired.set_result(loop.time() - due))
            late.append(await fired)
        cpu = time.process_time()
        await asyncio.sleep(0.2)
        return late, time.process_time() - cpu

    # best of three: on a busy machine (a benchmark beside the tests) one attempt can be descheduled
    attempts = [run(lateness()) for _ in range(3)]
    late, cpu_while_sleeping = min(attempts, key=lambda attempt: statistics.median(attempt[0]))
    assert min(late) >= 0
    assert statistics.median(late) < 0.0006, sorted(late)  # plain epoll: about 0.8 ms, in whole ms
    assert min(cpu for _, cpu in attempts) < 0.05
