"""Read a JSONL file of threads (one JSON object a line) into an `ImportSource`.

Each line: {"thread_id", "title", "body", "author", "created" ("YYYY-MM-DD HH:MM:SS", UTC),
"category"?, "tags"?, "comments": [{"comment_id", "author", "created", "text"}]}. Other fields are
ignored (labels, if the file carries any, are never imported)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from backend.importers.schemas import ImportSource, SourcePost, SourceThread, SourceUser


class JsonlError(ValueError):
    """A line that is not a thread object."""


def parse_time(text: Any) -> datetime:
    if not text:
        return datetime(1970, 1, 1, tzinfo=UTC)
    value = datetime.fromisoformat(str(text).replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _user(users: dict[str, SourceUser], author: Any) -> str:
    key = str(author or "anonymous")
    users.setdefault(key, SourceUser(external_id=key, name=key))
    return key


def read_jsonl(path: Path) -> ImportSource:
    path = Path(path)
    users: dict[str, SourceUser] = {}
    threads: list[SourceThread] = []
    seen: set[str] = set()
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = msgspec.json.decode(line)
                thread_id = str(item["thread_id"])
                title = str(item.get("title") or "").strip() or str(item.get("body") or "")[:80].strip()
                question = SourcePost(
                    external_id=thread_id,
                    author=_user(users, item.get("author")),
                    body=str(item.get("body") or "").strip() or title,  # a question may be all title
                    created_at=parse_time(item.get("created")),
                )
                replies = [
                    SourcePost(
                        external_id=str(c["comment_id"]),
                        author=_user(users, c.get("author")),
                        body=str(c.get("text") or ""),
                        created_at=parse_time(c.get("created")),
                    )
                    for c in item.get("comments") or []
                    if str(c.get("text") or "").strip()
                ]
            except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise JsonlError(f"{path.name} line {number}: not a thread object ({exc})") from None
            if thread_id in seen or len(title) < 3 or not question.body.strip():
                continue
            seen.add(thread_id)
            threads.append(
                SourceThread(
                    external_id=thread_id,
                    title=title[:300],
                    category=item.get("category") or None,
                    tags=[str(t) for t in item.get("tags") or []],
                    question=question,
                    replies=sorted(replies, key=lambda p: (p.created_at, p.external_id)),
                )
            )
    return ImportSource(
        name=f"jsonl:{path.stem}",
        default_category="Imported",
        qa_mode=False,
        users=users,
        threads=threads,
    )
