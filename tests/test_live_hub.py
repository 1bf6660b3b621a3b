"""The hub renders each event once per node: one event text per channel that has subscribers here, the
same text handed to every socket, the stream entry's view parsed once, never per socket (issue 12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec

from backend.realtime_channels import channels_for, event_data
from engine.signals import Signal
from realtime.hub import Hub, HubLimits, View


def _signal(type_: str, payload: dict[str, Any], tenant: str = "t") -> Signal:
    return Signal(
        id="0190d0a0-0000-7000-8000-000000000001",
        type=type_,
        version=1,
        tenant=tenant,
        actor_type="user",
        actor_id=None,
        source="web",
        correlation_id="0190d0a0-0000-7000-8000-000000000002",
        causation_id=None,
        dedupe_key=None,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )


def _entry(signal: Signal, view: dict[str, Any] | None) -> dict[bytes, bytes]:
    return {
        b"id": signal.id.encode(),
        b"tenant": signal.tenant.encode(),
        b"type": signal.type.encode(),
        b"data": msgspec.json.encode(signal),
        b"view": json.dumps(view).encode() if view is not None else b"",
    }


async def test_one_render_per_event_and_channel_whatever_the_number_of_sockets() -> None:
    shaped: list[tuple[str, str]] = []

    def counting_shape(signal: Signal, channel: str, view: View | None) -> Any:
        shaped.append((signal.id, channel))
        return event_data(signal, channel, view)

    hub = Hub(channels_for, HubLimits(queue_size=64), counting_shape)
    received: dict[int, list[str]] = {}
    for n in range(500):
        sub = hub.connect("t", f"u{n}", "ip")
        received[n] = []

        async def send(text: str, box: list[str] = received[n]) -> None:
            box.append(text)

        sub.attach(send)
        hub.subscribe(sub, "thread:th1" if n % 2 else "org", replaying=False)
    post = {"id": "p1", "html": "<p>hi</p>", "reactions": {}}
    signal = _signal("forum.post.created", {"post_id": "p1", "thread_id": "th1", "category_id": "c1"})
    view = {"post": post, "thread": {"id": "th1", "reply_count": 3}, "category": {"id": "c1", "post_count": 9}}

    async with hub.batch():
        hub.dispatch_entry(b"1-1", _entry(signal, view))

    # two channels here have subscribers (org, thread:th1; nobody on category:c1): two renders, not 500
    assert hub.rendered == 2 and sorted(shaped) == [(signal.id, "org"), (signal.id, "thread:th1")]
    assert hub.delivered == 500
    texts = {text for box in received.values() for text in box}
    assert len(texts) == 2  # every socket of a channel got the very same text
    on_thread = json.loads(next(t for t in texts if '"thread:th1"' in t))
    on_org = json.loads(next(t for t in texts if '"channel":"org"' in t))
    assert on_thread["data"]["post"] == post and on_thread["data"]["thread"]["reply_count"] == 3
    assert "post" not in on_org["data"] and on_org["data"]["category"]["post_count"] == 9


async def test_no_render_and_no_view_parsing_without_subscribers() -> None:
    calls: list[str] = []

    def shape(signal: Signal, channel: str, view: View | None) -> Any:
        calls.append(channel)
        return signal.payload

    hub = Hub(channels_for, HubLimits(), shape)
    sub = hub.connect("t", "u", "ip")
    hub.subscribe(sub, "thread:other", replaying=False)
    signal = _signal("forum.post.edited", {"post_id": "p", "thread_id": "th1", "category_id": "c1"})
    hub.dispatch_entry(b"1-2", _entry(signal, {"post": {"id": "p"}}))
    assert calls == [] and hub.rendered == 0


def test_views_reach_only_the_channels_that_draw_them() -> None:
    raw = msgspec.json.decode(
        b'{"post": {"html": "secret"}, "thread": {"id": "th"}, "category": {"id": "c"}, "reactions": {"like": 1}}',
        type=View,
    )
    created = _signal("forum.post.created", {"post_id": "p", "thread_id": "th", "category_id": "c"})
    thread_data = event_data(created, "thread:th", raw)
    assert set(thread_data) >= {"post", "thread", "category", "reactions"}
    for channel in ("org", "category:c"):
        assert set(event_data(created, channel, raw)) == {"post_id", "thread_id", "category_id", "thread", "category"}
    flagged = _signal("forum.moderation.flag.created", {"post_id": "p", "thread_id": "th", "flag_id": "f"})
    assert channels_for(flagged) == ["moderation"]
    assert "post" in event_data(flagged, "moderation", raw)
    # edits, reactions, hiding and restoring go to the thread only; hiding no longer only to moderators
    for kind in ("forum.post.edited", "forum.post.reacted", "forum.post.hidden", "forum.post.restored"):
        assert channels_for(_signal(kind, {"post_id": "p", "thread_id": "th", "category_id": "c"})) == ["thread:th"]
    assert event_data(created, "thread:th", None) == created.payload
