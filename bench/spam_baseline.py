"""The old inline spam heuristic (formerly `backend.moderation.service.spam_score`), frozen here as the
baseline `bench.eval_moderation` measures next to the moderation agent's scorer in the same run."""

from __future__ import annotations

import re
from collections import Counter

BASELINE_THRESHOLD = 0.8  # the org default the heuristic flagged above

# Self-promotion and scam phrases: one of these alone is strong evidence.
STRONG_PHRASES = re.compile(
    r"check (?:out )?my (?:channel|page|videos?|music|profile|site|website|blog)"
    r"|su(?:b)?scribe to (?:my|me|our)|su(?:b)?scribe (?:me|my)\b|my (?:channel|new (?:video|song|track))"
    r"|click here|free money|(?:make|making|earn|earning)(?: real| extra)? (?:money|cash|\$)"
    r"|work(?:ing)? from home|gift cards?|promo code|free followers|limited offer|buy now",
    re.IGNORECASE,
)
# Calls to action that honest posts use too: weak evidence, strong in company.
WEAK_PHRASES = re.compile(
    r"\bsu(?:b)?scribe\b|check (?:this|it) out|check out this (?:video|playlist|song|site)|follow me"
    r"|visit my|please (?:like|share|follow|visit|vote|help)|like this comment|\bmy videos?\b|\bdm me\b",
    re.IGNORECASE,
)
_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]{2,}\.(?:com|net|org|ly|info|biz|io|co|me|tk|ru|xyz)(?:/\S*)?\b",
    re.IGNORECASE,
)
_REPEATED_CHAR_RE = re.compile(r"(.)\1{5,}")
_WORD_RE = re.compile(r"[a-z0-9']+")
NEW_ACCOUNT_S = 86_400.0


def spam_score(body: str, *, account_age_s: float, links: int) -> tuple[float, list[str]]:
    """A score in [0, 1] that `body` is spam, and the reasons behind it.

    Pure and cheap. `links` is the number of links the rendered post has; bare URLs and domains in the
    text count too. Evidence combines as a noisy-or: each signal is an independent chance that the post
    is spam, so two weak signals add up and no single weak one reaches a high score on its own.
    """
    prose = _URL_RE.sub(" ", body)
    words = _WORD_RE.findall(prose.lower())
    reasons: list[str] = []
    evidence: list[float] = []

    url_count = max(links, len(_URL_RE.findall(body)))
    if url_count:
        if len(words) <= 3:
            weight = 0.75  # a link and next to nothing else
            reasons.append(f"link_only:{url_count}")
        else:
            density = url_count / len(words)
            weight = 0.4 + 0.15 * min(url_count - 1, 3) + (0.25 if density >= 0.1 else 0.0)
            reasons.append(f"links:{url_count}")
        evidence.append(min(weight, 0.9))

    strong = sorted({m.group(0).lower() for m in STRONG_PHRASES.finditer(body)})
    if strong:
        evidence.append(min(0.85 + 0.05 * (len(strong) - 1), 0.95))
        reasons.extend(f"phrase:{p}" for p in strong)
    weak = sorted({m.group(0).lower() for m in WEAK_PHRASES.finditer(body)} - set(strong))
    if weak:
        evidence.append(min(0.4 + 0.15 * (len(weak) - 1), 0.7))
        reasons.extend(f"phrase:{p}" for p in weak)

    if _REPEATED_CHAR_RE.search(body):
        evidence.append(0.2)
        reasons.append("repeated_characters")

    if len(words) >= 8:
        word, count = Counter(words).most_common(1)[0]
        if count / len(words) >= 0.3 and len(word) > 2:
            evidence.append(0.3)
            reasons.append(f"repeated_word:{word}")

    letters = [c for c in body if c.isalpha()]
    if len(letters) >= 20:
        caps = sum(c.isupper() for c in letters) / len(letters)
        if caps >= 0.7:
            evidence.append(0.25)
            reasons.append(f"all_caps:{caps:.2f}")

    if evidence and account_age_s < NEW_ACCOUNT_S:
        evidence.append(0.25)  # only ever strengthens other evidence
        reasons.append("new_account")

    keep = 1.0
    for p in evidence:
        keep *= 1.0 - p
    return round(1.0 - keep, 4), reasons
