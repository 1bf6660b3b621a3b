"""The summary agent's offline summarizer: pure, extractive, readable.

Posts are markdown. `plain_blocks` turns each into readable text first: quotes are dropped (they repeat
someone else's words), code blocks become "(code example)", tables become "column value, ..." sentences,
list items and headings become sentences of their own, links keep their text, emphasis and inline code
lose their markers; greetings, thanks and sign-offs are not content. Sentences are then scored by how
central their words are to the thread (words several posts use count most), with a small bonus for a
post's first content sentence and for questions. `summarize` keeps, in thread order, the best sentence
of as many posts as the word budget allows (the best posts first), each attributed to its author
("Ana asks: …", "Ben says: …") and linked to its post, always as complete sentences.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LIST_RE = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+")
_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_AUTOLINK_RE = re.compile(r"<(https?://[^>]+)>")
_URL_RE = re.compile(r"https?://\S+")
_HTML_RE = re.compile(r"</?[a-zA-Z][^>]*>")
_EMPHASIS_RE = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_CODE_SPAN_RE = re.compile(r"`([^`]+)`")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD_RE = re.compile(r"[a-z][a-z0-9'-]*")
_GREETING_RE = re.compile(
    r"^(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening)|thanks|thank you|thx|cheers|regards"
    r"|best regards|kind regards|best|all the best|sincerely|hope this helps|any ideas|ok|okay|yes|no|sure"
    r"|great|agreed|\+1)\b[^.!?]{0,40}[.!?,]?$",
    re.IGNORECASE,
)
_LEADING_GREETING_RE = re.compile(
    r"^(?:(?:hi|hello|hey|dear|greetings|thanks|thank you)(?:\s+[\w.'-]+){0,3}\s*[,!:.-]\s*)+", re.IGNORECASE
)
_SIGN_OFF_RE = re.compile(
    r"^(?:(?:kind|best|warm|many)\s+)?(?:regards|cheers|thanks|thank you|sincerely|yours|best wishes|ciao)\b"
    r"[,.!]?(?:\s|$)"
    r"|^--\s",
    re.IGNORECASE,
)
_HEADERISH_RE = re.compile(r"\b(?:[A-Z][\w-]*:\s+\S+.*){2,}|mailto:|@\w+\.\w+|\b(?:tel|fax|phone)\s*:", re.IGNORECASE)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "Mr.", "Dr.", "Ms.", "No.", "Fig.")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during
    each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers
    herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more
    most mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same
    shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves
    then there there's these they they'd they'll they're they've this those through to too under until up very
    was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
    whom why why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
    just like think know get got one would also well really thing things much many still even use using used
    hi hello thanks thank please yes ok okay sure re""".split()
)


@dataclass(frozen=True, slots=True)
class PostText:
    author: str
    body: str  # markdown
    ref: str | None = None  # where the point links to (the post's URL or id)


@dataclass(frozen=True, slots=True)
class Point:
    author: str
    sentence: str
    ref: str | None
    is_question: bool

    def text(self, *, with_author: bool = True) -> str:
        if not with_author or not self.author:
            return self.sentence
        verb = "asks" if self.is_question else "says"
        return f"{self.author} {verb}: {self.sentence}"


def _inline(text: str) -> str:
    text = _IMAGE_RE.sub(lambda m: m.group(1) or "", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _AUTOLINK_RE.sub(r"\1", text)
    text = _HTML_RE.sub(" ", text)
    text = _CODE_SPAN_RE.sub(r"\1", text)
    for _ in range(2):
        text = _EMPHASIS_RE.sub(r"\2", text)
    return " ".join(text.split())


def _table_sentences(rows: list[str]) -> list[str]:
    cells = [[_inline(c) for c in row.strip().strip("|").split("|")] for row in rows]
    if len(cells) < 2:
        return [", ".join(c for c in cells[0] if c) + "."] if cells and any(cells[0]) else []
    header, body = cells[0], cells[1:]
    out = []
    for row in body:
        pairs = [f"{h} {v}" if h else v for h, v in zip(header, row, strict=False) if v]
        if pairs:
            out.append(", ".join(pairs) + ".")
    return out


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[-1] not in ".!?:":
        text += "."
    return text[:1].upper() + text[1:] if text else text


def plain_blocks(markdown: str) -> list[str]:
    """Readable text blocks of one post (see the module docstring); no markdown syntax survives."""
    blocks: list[str] = []
    paragraph: list[str] = []
    table: list[str] = []
    in_code = False

    def flush() -> None:
        if paragraph:
            text = _inline(" ".join(paragraph))
            if text:
                blocks.append(text)
            paragraph.clear()
        if table:
            blocks.extend(_table_sentences([r for r in table if not _TABLE_SEP_RE.match(r)]))
            table.clear()

    for line in markdown.splitlines():
        if _FENCE_RE.match(line):
            flush()
            if not in_code:
                blocks.append("(code example)")
            in_code = not in_code
            continue
        if in_code:
            continue
        stripped = line.strip()
        if not stripped:
            flush()
        elif stripped.startswith(">"):
            flush()  # quoted text is someone else's
        elif stripped.count("|") >= 2 or (table and "|" in stripped):
            if paragraph:
                flush()
            table.append(stripped)
        elif _HEADING_RE.match(line) or _LIST_RE.match(line):
            flush()
            item = _inline(_LIST_RE.sub("", _HEADING_RE.sub("", line)))
            if item:
                blocks.append(_sentence(item))
        elif line.startswith("    ") and not paragraph:
            continue  # an indented code block
        else:
            if table:
                flush()
            paragraph.append(stripped)
    flush()
    return blocks


def split_sentences(text: str) -> list[str]:
    protected = text
    for i, abbr in enumerate(_ABBREVIATIONS):
        protected = protected.replace(abbr, f"\x00{i}\x00")
    parts = _SENTENCE_END_RE.split(protected)
    out = []
    for part in parts:
        for i, abbr in enumerate(_ABBREVIATIONS):
            part = part.replace(f"\x00{i}\x00", abbr)
        part = part.strip()
        if part:
            out.append(part)
    return out


def content_words(text: str) -> list[str]:
    return [w for w in _WORD_RE.findall(text.lower()) if w not in STOPWORDS and len(w) > 2]


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _is_content(sentence: str) -> bool:
    words = sentence.split()
    if len(words) < 4 or len(words) > 70:
        return False
    if _GREETING_RE.match(sentence):
        return False
    if _URL_RE.fullmatch(sentence.strip(" .")) or sentence.startswith("(code example)"):
        return False
    if _HEADERISH_RE.search(sentence):
        return False
    letters = sum(c.isalpha() for c in sentence)
    return letters >= 0.7 * len(sentence.replace(" ", ""))


def post_sentences(post: PostText) -> list[str]:
    """The content sentences of a post, greetings cut, stopping at a sign-off (what follows is a signature)."""
    out: list[str] = []
    for block in plain_blocks(post.body):
        if _SIGN_OFF_RE.match(block) and out:
            break
        for sentence in split_sentences(block):
            sentence = _LEADING_GREETING_RE.sub("", sentence).strip()
            if _SIGN_OFF_RE.match(sentence) and out:
                return out
            if _is_content(sentence):
                out.append(sentence[:1].upper() + sentence[1:])
    return out


def first_name(author: str) -> str:
    name = author.strip().strip('"')
    if "," in name:  # "Surname, Given"
        name = name.split(",", 1)[1].strip()
    name = name.split("@", 1)[0]
    parts = name.split()
    if len(parts) == 1:
        return parts[0]  # a username stays as it is spelled
    first = parts[0] if parts else ""
    return first[:1].upper() + first[1:] if first else ""


_PAREN_RE = re.compile(r"\s*\([^()]{0,200}\)")
MAX_POINT_WORDS = 35


def _compact(sentence: str) -> str:
    """Parenthetical asides out: shorter, still a complete sentence."""
    return " ".join(_PAREN_RE.sub("", sentence).split())


def _thread_sentences(posts: Sequence[PostText]) -> list[list[str]]:
    """Per post its own sentences: a sentence an earlier post already had (a quote pasted without `>`) is dropped."""
    seen: set[str] = set()
    out = []
    for post in posts:
        own = []
        for sentence in post_sentences(post):
            key = " ".join(content_words(sentence))
            if key and key in seen:
                continue
            seen.add(key)
            own.append(_compact(sentence))
        out.append(own)
    return out


def rank_points(posts: Sequence[PostText]) -> list[tuple[int, float, Point]]:
    """Each post's best sentence as (post index, score, point), in thread order."""
    per_post = _thread_sentences(posts)
    post_words = [{_stem(w) for s in sents for w in content_words(s)} for sents in per_post]
    df: Counter[str] = Counter()
    for words in post_words:
        df.update(words)
    ranked: list[tuple[int, float, Point]] = []
    for index, (post, sentences) in enumerate(zip(posts, per_post, strict=True)):
        best: tuple[float, str] | None = None
        for position, sentence in enumerate(sentences[:12]):
            stems = {_stem(w) for w in content_words(sentence)}
            if not stems or len(sentence.split()) > MAX_POINT_WORDS:
                continue
            centrality = sum(math.log(1 + df[s]) for s in stems) / (len(sentence.split()) ** 0.5 + 1)
            score = centrality + (0.6 if position == 0 else 0.0) + (0.2 if sentence.endswith("?") else 0.0)
            if best is None or score > best[0]:
                best = (score, sentence)
        if best is None:
            continue
        score, sentence = best
        point = Point(first_name(post.author), sentence, post.ref, sentence.rstrip().endswith("?"))
        ranked.append((index, score + (100.0 if index == 0 else 0.0), point))
    return ranked


def summarize(posts: Sequence[PostText], *, max_words: int = 65, with_authors: bool = True) -> list[Point]:
    """The points of a TL;DR within `max_words`, in thread order, each a complete sentence."""
    ranked = rank_points(posts)
    chosen: list[tuple[int, Point]] = []
    used = 0
    for index, _score, point in sorted(ranked, key=lambda r: -r[1]):
        length = len(point.text(with_author=with_authors).split())
        if used + length > max_words and chosen:
            continue
        chosen.append((index, point))
        used += length
    return [p for _, p in sorted(chosen, key=lambda c: c[0])]


def lead_baseline(posts: Sequence[PostText], *, max_words: int = 65) -> str:
    """LEAD: the first sentence of each message, in order, cut at `max_words` words."""
    words: list[str] = []
    for post in posts:
        text = " ".join(post.body.split())
        sentences = split_sentences(text)
        if sentences:
            words.extend(sentences[0].split())
    return " ".join(words[:max_words])


_DECISION_RE = re.compile(
    r"\b(?:we(?:'ve| have)? (?:decided|agreed|settled on|chose|will go with)|(?:let's|let us) go with|decision(?: is)?:"
    r"|(?:it is|it's) (?:decided|agreed)|consensus (?:is|was)|the plan is|resolved:|we will (?:use|ship|adopt|switch)"
    r"|going with|final answer|marking (?:this|it) as solved|that (?:fixed|solved) it)\b",
    re.IGNORECASE,
)


def decisions_and_open_questions(posts: Sequence[PostText]) -> tuple[list[Point], list[Point]]:
    """Decisions: sentences with decision wording. Open questions: questions no other author replied to
    afterwards (the asker's own later posts do not answer them)."""
    decisions: list[Point] = []
    questions: list[Point] = []
    per_post = _thread_sentences(posts)
    for index, (post, sentences) in enumerate(zip(posts, per_post, strict=True)):
        name = first_name(post.author)
        answered = any(other.author != post.author for other in posts[index + 1 :])
        for sentence in sentences:
            if _DECISION_RE.search(sentence) and len(decisions) < 5:
                decisions.append(Point(name, sentence, post.ref, False))
            elif sentence.endswith("?") and not answered and len(questions) < 5:
                questions.append(Point(name, sentence, post.ref, True))
    return decisions, questions
