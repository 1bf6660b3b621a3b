"""The websocket wire protocol (API.md, "Websocket"): client ops in, server messages out.

Every message is a JSON object tagged by `op`. Server messages are encoded once per channel and the
same text is handed to every subscriber of that channel.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_CHANNEL_LENGTH = 100
CHANNEL_RE = re.compile(r"^[a-z][a-z-]{0,30}(?::[A-Za-z0-9_-]{1,64})?$")


# --- client → server ----------------------------------------------------------------------------------


class Subscribe(msgspec.Struct, frozen=True, tag_field="op", tag="subscribe"):
    channel: str
    since: str | None = None


class Unsubscribe(msgspec.Struct, frozen=True, tag_field="op", tag="unsubscribe"):
    channel: str


class Ping(msgspec.Struct, frozen=True, tag_field="op", tag="ping"):
    pass


ClientOp = Subscribe | Unsubscribe | Ping
_client_decoder = msgspec.json.Decoder(ClientOp)


class InvalidMessage(ValueError):
    """A client message that is not one of the ops above."""


def decode_client_op(text: str | bytes) -> ClientOp:
    try:
        op: ClientOp = _client_decoder.decode(text)
        return op
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidMessage(str(exc)) from None


def is_valid_channel_name(channel: str) -> bool:
    """Syntax only (`kind` or `kind:<id>`); whether the caller may see it is the authorizer's call."""
    return len(channel) <= MAX_CHANNEL_LENGTH and CHANNEL_RE.fullmatch(channel) is not None


# --- server → client ----------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, tag_field="op", tag="event"):
    channel: str
    id: str
    type: str
    data: Any


class Draft(msgspec.Struct, frozen=True, tag_field="op", tag="draft", omit_defaults=True):
    channel: str
    execution_id: str
    seq: int
    delta: str
    # True on the catch-up message a late subscriber gets first: `delta` is the whole text so far.
    snapshot: bool = False


class DraftEnd(msgspec.Struct, frozen=True, tag_field="op", tag="draft_end"):
    channel: str
    execution_id: str
    post_id: str | None
    outcome: str = "saved"  # "saved" (post_id set) | "failed" | "abandoned" (its worker died)


class Resync(msgspec.Struct, frozen=True, tag_field="op", tag="resync"):
    channel: str


class Subscribed(msgspec.Struct, frozen=True, tag_field="op", tag="subscribed"):
    """Acknowledges a subscription once any replay is done: live events follow."""

    channel: str
    replayed: int = 0


class Unsubscribed(msgspec.Struct, frozen=True, tag_field="op", tag="unsubscribed"):
    channel: str


class Error(msgspec.Struct, frozen=True, tag_field="op", tag="error", omit_defaults=True):
    code: str
    detail: str
    channel: str | None = None


class Pong(msgspec.Struct, frozen=True, tag_field="op", tag="pong"):
    pass


ServerMessage = Event | Draft | DraftEnd | Resync | Subscribed | Unsubscribed | Error | Pong
_encoder = msgspec.json.Encoder()


def encode(message: ServerMessage) -> str:
    return _encoder.encode(message).decode()


# Close codes (4000-4999 are the application's). Clients reconnect after 1001/1012/4008.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down: reconnect (to another node)
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_TOO_SLOW = 4008  # the client fell behind its bounded send queue
CLOSE_TOO_MANY_CONNECTIONS = 4029


def close_code_for_status(status: int) -> int:
    """4401 not signed in / bad token, 4403 refused, 4404 org not found or not visible."""
    return 4000 + status if 400 <= status < 500 else 1011
