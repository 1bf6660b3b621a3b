"""Related threads: which earlier threads may already answer a question (compose-time suggestions, the
FAQ agent's retrieval, duplicate detection). Runs inside the caller's tenant transaction.

Visibility first: only threads the asker could open count (a private org's threads only for its members;
deleted and hidden posts never match, never count and never come back; a thread whose opening post is
deleted or hidden is never returned).

Ranking, in two bounded steps so the cost does not grow with the org:
1. Candidates. The query's lexemes come from PostgreSQL's own `english` parser (stemming, stopwords),
   weighted by inverse document frequency from `search_term_stat`. The most selective ones form an OR
   query over thread titles and over posts (each side capped before it is ranked), giving at most
   `CANDIDATES` threads.
2. Scoring. Lexical (BM25F): for each candidate the term frequencies of the query's lexemes in three
   fields, the title, the opening post and the replies (weaker evidence), are read from the stored
   tsvectors, length-normalised per field and combined with saturation `tf / (k1 + tf)` times idf.
   Semantic: when the embedding model is installed (backend/search/embedding.py), the cosine between
   the query's embedding and the thread's (title + opening post, kept in `thread_embedding` by the
   worker). Relevance is the plain mean of the two (a thread not embedded yet counts lexically only).
   It is then nudged by what else the forum knows: an accepted answer, reactions, recency, and the
   category the asker is writing in.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from backend.forum.visibility import viewer_for_user, visible_category_ids
from backend.search import embedding
from engine import db
from engine.tenancy import current_tenant

MAX_TEXT_CHARS = 20_000  # longer input is cut: enough words to find the topic
MAX_K = 50
CANDIDATES = 25  # threads ranked precisely, from each of the two candidate sources (titles, posts)
CANDIDATE_POSTS = 1_000  # posts matched before they are ranked in step 1 (bounds the worst case)
QUERY_TERMS = 8  # most selective lexemes used to find candidates among titles
POST_QUERY_TERMS = 4  # … and among posts, if they are rare enough:
POST_TERM_MAX_DOCS = 5_000  # a lexeme in more posts finds no candidates among posts (it still scores)
MAX_REPLIES = 12  # replies of a candidate thread read in step 2 (the earliest ones)
EXCERPT_CHARS = 300

# BM25F parameters: textbook values, not fitted to any data set.
K1 = 1.2
FIELD_WEIGHT = {"title": 2.0, "question": 1.0, "replies": 0.25}
FIELD_B = {"title": 0.5, "question": 0.75, "replies": 0.75}
TITLE_QUERY_WEIGHT = 1.5  # lexemes of the query's own title count a little more than its body's
SEMANTIC_SHARE = 0.5  # relevance = (1 - share) * lexical + share * semantic: an unweighted mean

# Priors: small multiplicative nudges on the text score.
SOLVED_BOOST = 0.10
REACTION_BOOST = 0.03  # per log(1 + positive reactions in the thread)
RECENCY_BOOST = 0.05  # fades over RECENCY_DAYS
RECENCY_DAYS = 365.0
SAME_CATEGORY_BOOST = 0.05


class RelatedThread(msgspec.Struct, frozen=True, kw_only=True):
    thread_id: str
    title: str
    slug: str
    category_id: str
    category_slug: str
    score: float  # higher = more related (relevance with the priors); comparable within one call only
    relevance: float  # 0..1: mean of the lexical and semantic scores (lexical alone without embeddings)
    text_score: float  # the lexical part alone, 0..1 (share of the query's idf weight matched, BM25F)
    semantic_score: float | None  # cosine of the embeddings, None when the model or the vector is missing
    is_solved: bool
    solution_post_id: str | None  # the accepted answer, when it is visible
    best_post_id: str | None  # the visible reply that best matches (the accepted answer when it matches)
    excerpt: str  # plain text of the opening post, at most EXCERPT_CHARS
    created_at: datetime


@dataclass(slots=True)
class QueryTerm:
    lexeme: str
    weight: float  # query-side weight (term frequency in the query, title lexemes heavier)
    idf: float
    ndoc: int  # posts containing it at the last statistics refresh (0: unknown)


@dataclass(slots=True)
class FieldStats:
    length: float = 0.0
    tf: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Candidate:
    thread_id: uuid.UUID
    title: FieldStats = field(default_factory=FieldStats)
    question: FieldStats = field(default_factory=FieldStats)
    replies: FieldStats = field(default_factory=FieldStats)
    reply_tf: dict[uuid.UUID, float] = field(default_factory=dict)  # per reply: idf-weighted match


# --- query ---------------------------------------------------------------------------------------------

_QUERY_TERMS_SQL = """
SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf, s.ndoc,
       (SELECT n_docs FROM search_stats) AS n_docs
FROM unnest(to_tsvector('english', $1)) AS u LEFT JOIN search_term_stat s ON s.lexeme = u.lexeme
"""


def bm25_idf(n_docs: int, ndoc: int | None) -> float:
    """Robertson-Sparck Jones idf, never negative. Unknown statistics (no refresh yet) give every
    lexeme the same weight."""
    if n_docs <= 0:
        return 1.0
    df = min(ndoc or 0, n_docs)
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


async def query_terms(text: str, title: str = "") -> list[QueryTerm]:
    """Lexemes of the query (PostgreSQL's english configuration) with their idf and query weight."""
    terms: dict[str, QueryTerm] = {}
    for part, boost in ((text, 1.0), (title, TITLE_QUERY_WEIGHT)):
        part = part[:MAX_TEXT_CHARS].replace("\x00", " ")
        if not part.strip():
            continue
        for row in await db.fetch(_QUERY_TERMS_SQL, part):
            weight = boost * (1.0 + math.log(row["tf"]))
            term = terms.get(row["lexeme"])
            if term is None:
                terms[row["lexeme"]] = QueryTerm(
                    row["lexeme"], weight, bm25_idf(row["n_docs"] or 0, row["ndoc"]), row["ndoc"] or 0
                )
            else:
                term.weight += weight
    return sorted(terms.values(), key=lambda t: (-t.idf * t.weight, t.lexeme))


def or_query(terms: Sequence[QueryTerm]) -> str:
    """A `to_tsquery('simple', …)` text matching any of the lexemes (quoted: no operator injection)."""
    return " | ".join("'" + t.lexeme.replace("'", "''") + "'" for t in terms)


# --- visibility ----------------------------------------------------------------------------------------


async def may_read_org(visible_to: str | None) -> bool:
    """Public orgs are readable by anyone; private ones by their members only."""
    tenant = current_tenant()
    row = await db.fetchrow(
        "SELECT o.visibility, (m.user_id IS NOT NULL) AS member FROM orgs o"
        " LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 WHERE o.slug = $1",
        tenant.slug,
        _as_uuid(visible_to),
    )
    if row is None:
        return False
    return row["visibility"] == "public" or bool(row["member"])


def _as_uuid(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# A thread may be shown when its opening post is visible.
_OPENING_VISIBLE = """
NOT EXISTS (SELECT 1 FROM (SELECT is_deleted, is_hidden FROM post f WHERE f.thread_id = t.id
            ORDER BY f.created_at, f.id LIMIT 1) o WHERE o.is_deleted OR o.is_hidden)
"""


# --- step 1: candidates --------------------------------------------------------------------------------

# Two index scans (GIN on thread titles, GIN on posts), each ranked over a bounded set.
_TITLE_CANDIDATES_SQL = """
SELECT t.id FROM thread t
WHERE t.search @@ to_tsquery('simple', $1) AND NOT (t.id = ANY($3::uuid[])) AND t.category_id = ANY($4::uuid[])
ORDER BY ts_rank(t.search, to_tsquery('simple', $1)) DESC, t.id LIMIT $2
"""
_POST_CANDIDATES_SQL = f"""
WITH matched AS (
    SELECT p.thread_id, p.search FROM post p
    WHERE p.search @@ to_tsquery('simple', $1) AND NOT p.is_deleted AND NOT p.is_hidden LIMIT {CANDIDATE_POSTS}
)
SELECT m.thread_id AS id FROM matched m JOIN thread t ON t.id = m.thread_id
WHERE NOT (m.thread_id = ANY($3::uuid[])) AND t.category_id = ANY($4::uuid[])
GROUP BY m.thread_id ORDER BY max(ts_rank(m.search, to_tsquery('simple', $1))) DESC, m.thread_id LIMIT $2
"""


async def candidate_threads(
    terms: Sequence[QueryTerm], exclude: Sequence[uuid.UUID], categories: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Threads whose title matches the most selective lexemes, and threads with posts matching the
    rare ones (lexemes in more than POST_TERM_MAX_DOCS posts would make that scan large and say little)."""
    selective = [t for t in terms if t.idf > 0][:QUERY_TERMS]
    if not selective:
        return []
    found: dict[uuid.UUID, None] = {}
    for row in await db.fetch(_TITLE_CANDIDATES_SQL, or_query(selective), CANDIDATES, list(exclude), list(categories)):
        found[row["id"]] = None
    rare = [t for t in selective if t.ndoc <= POST_TERM_MAX_DOCS][:POST_QUERY_TERMS]
    if rare:
        for row in await db.fetch(_POST_CANDIDATES_SQL, or_query(rare), CANDIDATES, list(exclude), list(categories)):
            found[row["id"]] = None
    return list(found)


# --- step 2: scoring -----------------------------------------------------------------------------------

_FIELDS_SQL = f"""
WITH cand AS (
    SELECT t.id, t.title, t.search FROM thread t
    WHERE t.id = ANY($1::uuid[]) AND t.category_id = ANY($3::uuid[]) AND {_OPENING_VISIBLE}
),
posts AS (
    SELECT p.id, p.thread_id, p.search, p.n FROM cand, LATERAL (
        SELECT id, thread_id, search, row_number() OVER (ORDER BY created_at, id) AS n FROM post
        WHERE thread_id = cand.id AND NOT is_deleted AND NOT is_hidden ORDER BY created_at, id LIMIT {MAX_REPLIES + 1}
    ) p
),
fields AS (
    SELECT cand.id AS thread_id, NULL::uuid AS post_id, 0 AS field, cand.search AS tsv FROM cand
    UNION ALL
    SELECT thread_id, id, CASE WHEN n = 1 THEN 1 ELSE 2 END, search FROM posts
)
SELECT f.thread_id, f.post_id, f.field, length(f.tsv) AS len,
       coalesce(m.lexemes, '{{}}') AS lexemes, coalesce(m.tfs, '{{}}') AS tfs
FROM fields f, LATERAL (
    SELECT array_agg(u.lexeme) AS lexemes, array_agg(coalesce(array_length(u.positions, 1), 1)) AS tfs
    FROM unnest(f.tsv) u WHERE u.lexeme = ANY($2::text[])
) m
"""


async def field_stats(
    candidates: Sequence[uuid.UUID], terms: Sequence[QueryTerm], categories: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Candidate]:
    rows = await db.fetch(_FIELDS_SQL, list(candidates), [t.lexeme for t in terms], list(categories))
    idf = {t.lexeme: t.idf for t in terms}
    found: dict[uuid.UUID, Candidate] = {}
    for row in rows:
        cand = found.setdefault(row["thread_id"], Candidate(row["thread_id"]))
        target = (cand.title, cand.question, cand.replies)[row["field"]]
        target.length += row["len"]
        matches = list(zip(row["lexemes"], row["tfs"], strict=True))
        for lexeme, tf in matches:
            target.tf[lexeme] = target.tf.get(lexeme, 0.0) + tf
        if row["field"] == 2:
            cand.reply_tf[row["post_id"]] = sum(idf[lexeme] * tf / (K1 + tf) for lexeme, tf in matches)
    return found


def text_scores(found: dict[uuid.UUID, Candidate], terms: Sequence[QueryTerm]) -> dict[uuid.UUID, float]:
    """BM25F over (title, question, replies), divided by the query's best possible score: 0..1."""
    if not found:
        return {}
    avg = {
        name: max(1.0, sum(getattr(c, name).length for c in found.values()) / len(found))
        for name in ("title", "question", "replies")
    }
    best = sum(t.weight * t.idf for t in terms) or 1.0
    scores: dict[uuid.UUID, float] = {}
    for thread_id, cand in found.items():
        norms = {
            name: 1.0 - FIELD_B[name] + FIELD_B[name] * getattr(cand, name).length / avg[name]
            for name in ("title", "question", "replies")
        }
        total = 0.0
        for term in terms:
            tf = sum(
                FIELD_WEIGHT[name] * getattr(cand, name).tf.get(term.lexeme, 0.0) / norms[name]
                for name in ("title", "question", "replies")
            )
            if tf:
                total += term.weight * term.idf * tf / (K1 + tf)
        scores[thread_id] = total / best
    return scores


# --- what else the forum knows -------------------------------------------------------------------------

_THREADS_SQL = """
SELECT t.id, t.title, t.slug, t.category_id, c.slug AS category_slug, t.is_solved, t.created_at, e.vector,
       CASE WHEN sp.id IS NOT NULL AND NOT sp.is_deleted AND NOT sp.is_hidden THEN sp.id END AS solution_post_id,
       (SELECT count(*) FROM reaction r JOIN post p ON p.id = r.post_id
        WHERE p.thread_id = t.id AND NOT p.is_deleted AND NOT p.is_hidden
          AND r.type IN ('like', 'upvote')) AS positive_reactions,
       (SELECT left(f.content_markdown, 2000) FROM post f WHERE f.thread_id = t.id
        ORDER BY f.created_at, f.id LIMIT 1) AS opening
FROM thread t JOIN category c ON c.id = t.category_id LEFT JOIN post sp ON sp.id = t.solution_post_id
     LEFT JOIN thread_embedding e ON e.thread_id = t.id AND e.model = $2
WHERE t.id = ANY($1::uuid[])
"""

_TAG = re.compile(r"<[^>]*>")


def plain_excerpt(markdown: str) -> str:
    text = " ".join(_TAG.sub(" ", markdown or "").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rstrip() + "…"


def prior(row: Any, category_id: uuid.UUID | None, now: datetime) -> float:
    boost = 1.0
    if row["solution_post_id"] is not None:
        boost += SOLVED_BOOST
    boost += REACTION_BOOST * math.log1p(row["positive_reactions"] or 0)
    age_days = max(0.0, (now - row["created_at"]).total_seconds() / 86400)
    boost += RECENCY_BOOST * math.exp(-age_days / RECENCY_DAYS)
    if category_id is not None and row["category_id"] == category_id:
        boost += SAME_CATEGORY_BOOST
    return boost


# --- the read ------------------------------------------------------------------------------------------


async def related_threads(
    text: str,
    k: int = 5,
    *,
    visible_to: str | None,
    title: str = "",
    exclude_thread_ids: Sequence[str] = (),
    category_id: str | None = None,
    prefer_category_id: str | None = None,
    candidate_thread_ids: Sequence[str] | None = None,
) -> list[RelatedThread]:
    """The `k` earlier threads most related to `text` (and `title`, weighted a little more) that the
    user `visible_to` (None: anonymous) may open, best first.

    `category_id` restricts to one category; `prefer_category_id` only favours it (compose time: the
    category being written in). `candidate_thread_ids` ranks just those threads (evaluation)."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    if not await may_read_org(visible_to):
        return []
    # private categories: only their members and the org's staff may see their threads
    asker = _as_uuid(visible_to)
    visible = set(await visible_category_ids(await viewer_for_user(str(asker) if asker else None)))
    only = _as_uuid(category_id)
    categories = [c for c in visible if only is None or c == only]
    if not categories:
        return []
    terms = await query_terms(text, title)
    if not terms:
        return []
    query_vector = start_query_embedding(text, title)  # encodes in a thread while the SQL runs
    exclude = [u for u in (_as_uuid(x) for x in exclude_thread_ids) if u is not None]
    if candidate_thread_ids is None:
        candidates = await candidate_threads(terms, exclude, categories)
    else:
        candidates = [u for u in (_as_uuid(x) for x in candidate_thread_ids) if u is not None and u not in exclude]
    if not candidates:
        return []
    found = await field_stats(candidates, terms, categories)
    texts = text_scores(found, terms)
    if not texts:
        return []
    rows = {r["id"]: r for r in await db.fetch(_THREADS_SQL, list(found), embedding.MODEL_NAME)}
    rows = {tid: row for tid, row in rows.items() if row["category_id"] in visible}  # (already filtered in SQL)
    semantic = await semantic_scores(query_vector, rows)
    relevance = {
        tid: texts[tid]
        if semantic.get(tid) is None
        else (1 - SEMANTIC_SHARE) * texts[tid] + SEMANTIC_SHARE * semantic[tid]
        for tid in rows
    }
    preferred = _as_uuid(prefer_category_id) or only
    now = datetime.now(UTC)
    scored = sorted(
        ((relevance[tid] * prior(rows[tid], preferred, now), tid) for tid in found if tid in rows),
        key=lambda x: (-x[0], str(x[1])),
    )
    if candidate_thread_ids is None:
        scored = [s for s in scored if texts[s[1]] > 0]
    return [
        _related(rows[tid], score, relevance[tid], texts[tid], semantic.get(tid), found[tid])
        for score, tid in scored[:k]
    ]


def start_query_embedding(text: str, title: str) -> asyncio.Future[Any] | None:
    """The query's embedding, computed in a worker thread; None without the model."""
    model = embedding.model()
    if model is None:
        return None
    query = (title + "\n" + text).strip()[: embedding.QUERY_TOKENS * 12]
    future = asyncio.ensure_future(asyncio.to_thread(model.encode, [query], embedding.QUERY_TOKENS))
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # unused on an early return: no warning
    return future


async def semantic_scores(
    query_vector: asyncio.Future[Any] | None, rows: dict[uuid.UUID, Any]
) -> dict[uuid.UUID, float | None]:
    """Cosine between the query and each embedded candidate (clipped at 0); {} without the model."""
    if query_vector is None:
        return {}
    vector = (await query_vector)[0]
    if not any(r["vector"] is not None for r in rows.values()):
        return {}
    return {
        tid: max(0.0, float(embedding.from_bytes(r["vector"]) @ vector)) if r["vector"] is not None else None
        for tid, r in rows.items()
    }


def _related(
    row: Any, score: float, relevance: float, text_score: float, semantic: float | None, cand: Candidate
) -> RelatedThread:
    solution = row["solution_post_id"]
    best: uuid.UUID | None = None
    if cand.reply_tf:
        best = max(cand.reply_tf, key=lambda pid: (cand.reply_tf[pid], str(pid)))
        if cand.reply_tf[best] <= 0:
            best = None
    if solution is not None and (best is None or cand.reply_tf.get(solution, 0) > 0):
        best = solution
    return RelatedThread(
        thread_id=str(row["id"]),
        title=row["title"],
        slug=row["slug"],
        category_id=str(row["category_id"]),
        category_slug=row["category_slug"],
        score=round(score, 6),
        relevance=round(min(1.0, relevance), 6),
        text_score=round(min(1.0, text_score), 6),
        semantic_score=round(semantic, 6) if semantic is not None else None,
        is_solved=row["is_solved"],
        solution_post_id=str(solution) if solution else None,
        best_post_id=str(best) if best else (str(solution) if solution else None),
        excerpt=plain_excerpt(row["opening"] or ""),
        created_at=row["created_at"],
    )


# --- term statistics -----------------------------------------------------------------------------------

_REFRESH_SQL = (
    "DELETE FROM search_term_stat",
    "INSERT INTO search_term_stat (lexeme, ndoc)"
    " SELECT word, ndoc FROM ts_stat('SELECT search FROM post WHERE NOT is_deleted AND NOT is_hidden')",
    "UPDATE search_stats SET n_docs = s.n, avg_length = s.avg_len, refreshed_at = now()"
    " FROM (SELECT count(*) AS n, coalesce(avg(length(search)), 0) AS avg_len FROM post"
    " WHERE NOT is_deleted AND NOT is_hidden) s",
)


async def refresh_term_stats() -> int:
    """Recount every lexeme's document frequency over the org's visible posts (one statement each;
    seconds at 100k posts). Returns the number of documents counted."""
    for statement in _REFRESH_SQL:
        await db.execute(statement)
    return int(await db.fetchval("SELECT n_docs FROM search_stats"))
