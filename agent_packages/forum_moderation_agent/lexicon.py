"""Offline toxicity evidence from a maintained lexicon: the profanity word list the `better-profanity`
package ships (read as data; its censoring code is not used), plus insults aimed at a person ("you are
an idiot", "you moron") and threats ("I will kill you", "kys"). Each hit keeps the words it matched, so
a moderator sees exactly what triggered it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

# Words that are insults when aimed at someone but ordinary elsewhere ("a stupid bug").
INSULTS = (
    "idiot idiots idiotic moron morons moronic imbecile imbeciles stupid dumb dumbass loser losers pathetic "
    "worthless useless clown clowns trash garbage scum vermin retard retarded retards cretin dimwit halfwit "
    "dipshit jackass douche douchebag scumbag lowlife ignorant clueless brainless incompetent disgusting "
    "pig pigs rat rats snake joke fool fools"
).split()
# Profanity lists contain words that only offend in some uses: skip these alone.
_NOT_ALONE = frozenset(
    "2 1 4r5e auto cup girls erotic arian aryan asanchez bdsm sex sexy nude nudes hell damn god crap screw "
    "screwing balls ball bum butt kill hump lust lusting pot weed drunk crack pee poop tit tits womb "
    "ugly fat queer gay homo lesbian fag".split()
)
_TARGET = (
    r"(?:you(?:'re|\s+are|\s+r|\s+re|\s+look\s+like)?|ur|u\s+r|you\s+(?:such\s+)?an?|what\s+an?"
    r"|your\s+(?:a|an)|go\s+away)"
)
_THREAT_RE = re.compile(
    r"\b(?:i(?:'ll|\s+will|\s+am\s+going\s+to|'m\s+gonna|\s+gonna)|we(?:'ll|\s+will))\s+(?:kill|hurt|find|beat|shoot|stab|end)\s+you"
    r"|\bkill\s+your\s*self\b|\bkys\b|\byou\s+(?:should|deserve\s+to)\s+die\b|\bhope\s+you\s+die\b",
    re.IGNORECASE,
)
WORD_RE = re.compile(r"[a-z0-9$@*!]+(?:[-'][a-z0-9]+)*", re.IGNORECASE)


@cache
def profanity_words() -> frozenset[str]:
    """The better-profanity word list, lower case, single words only (empty when not installed)."""
    try:
        text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return frozenset()
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(w for w in lines if w and " " not in w and w.isascii() and w not in _NOT_ALONE)


@cache
def _targeted_re() -> re.Pattern[str]:
    words = sorted(set(INSULTS) | {w for w in profanity_words() if w.isalpha() and len(w) > 3}, key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(
        rf"\b{_TARGET}\s+(?:(?:such|a|an|the|total|complete|fucking|stupid|little|big|absolute)\s+){{0,3}}(?:{alternatives})\b",
        re.IGNORECASE,
    )


@dataclass
class InsultHits:
    targeted: list[str] = field(default_factory=list)
    threats: list[str] = field(default_factory=list)
    slurs: list[str] = field(default_factory=list)  # reserved for the model path; the lexicon does not split them
    profanity: list[str] = field(default_factory=list)


def insult_spans(text: str) -> InsultHits:
    hits = InsultHits()
    hits.targeted = [" ".join(m.group(0).split()) for m in _targeted_re().finditer(text)]
    hits.threats = [" ".join(m.group(0).split()) for m in _THREAT_RE.finditer(text)]
    words = profanity_words()
    hits.profanity = list(dict.fromkeys(w for w in (m.group(0).lower() for m in WORD_RE.finditer(text)) if w in words))
    return hits
