"""The hub's send path in isolation: eager sends, the hand-off to a task when a send blocks, order,
overflow, failures, batches. The socket here is `Socket`, which behaves like uvicorn's websocket send
(wait while the transport is paused, then write synchronously); the real server is in
test_realtime*.py."""

from __future__ import annotations

import asyncio

import pytest

from realtime.hub import Hub, HubLimits, Subscriber
from realtime.protocol import CLOSE_TOO_SLOW


class Socket:
    def __init__(self, log: list[tuple[str, str]] | None = None, name: str = "s") -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[str] = []
        self.log = log if log is not None else []
        self.name = name
        self.fail: BaseException | None = None
        self.abandoned = False

    async def send(self, text: str) -> None:
        try:
            await self.writable.wait()
        except (asyncio.CancelledError, GeneratorExit):
            self.abandoned = True
            raise
        if self.fail is not None:
            raise self.fail
        self.sent.append(text)
        self.log.append((self.name, text))


def make(queue_size: int = 8) -> tuple[Hub, Subscriber, Socket]:
    hub = Hub(lambda _signal: [], HubLimits(queue_size=queue_size))
    sub = hub.connect("t", "u", "ip")
    sock = Socket()
    sub.attach(sock.send)
    return hub, sub, sock


def make_many(names: tuple[str, ...]) -> tuple[Hub, list[Subscriber], list[tuple[str, str]]]:
    """One subscriber per name, all writing to one shared log of (name, message)."""
    hub = Hub(lambda _signal: [], HubLimits(queue_size=64))
    log: list[tuple[str, str]] = []
    subs = []
    for name in names:
        sub = hub.connect("t", name, "ip")
        sub.attach(Socket(log, name).send)
        subs.append(sub)
    return hub, subs, log


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_idle_socket_is_written_at_once_without_a_task() -> None:
    _hub, sub, sock = make()
    tasks_before = len(asyncio.all_tasks())
    sub.push("a")
    sub.push("b")
    assert sock.sent == ["a", "b"]  # no await in between: written on the caller's stack
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_blocked_send_moves_to_a_task_and_keeps_the_order() -> None:
    _hub, sub, sock = make()
    sock.writable.clear()
    for text in ("1", "2", "3"):
        sub.push(text)
    assert sock.sent == [] and list(sub.backlog) == ["2", "3"] and sub.send_started > 0
    sock.writable.set()
    await turns()
    assert sock.sent == ["1", "2", "3"] and not sub.backlog and sub.send_started == 0
    sub.push("4")  # idle again: eager
    assert sock.sent[-1] == "4"


async def test_overflowing_the_backlog_kills_with_too_slow() -> None:
    hub, sub, sock = make(queue_size=4)
    sock.writable.clear()
    for i in range(1 + 4):  # one blocked in the send, four waiting
        sub.push(str(i))
    assert not sub.killed.is_set()
    sub.push("one too many")
    assert sub.killed.is_set() and sub.close_code == CLOSE_TOO_SLOW and hub.slow_closed == 1
    sub.push("after")  # ignored once killed
    assert "after" not in sub.backlog
    await sub.detach()
    assert sock.abandoned  # the blocked send was ended, not left behind


async def test_detach_cancels_a_send_the_drain_task_has_taken_over() -> None:
    _hub, sub, sock = make()
    sock.writable.clear()
    sub.push("x")
    await turns()  # the drain task now waits in the send
    await sub.detach()
    assert sock.abandoned and sock.sent == []


@pytest.mark.parametrize("blocked", [False, True])
async def test_a_peer_gone_mid_send_ends_the_socket_quietly(blocked: bool) -> None:
    _hub, sub, sock = make()
    sock.fail = ConnectionResetError()
    if blocked:
        sock.writable.clear()
        sub.push("x")
        sock.writable.set()
        await turns()
    else:
        sub.push("x")
    assert sub.peer_gone and sub.killed.is_set()


async def test_an_unexpected_send_error_closes_with_1011() -> None:
    _hub, sub, sock = make()
    sock.fail = ValueError("bug")
    sub.push("x")
    assert sub.killed.is_set() and sub.close_code == 1011 and not sub.peer_gone


async def test_pushes_before_attach_go_first() -> None:
    hub = Hub(lambda _signal: [], HubLimits(queue_size=8))
    sub = hub.connect("t", "u", "ip")
    sub.push("early")
    sock = Socket()
    sub.attach(sock.send)
    sub.push("later")  # queued behind "early" until the drain task ran
    await turns()
    assert sock.sent == ["early", "later"]


async def test_a_batch_sends_each_socket_its_share_back_to_back() -> None:
    hub, subs, log = make_many(("a", "b"))
    async with hub.batch():
        for entry in ("1", "2", "3"):
            for sub in subs:
                sub.push(entry)
        assert log == []  # held until the batch ends
    assert log == [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("b", "2"), ("b", "3")]


async def test_a_batch_releases_in_chunks_and_keeps_each_sockets_order() -> None:
    hub, subs, log = make_many(("a", "b", "c"))

    async def batch() -> None:
        async with hub.batch(release_chunk=2):
            for entry in ("1", "2"):
                for sub in subs:
                    sub.push(entry)

    releasing = asyncio.create_task(batch())
    await asyncio.sleep(0)  # the batch released "a" (2 messages) and gave the loop a turn
    assert log == [("a", "1"), ("a", "2")]
    for sub in subs:
        sub.push("3")  # "a" is released: sent now; "b" and "c" still hold: it queues behind their share
    assert log[-1] == ("a", "3")
    await releasing
    assert [m for name, m in log if name == "b"] == ["1", "2", "3"]
    assert [m for name, m in log if name == "c"] == ["1", "2", "3"]


async def test_put_waits_for_room_instead_of_overflowing() -> None:
    _hub, sub, sock = make(queue_size=4)
    sock.writable.clear()
    sub.push("0")  # blocked
    writer = asyncio.create_task(_put_all(sub, [str(i) for i in range(1, 10)]))
    await turns()
    assert not writer.done() and len(sub.backlog) <= 2 and not sub.killed.is_set()
    sock.writable.set()
    await asyncio.wait_for(writer, 5)
    await turns()
    assert sock.sent == [str(i) for i in range(10)] and not sub.killed.is_set()


async def _put_all(sub: Subscriber, texts: list[str]) -> None:
    for text in texts:
        await sub.put(text)


async def test_a_send_that_only_yields_a_turn_is_finished_too() -> None:
    hub = Hub(lambda _signal: [], HubLimits(queue_size=8))
    sub = hub.connect("t", "u", "ip")
    sent: list[str] = []

    async def send(text: str) -> None:
        await asyncio.sleep(0)  # a bare yield, not a future
        sent.append(text)

    sub.attach(send)
    sub.push("a")
    sub.push("b")
    assert sent == []
    await turns()
    assert sent == ["a", "b"]


async def test_a_batch_cancelled_mid_release_releases_everyone_at_once() -> None:
    hub, subs, log = make_many(("a", "b", "c"))

    async def batch() -> None:
        async with hub.batch(release_chunk=1):
            for sub in subs:
                sub.push("1")

    releasing = asyncio.create_task(batch())
    await asyncio.sleep(0)  # "a" released, then the batch yields
    releasing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await releasing
    assert sorted(log) == [("a", "1"), ("b", "1"), ("c", "1")]
    subs[1].push("2")  # nobody is left holding: sent at once
    assert log[-1] == ("b", "2")
