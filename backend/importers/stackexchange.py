"""Read a Stack Exchange data dump folder (Posts.xml, Comments.xml, Users.xml, Tags.xml, PostLinks.xml)
into an `ImportSource`: questions become threads (tags kept), answers and comments replies (a comment
replies to the post it was written under), the accepted answer the solution, users placeholder accounts,
duplicate links (LinkTypeId 3) recorded. Users.xml, Comments.xml, Tags.xml and PostLinks.xml are
optional; Posts.xml is required."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from backend.importers.schemas import ImportSource, SourceDuplicate, SourcePost, SourceThread, SourceUser

QUESTION, ANSWER = "1", "2"
DUPLICATE_LINK = "3"
_TAGS = re.compile(r"<([^<>]+)>")
_SITE = re.compile(r"[^a-z0-9]+")


class DumpError(ValueError):
    """The folder is not a readable Stack Exchange dump."""


def rows(path: Path) -> Iterator[dict[str, str]]:
    """The attributes of each <row> of a dump file, streamed."""
    try:
        # The operator's own dump file; expat >= 2.4 refuses entity-expansion bombs and ElementTree never
        # fetches external entities.
        for _, element in ET.iterparse(path, events=("end",)):  # noqa: S314
            if element.tag == "row":
                yield dict(element.attrib)
                element.clear()
    except ET.ParseError as exc:
        raise DumpError(f"{path.name}: not valid XML ({exc})") from None


def parse_time(text: str | None) -> datetime:
    if not text:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _author(row: dict[str, str], users: dict[str, SourceUser], id_key: str, name_key: str) -> str:
    """External id of the row's author; a user that is gone (only a display name, or nothing) gets a
    stable id of its own."""
    user_id = row.get(id_key)
    if user_id:
        users.setdefault(user_id, SourceUser(external_id=user_id, name=f"user{user_id}"))
        return user_id
    name = (row.get(name_key) or "").strip() or "anonymous"
    key = f"name:{name.lower()}"
    users.setdefault(key, SourceUser(external_id=key, name=name))
    return key


def read_dump(folder: Path, site: str | None = None) -> ImportSource:
    folder = Path(folder)
    posts_file = folder / "Posts.xml"
    if not posts_file.is_file():
        raise DumpError(f"no Posts.xml in {folder}")
    site = _SITE.sub("-", (site or folder.name).lower()).strip("-") or "site"
    users: dict[str, SourceUser] = {}
    if (folder / "Users.xml").is_file():
        for row in rows(folder / "Users.xml"):
            if row.get("Id") and row.get("Id") != "-1":
                users[row["Id"]] = SourceUser(external_id=row["Id"], name=row.get("DisplayName") or f"user{row['Id']}")

    questions: dict[str, dict[str, str]] = {}
    answers: dict[str, list[dict[str, str]]] = {}
    parent_of: dict[str, str] = {}  # answer id -> question id
    for row in rows(posts_file):
        if row.get("PostTypeId") == QUESTION and row.get("Title"):
            questions[row["Id"]] = row
        elif row.get("PostTypeId") == ANSWER and row.get("ParentId"):
            answers.setdefault(row["ParentId"], []).append(row)
            parent_of[row["Id"]] = row["ParentId"]

    comments: dict[str, list[SourcePost]] = {}  # question id -> comments under it or its answers
    if (folder / "Comments.xml").is_file():
        for row in rows(folder / "Comments.xml"):
            post_id = row.get("PostId", "")
            question_id = post_id if post_id in questions else parent_of.get(post_id)
            if question_id is None or not row.get("Text"):
                continue
            comments.setdefault(question_id, []).append(
                SourcePost(
                    external_id=f"c{row['Id']}",
                    author=_author(row, users, "UserId", "UserDisplayName"),
                    body=row["Text"],
                    created_at=parse_time(row.get("CreationDate")),
                    reply_to=post_id,
                )
            )

    threads: list[SourceThread] = []
    for question_id, row in questions.items():
        thread_answers = [
            SourcePost(
                external_id=a["Id"],
                author=_author(a, users, "OwnerUserId", "OwnerDisplayName"),
                body=a.get("Body", ""),
                created_at=parse_time(a.get("CreationDate")),
            )
            for a in answers.get(question_id, [])
        ]
        replies = sorted(thread_answers + comments.get(question_id, []), key=lambda p: (p.created_at, p.external_id))
        accepted = row.get("AcceptedAnswerId")
        threads.append(
            SourceThread(
                external_id=question_id,
                title=row["Title"],
                category=None,
                tags=_TAGS.findall(row.get("Tags", "")),
                question=SourcePost(
                    external_id=question_id,
                    author=_author(row, users, "OwnerUserId", "OwnerDisplayName"),
                    body=row.get("Body", ""),
                    created_at=parse_time(row.get("CreationDate")),
                ),
                replies=replies,
                accepted=accepted if accepted and any(a.external_id == accepted for a in thread_answers) else None,
                views=int(row.get("ViewCount") or 0),
            )
        )
    threads.sort(key=lambda t: (t.question.created_at, int(t.external_id) if t.external_id.isdigit() else 0))

    duplicates: list[SourceDuplicate] = []
    if (folder / "PostLinks.xml").is_file():
        for row in rows(folder / "PostLinks.xml"):
            dup, original = row.get("PostId", ""), row.get("RelatedPostId", "")
            known = dup in questions and original in questions and dup != original
            if row.get("LinkTypeId") == DUPLICATE_LINK and known:
                duplicates.append(SourceDuplicate(thread=dup, original=original))
    return ImportSource(
        name=f"stackexchange:{site}",
        default_category="Questions",
        qa_mode=True,
        users=users,
        threads=threads,
        duplicates=duplicates,
    )
