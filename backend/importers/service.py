"""Import use cases: write source threads into the org as forum history.

They run in the caller's tenant unit of work (the import pipeline opens one per batch, with signal
source "import") and write what the forum's own use cases write: rows rendered by the same sanitizing
renderer, the same counters, the same `forum.*` signals (so search, live views and the outbox see
them), with the source's timestamps kept. What only makes sense for live posting is left out: posting
limits, spam screening, notifications and mentions. Agents ignore these signals (`is_imported`).

Every imported object gets an `import_record` row in the same transaction, so a second run skips it
(idempotent) and a run interrupted mid-batch resumes with that batch (its rows were rolled back).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from backend.content import render_markdown
from backend.context import RequestContext
from backend.forum import signals as sig
from backend.forum.service import slugify
from backend.importers.schemas import SourceDuplicate, SourcePost, SourceThread, SourceUser
from engine import db
from engine.ids import uuid7
from engine.signals import emit

UNUSABLE_PASSWORD = "!placeholder"  # not an argon2 hash: verification always fails, nobody signs in
MAX_TAG = 64


@dataclass(slots=True)
class ImportCounts:
    threads: int = 0
    posts: int = 0
    users: int = 0
    solutions: int = 0
    duplicates: int = 0
    skipped: int = 0  # already imported by an earlier run

    def add(self, other: ImportCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


async def lock_source(ctx: RequestContext, source: str) -> None:
    """Serialize concurrent runs of the same import into the same org, one batch at a time (held until the
    batch's transaction ends): a second run then finds the first one's records instead of racing it."""
    key = f"import:{ctx.require_org().slug}:{source}"
    await db.fetchval("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def recorded(source: str, kind: str, external_ids: Iterable[str]) -> dict[str, uuid.UUID | None]:
    rows = await db.fetch(
        "SELECT external_id, local_id FROM import_record WHERE source = $1 AND kind = $2 AND external_id = ANY($3)",
        source,
        kind,
        list(external_ids),
    )
    return {r["external_id"]: r["local_id"] for r in rows}


async def record(source: str, kind: str, external_id: str, local_id: uuid.UUID | None) -> None:
    await db.execute(
        "INSERT INTO import_record (source, kind, external_id, local_id) VALUES ($1, $2, $3, $4)",
        source,
        kind,
        external_id,
        local_id,
    )


# --- users --------------------------------------------------------------------------------------------


def placeholder_username(org: str, source: str, user: SourceUser, length: int = 8) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", user.name).strip("_")[:18] or "user"
    digest = hashlib.sha256(f"{org}\0{source}\0{user.external_id}".encode()).hexdigest()[:length]
    return f"{base}_{digest}"


async def ensure_placeholders(
    ctx: RequestContext, source: str, users: Iterable[SourceUser]
) -> tuple[dict[str, uuid.UUID], int]:
    """Local user ids for the source's users, creating placeholder accounts (no usable password, not
    org members) for those not imported yet; and how many were created."""
    org = ctx.require_org().slug
    wanted = {u.external_id: u for u in users}
    known = await recorded(source, "user", wanted)
    ids = {ext: local for ext, local in known.items() if local is not None}
    created = 0
    for ext, user in wanted.items():
        if ext in ids:
            continue
        placeholder_of = f"{org}/{source}/{ext}"
        user_id = await db.fetchval("SELECT id FROM users WHERE placeholder_of = $1", placeholder_of)
        for length in (8, 16, 32):
            if user_id is not None:
                break
            username = placeholder_username(org, source, user, length)
            user_id = await db.fetchval(
                "INSERT INTO users (id, username, email, password_hash, placeholder_of)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                uuid7(),
                username,
                f"{username.lower()}@placeholder.invalid",
                UNUSABLE_PASSWORD,
                placeholder_of,
            )
        if user_id is None:
            raise RuntimeError(f"could not create a placeholder account for {source} user {ext}")
        await record(source, "user", ext, user_id)
        ids[ext] = user_id
        created += 1
    return ids, created


# --- categories ---------------------------------------------------------------------------------------


async def ensure_category(ctx: RequestContext, name: str, *, qa_mode: bool) -> uuid.UUID:
    """The category of that name (or slug), created when missing (emits forum.category.created)."""
    ctx.require_role("admin")
    slug = slugify(name, 50)
    existing = await db.fetchval("SELECT id FROM category WHERE slug = $1", slug)
    if existing is not None:
        return uuid.UUID(str(existing))
    category_id = uuid7()
    await db.execute(
        "INSERT INTO category (id, name, slug, qa_mode) VALUES ($1, $2, $3, $4)", category_id, name, slug, qa_mode
    )
    await emit(sig.CategoryCreated(category_id=str(category_id), slug=slug, name=name, qa_mode=qa_mode))
    return category_id


# --- threads ------------------------------------------------------------------------------------------

_INSERT_POST = """
INSERT INTO post (id, thread_id, author_user_id, role, reply_to_post_id, content_markdown, content_html,
                  created_at, updated_at)
VALUES ($1, $2, $3, 'human', $4, $5, $6, $7, $7)
"""


async def _insert_post(
    thread_id: uuid.UUID, category_id: uuid.UUID, post: SourcePost, author: uuid.UUID, reply_to: uuid.UUID | None
) -> uuid.UUID:
    post_id = uuid7()
    await db.execute(
        _INSERT_POST, post_id, thread_id, author, reply_to, post.body, render_markdown(post.body), post.created_at
    )
    await _emit_post_created(post_id, thread_id, category_id, author, reply_to, is_first_post=False)
    return post_id


async def _emit_post_created(
    post_id: uuid.UUID,
    thread_id: uuid.UUID,
    category_id: uuid.UUID,
    author: uuid.UUID,
    reply_to: uuid.UUID | None,
    *,
    is_first_post: bool,
) -> None:
    """An imported post's signal (the envelope marks it imported: no agent acts on it)."""
    await emit(
        sig.PostCreated(
            post_id=str(post_id),
            thread_id=str(thread_id),
            category_id=str(category_id),
            author_user_id=str(author),
            author_agent_id=None,
            role="human",
            reply_to_post_id=str(reply_to) if reply_to else None,
            is_first_post=is_first_post,
            mentioned_user_ids=[],
            mentioned_agents=[],
        )
    )


async def import_thread(
    ctx: RequestContext, source: str, thread: SourceThread, category_id: uuid.UUID, users: dict[str, uuid.UUID]
) -> ImportCounts:
    """Write one source thread (or the replies and solution it gained since an earlier run)."""
    ctx.require_role("admin")
    counts = ImportCounts()
    post_ids = await recorded(source, "post", [thread.external_id, *(p.external_id for p in thread.replies)])
    thread_id = (await recorded(source, "thread", [thread.external_id])).get(thread.external_id)
    if thread_id is None:
        thread_id = await _create_thread(source, thread, category_id, users[thread.question.author])
        post_ids[thread.external_id] = await db.fetchval(
            "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", thread_id
        )
        counts.threads += 1
        counts.posts += 1
    else:
        counts.skipped += 1
        category_id = await db.fetchval("SELECT category_id FROM thread WHERE id = $1", thread_id)
    new_replies = [p for p in thread.replies if p.external_id not in post_ids]
    last_activity: datetime | None = None
    for reply in new_replies:
        reply_to = post_ids.get(reply.reply_to) if reply.reply_to else None
        post_id = await _insert_post(thread_id, category_id, reply, users[reply.author], reply_to)
        await record(source, "post", reply.external_id, post_id)
        post_ids[reply.external_id] = post_id
        last_activity = max(last_activity or reply.created_at, reply.created_at)
        counts.posts += 1
    if new_replies:
        await db.execute(
            "WITH t AS (UPDATE thread SET reply_count = reply_count + $3,"
            " last_activity_at = greatest(last_activity_at, $4) WHERE id = $1)"
            " UPDATE category SET post_count = post_count + $3, last_activity_at = greatest(last_activity_at, $4)"
            " WHERE id = $2",
            thread_id,
            category_id,
            len(new_replies),
            last_activity,
        )
    if thread.accepted and thread.accepted in post_ids and not await recorded(source, "solution", [thread.external_id]):
        solution = post_ids[thread.accepted]
        await db.execute("UPDATE thread SET is_solved = true, solution_post_id = $2 WHERE id = $1", thread_id, solution)
        await emit(
            sig.ThreadSolved(
                thread_id=str(thread_id),
                category_id=str(category_id),
                post_id=str(solution),
                solved_by=str(users[thread.question.author]),
            )
        )
        await record(source, "solution", thread.external_id, solution)
        counts.solutions += 1
    return counts


async def _create_thread(source: str, thread: SourceThread, category_id: uuid.UUID, author: uuid.UUID) -> uuid.UUID:
    thread_id = uuid7()
    title = " ".join(thread.title.split())[:300]
    slug = f"{slugify(title, 50)}-{thread_id.hex[-8:]}"
    created = thread.question.created_at
    await db.execute(
        "INSERT INTO thread (id, category_id, author_user_id, title, slug, last_activity_at, view_count,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $6)",
        thread_id,
        category_id,
        author,
        title,
        slug,
        created,
        thread.views,
    )
    post_id = uuid7()
    body = thread.question.body
    await db.execute(_INSERT_POST, post_id, thread_id, author, None, body, render_markdown(body), created)
    tags = sorted({t.strip().lower()[:MAX_TAG] for t in thread.tags if t.strip()})
    if tags:
        await db.execute(
            "INSERT INTO thread_tag (thread_id, tag) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            thread_id,
            tags,
        )
    await db.execute(
        "UPDATE category SET thread_count = thread_count + 1, post_count = post_count + 1,"
        " last_activity_at = greatest(last_activity_at, $2) WHERE id = $1",
        category_id,
        created,
    )
    await emit(
        sig.ThreadCreated(
            thread_id=str(thread_id),
            category_id=str(category_id),
            first_post_id=str(post_id),
            author_user_id=str(author),
            title=title,
            slug=slug,
        )
    )
    await _emit_post_created(post_id, thread_id, category_id, author, None, is_first_post=True)
    await record(source, "thread", thread.external_id, thread_id)
    await record(source, "post", thread.external_id, post_id)
    return thread_id


async def record_duplicates(ctx: RequestContext, source: str, duplicates: Iterable[SourceDuplicate]) -> int:
    """Record which imported threads duplicate which (both must have been imported)."""
    ctx.require_role("admin")
    duplicates = list(duplicates)
    keys = [f"{d.thread}>{d.original}" for d in duplicates]
    done = await recorded(source, "duplicate", keys)
    threads = await recorded(source, "thread", [x for d in duplicates for x in (d.thread, d.original)])
    made = 0
    for key, dup in zip(keys, duplicates, strict=True):
        if key in done or threads.get(dup.thread) is None or threads.get(dup.original) is None:
            continue
        await db.execute(
            "INSERT INTO thread_duplicate (thread_id, original_id, recorded_by) VALUES ($1, $2, 'import')"
            " ON CONFLICT DO NOTHING",
            threads[dup.thread],
            threads[dup.original],
        )
        await record(source, "duplicate", key, threads[dup.thread])
        made += 1
    return made
