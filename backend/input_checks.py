"""Input every API request must pass before any route sees it (issue 11 item 3), checked in ONE place:
the request boundary (`RequestContextMiddleware`), so no route can forget it.

- No NUL character in any decoded JSON string (keys included), path parameter or query parameter:
  PostgreSQL text cannot hold one, so it would otherwise surface as a 500 from the driver.
- JSON nested at most `MAX_JSON_DEPTH` levels (msgspec raises RecursionError around 1,000).
- A request body, when there is one, is JSON (`application/json` or `+json`): HTML forms and
  `text/plain` cannot be sent cross-site with a JSON type without a CORS preflight (login CSRF).

Each problem is reported as a `Problem`: the field's key (`title`, `config.model`, `tags[2]`), where it
came from (`body`, `path`, `query`) and a message, which the boundary answers as a 400 (415 for the type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

MAX_JSON_DEPTH = 32
NUL = "\x00"
NUL_MESSAGE = "must not contain NUL characters"
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    source: str  # body | path | query
    message: str
    status: int = 400

    @property
    def detail(self) -> str:
        if self.message == NUL_MESSAGE:
            return f"NUL characters are not allowed ({self.source} field '{self.key}')"
        return f"invalid {self.source} field '{self.key}': {self.message}"


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_path_and_query(path_params: dict[str, Any], path: str, query_string: bytes) -> Problem | None:
    for name, value in path_params.items():
        if NUL in str(value):
            return Problem(name, "path", NUL_MESSAGE)
    if NUL in path:  # a NUL outside any parameter (e.g. in a literal segment)
        return Problem("path", "path", NUL_MESSAGE)
    if query_string:
        try:
            pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        except ValueError:
            return None  # the framework answers malformed query strings itself
        for name, value in pairs:
            if NUL in name:
                return Problem("query", "query", NUL_MESSAGE)
            if NUL in value:
                return Problem(name, "query", NUL_MESSAGE)
    return None


def check_json_body(body: bytes) -> Problem | None:
    """NUL characters and nesting depth. Malformed JSON is left to the route's own decoding (which
    answers 400 with its message); only what decodes but must not pass is reported here."""
    if not body:
        return None
    if b"\\u0000" not in body and body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return None  # no escaped NUL and too few brackets to nest too deeply: nothing to find
    try:
        document = msgspec.json.decode(body)
    except RecursionError:
        return Problem(_deep_key(body), "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return _walk(document)


def _walk(document: Any) -> Problem | None:
    # (value, path with indices for messages, path of object keys only, depth)
    stack: list[tuple[Any, str, str, int]] = [(document, "", "", 0)]
    while stack:
        value, path, keys, depth = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return Problem(path or "body", "body", NUL_MESSAGE)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            return Problem(keys or "body", "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for name, item in value.items():
                if NUL in name:
                    return Problem(path or "body", "body", NUL_MESSAGE)
                child = f"{path}.{name}" if path else name
                stack.append((item, child, f"{keys}.{name}" if keys else name, depth + 1))
        else:
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]" if path else f"[{index}]", keys, depth + 1))
    return None


def _deep_key(body: bytes) -> str:
    """The object keys leading to where `body` first nests too deeply (`body` when there are none),
    found by a token scan: the document is too deep to decode."""
    stack: list[list[str | None]] = []  # one entry per open container: [key] for objects, [] for arrays
    expect_key = False
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"{", b"["):
            stack.append([None] if token == b"{" else [])
            expect_key = token == b"{"
            if len(stack) > MAX_JSON_DEPTH:
                keys = [str(entry[0]) for entry in stack if entry and entry[0] is not None]
                return ".".join(keys) or "body"
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
            expect_key = False
        elif token == b",":
            expect_key = bool(stack and stack[-1])
        elif token == b":":
            expect_key = False
        elif expect_key and stack and stack[-1]:
            try:
                stack[-1][0] = msgspec.json.decode(token, type=str)
            except (msgspec.DecodeError, UnicodeDecodeError):
                stack[-1][0] = "?"
            expect_key = False
    return "body"
