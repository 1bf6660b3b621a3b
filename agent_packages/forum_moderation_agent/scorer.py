"""The moderation agent's scorer: pure, cheap and explainable.

`assess(facts)` scores one post for three categories — spam, toxicity, duplicate — and returns every
piece of evidence behind each score: the rule that fired, its weight, and the span of text it matched.
Evidence within a category combines as a noisy-or (each rule is an independent chance that the post
belongs to the category), so two weak signals add up and no weak one alone reaches a high score.

The rules are written from what spam is everywhere (links to elsewhere, link shorteners and referral
codes, requests to subscribe/follow/visit, get-rich and prize phrasing, urgency, contact details, money,
content repeated across threads or accounts, brand-new accounts posting links), not from any one data
set. Nothing here is trained.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent_packages.forum_moderation_agent.lexicon import insult_spans

Category = Literal["spam", "toxicity", "duplicate"]
CATEGORIES: tuple[Category, ...] = ("spam", "toxicity", "duplicate")
NEW_ACCOUNT_S = 86_400.0 * 3


@dataclass(frozen=True, slots=True)
class RelatedThread:
    """A thread the retrieval found similar to the post's thread (score in [0, 1])."""

    thread_id: str
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class PostFacts:
    """What the scorer may know about a post. Everything but `body` is optional context."""

    body: str
    title: str = ""  # the thread's title when the post opens a thread
    is_first_post: bool = False
    account_age_s: float | None = None  # None: unknown (treated as established)
    author_post_count: int | None = None  # the author's earlier posts in the org
    same_text_other_threads: int = 0  # identical (normalized) text posted in other threads recently
    same_text_other_accounts: int = 0  # ... by other accounts
    related: Sequence[RelatedThread] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    rule: str
    category: Category
    weight: float
    detail: str
    span: str | None = None  # the text that triggered the rule

    def reason(self) -> str:
        quoted = f' "{self.span}"' if self.span else ""
        return f"{self.rule} ({self.weight:.2f}): {self.detail}{quoted}"


@dataclass(frozen=True, slots=True)
class Assessment:
    scores: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)

    def score(self, category: str) -> float:
        return self.scores.get(category, 0.0)

    @property
    def top(self) -> tuple[str, float]:
        category = max(CATEGORIES, key=lambda c: self.scores.get(c, 0.0))
        return category, self.scores.get(category, 0.0)

    def reasons(self, category: str | None = None) -> list[str]:
        return [e.reason() for e in self.evidence if category is None or e.category == category]

    def rules(self, category: str | None = None) -> list[str]:
        return list(dict.fromkeys(e.rule for e in self.evidence if category is None or e.category == category))

    def above(self, thresholds: dict[str, float]) -> list[str]:
        """Categories whose score is at or above their threshold, strongest first."""
        hits = [c for c in CATEGORIES if c in thresholds and self.scores.get(c, 0.0) >= thresholds[c]]
        return sorted(hits, key=lambda c: -self.scores.get(c, 0.0))


# --- text patterns ---------------------------------------------------------------------------------------

_TLDS = (
    "com|net|org|info|biz|io|co|me|tk|ru|xyz|ly|gl|gd|be|us|uk|de|fr|in|tv|cc|ws|club|online|site|top|shop"
    "|store|live|app|link|click|win|vip|pw|cn|su|ga|ml|cf|gq"
)
URL_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"')\]]+"
    rf"|\b[a-z0-9][a-z0-9-]{{1,62}}(?:\.[a-z0-9-]{{2,63}})*\.(?:{_TLDS})\b(?:/[^\s<>\"')\]]*)?",
    re.IGNORECASE,
)
# "example dot com", "example . com", "(delete spaces)": someone dodging a link filter
OBFUSCATED_LINK_RE = re.compile(
    rf"\b[a-z0-9-]{{2,}}\s*(?:\(dot\)|\[dot\]|\sdot\s|\s\.\s?|\.\s)\s*(?:{_TLDS})\b"
    r"|delete (?:the )?spaces|remove (?:the )?spaces|copy (?:and|&) paste (?:the|this) (?:link|url)",
    re.IGNORECASE,
)
SHORTENERS = frozenset(
    "bit.ly goo.gl tinyurl.com t.co ow.ly is.gd buff.ly adf.ly bit.do cutt.ly rebrand.ly shorte.st tiny.cc "
    "rb.gy shorturl.at t.ly lnkd.in soo.gd s.id v.gd clck.ru qr.net trib.al x.co u.to y2u.be".split()
)
REFERRAL_RE = re.compile(
    r"[?&#/](?:ref|referral|refid|ref_id|aff|affid|affiliate|invite|invitation|friend|promo|coupon|r)"
    r"(?:=|/)[\w-]{3,}|/(?:share|invite|referral|ref)/[\w-]{4,}",
    re.IGNORECASE,
)
# Where a link asks for money, an install or a signature rather than pointing to information.
SOLICITING_HOST_RE = re.compile(
    r"(?:gofundme|indiegogo|kickstarter|patreon|paypal\.me|change\.org|avaaz|fundrazr|vakinha|crowdrise|ko-fi"
    r"|play\.google\.com/store/apps|itunes\.apple\.com|apps\.apple\.com|ebay\.\w+/itm|amazon\.\w+/dp|etsy\.com/listing"
    r"|teespring|redbubble|linkbucks|adfoc|sh\.st|freemyapps|swagbucks)",
    re.IGNORECASE,
)
CRYPTO_ADDRESS_RE = re.compile(r"\b(?:[13][a-km-zA-HJ-NP-Z1-9]{25,34}|bc1[a-z0-9]{25,60}|0x[a-fA-F0-9]{40})\b")
# Words asking the reader to act, which turn a link into a pitch.
CALL_TO_ACTION_RE = re.compile(
    r"\b(?:please|plz|pls|vote|donate|download|install|buy|order|sign\s+up|register|join|follow|subscribe|watch"
    r"|listen|visit|click|share|support|help\s+(?:me|us)|check|go\s+to|enter|win|free|sell|selling|discover)\b",
    re.IGNORECASE,
)
MEDIA_LINK_RE = re.compile(r"(?:youtube\.com/watch\?v=|youtu\.be/|\bwatch\?v=)[\w-]{6,}", re.IGNORECASE)
TIMESTAMP_LINK_RE = re.compile(r"[?&]t=\d+m?\d*s?\b")

# Asking readers to go somewhere or do something for the author: self-promotion.
PROMOTION_RE = re.compile(
    r"\b(?:check|look|see|watch|listen|visit|view|try|go)\s+(?:out\s+|at\s+|to\s+)?"
    r"(?:my|our|this|these)\s+(?:[\w'-]+\s+){0,2}"
    r"(?:youtube\s+)?(?:channel|chanel|page|profile|video|vids?|videos|music|songs?|tracks?|mixtape|covers?|blog"
    r"|site|website|shop|store|stream|playlist|app|game|group|account|instagram|art|work|beats?)\b"
    r"|\b(?:check|checking)\s+(?:this|it|em|'em|them|me|us|him|her|mine)\s+out\b|\bcome\s+(?:and\s+)?check\b"
    r"|\bcheck\s+(?:out\s+)?(?:my|our)\b|\b(?:sub|subscribe)\s+(?:to\s+)?(?:me|us)\b|\bsubscribers?\s+please\b"
    r"|\b(?:help\s+me|i\s+want\s+to|trying\s+to)\s+(?:get|reach|hit|gain)\s+(?:[\d.,k]+\s+)?(?:subs|subscribers|followers|views|likes)\b"
    r"|\b(?:at|if\s+i\s+(?:reach|get|hit))\s+[\d.,k]+\s+(?:subs|subscribers|followers)\b|\bmy\s+first\s+(?:subscriber|follower)s?\b"
    r"|\bplease\s+(?:donate|contribute|sign|pledge)\b|\bdonate\s+(?:to|\w+\s+to)\b|\b(?:follow|like)\s*(?:4|for)\s*(?:follow|like)\b"
    r"|\b(?:pl(?:ea)?s[e]?\s+|plz\s+|go\s+|and\s+)?su(?:b)?scri(?:be|ption)\b(?!d\b)"
    r"|\bsub\s*(?:4|for)\s*sub\b|\bfollow\s+(?:me|us|my|back)\b|\b(?:my|our)\s+(?:new\s+)?(?:youtube\s+)?channel\b"
    r"|\bvisit\s+(?:my|our|us)\b|\b(?:like|share)\s+(?:and|&)\s+(?:share|subscribe|comment|like)\b"
    r"|\bplease\s+(?:like|share|follow|visit|vote|support|help\s+me|check|watch|listen|view|give)\b"
    r"|\b(?:my|our)\s+(?:new\s+|latest\s+|first\s+)?(?:video|song|single|track|album|mixtape|ep|cover|vlog)\b"
    r"|\bjoin\s+(?:my|our|us|me)\b|\bsupport\s+(?:my|our|me)\b|\bgive\s+(?:me|us)\s+a\s+chance\b",
    re.IGNORECASE,
)
# Asking for reactions that feed ranking: engagement bait.
ENGAGEMENT_RE = re.compile(
    r"\b(?:like|thumbs\s+up|upvote)\s+(?:this\s+(?:comment|post|reply)|if|my\s+(?:comment|post)|so|for)\b"
    r"|\b(?:like|likes)\s+(?:&|and)\s+(?:share|subscribe|comment)|\bhow\s+many\s+(?:likes|thumbs)"
    r"|\bthumbs\s+up\s+(?:if|so|for)\b|\bif\s+you\s+(?:like|love|want)\b.{0,40}\b(?:like|thumbs|subscribe|share)\b"
    r"|\bshare\s+(?:this|it)\b|\bvote\s+(?:for|daily)\b|\b(?:can|could)\s+(?:i|we)\s+get\s+\d+\s+(?:likes|subs)\b",
    re.IGNORECASE,
)
# Get-rich, prize and giveaway phrasing, and urgency: scams and commercial spam.
SCAM_RE = re.compile(
    r"\b(?:make|making|earn|earning|made|get\s+paid|getting\s+paid|paid)\b.{0,30}"
    r"\b(?:money|cash|income|\$|dollars|bucks|profit|per\s+(?:day|hour|week|month))\b"
    r"|\b(?:free|win|won|winner|claim|earn|get\s+free|get\s+your)\b.{0,25}\b(?:gift\s*cards?|iphones?|ipads?|prizes?|rewards?"
    r"|vouchers?|coupons?|money|cash|credits?|coins|gems|followers|subscribers|likes|views|robux|v-?bucks|points)\b"
    r"|\b(?:work|working|job)\s+(?:from|at)\s+home\b|\bpassive\s+income\b|\b(?:double|triple)\s+your\b"
    r"|\bcongratulations?\b.{0,40}\b(?:won|winner|selected|chosen|eligible)\b|\byou(?:'ve|\s+have)\s+(?:won|been\s+selected)\b"
    r"|\b(?:limited|special|exclusive)\s+(?:time\s+)?(?:offer|deal|discount)\b|\b(?:act|order|buy|call|apply|sign\s+up)\s+now\b"
    r"|\bclick\s+(?:here|the\s+link|this\s+link|below|on\s+the\s+link)\b|\blink\s+(?:below|in\s+(?:my\s+)?(?:bio|profile))\b"
    r"|\b(?:100|\d{2,3})\s*%\s+(?:free|guaranteed|legit|working)\b|\bguaranteed\b|\brisk[-\s]free\b|\bno\s+(?:credit\s+)?card"
    r"\s+(?:needed|required)\b|\bfree\s+(?:download|trial|access|membership|account|followers|money|gift)\b"
    r"|\b(?:cheap|discount(?:ed)?|best\s+price|lowest\s+price|wholesale)\b.{0,30}\b(?:buy|order|shop|sale|price)\b"
    r"|\b(?:bitcoin|crypto(?:currency)?|forex|binary\s+options?|investment\s+plan|trading\s+signals?)\b"
    r"|\b(?:loan|casino|betting|viagra|cialis|replica|weight\s+loss|diet\s+pills?|seo\s+services?)\b"
    r"|\b(?:urgent(?:ly)?|hurry|last\s+chance|expires?\s+(?:today|soon)|don'?t\s+miss\s+(?:out|this))\b"
    r"|\b(?:awarded|selected\s+to\s+receive|entitled\s+to|guaranteed\s+to\s+win)\b|\bfree\s+entry\b"
    r"|\bclaim\s+(?:code|now|your|it)\b|\b(?:t\s*&\s*cs|tsandcs)\b|\b(?:valid|expires?)\s+\d+\s*(?:hours?|hrs|days?)\b",
    re.IGNORECASE,
)
# Requests for credentials or account actions: phishing.
PHISHING_RE = re.compile(
    r"\b(?:verify|confirm|update|validate|unlock|reactivate)\s+(?:your\s+)?(?:account|password|identity|login|billing"
    r"|payment|card|bank|details|information|credentials)\b"
    r"|\b(?:your\s+)?account\s+(?:has\s+been\s+|was\s+|is\s+)?(?:suspended|locked|limited|disabled|compromised"
    r"|on\s+hold)\b|\b(?:bank|account|card)\s+details\b|\bsocial\s+security\s+number\b",
    re.IGNORECASE,
)
# Premium-rate texts and calls, advance-fee stories.
PREMIUM_RE = re.compile(
    r"\b(?:text|txt|send|reply|sms)\s*>?\s*[A-Z0-9]{2,12}\s+(?:\w+\s+)?to\s+\d{4,6}\b|\b\d+p\s*/\s*(?:day|msg|min|wk)"
    r"|\bstd\s+txt\s+rate|\b(?:call|ring)\s+(?:\w+\s+){0,4}0(?:8|9)\d{8,9}\b"
    r"|\b(?:western\s+union|moneygram|next\s+of\s+kin|beneficiary|inheritance|transfer\s+(?:of\s+)?(?:the\s+)?"
    r"(?:sum|funds|money))\b",
    re.IGNORECASE,
)
CONTACT_RE = re.compile(
    r"\b(?:contact|message|msg|text|call|add|reach|hit)\s+(?:me|us)\b.{0,30}"
    r"\b(?:on|via|at)\b.{0,15}\b(?:whats\s*app|telegram|kik|skype|snap(?:chat)?|wechat|line|email|e-mail|dm|ig|insta)"
    r"|\b(?:whats\s*app|telegram|kik|skype|wechat)\s*(?::|me\b|number|id\b|@)"
    r"|\bdm\s+(?:me|us)\b|\binbox\s+me\b",
    re.IGNORECASE,
)
PHONE_RE = re.compile(r"(?<![\w/=.-])\+?\(?\d{1,4}\)?(?:[\s.-]?\(?\d{2,4}\)?){2,4}(?![\w/-]|\.\d)")
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
MONEY_RE = re.compile(
    r"(?:[$€£]\s?\d[\d,.]*\s?(?:k|m)?\b|\b\d[\d,.]*\s?(?:usd|dollars|euros?|bucks)\b)(?:\s*(?:/|a|per)\s*(?:day|hour|week|month))?",
    re.IGNORECASE,
)
REPEATED_PUNCT_RE = re.compile(r"([!?.\-_*~=>])\1{4,}")
REPEATED_CHAR_RE = re.compile(r"([a-z])\1{5,}", re.IGNORECASE)
WORD_RE = re.compile(r"[a-z0-9']+")
HTML_TAG_RE = re.compile(r"<[^>]+>")


def _span(match: re.Match[str], limit: int = 60) -> str:
    text = " ".join(match.group(0).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def normalize(text: str) -> str:
    """Text reduced for comparing content across posts: lower case, words only."""
    return " ".join(WORD_RE.findall(text.lower()))


def urls_in(text: str) -> list[str]:
    return [m.group(0).rstrip(".,;:!?") for m in URL_RE.finditer(text)]


def _host(url: str) -> str:
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower())
    return bare.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _noisy_or(weights: Iterable[float]) -> float:
    keep = 1.0
    for w in weights:
        keep *= 1.0 - w
    return round(1.0 - keep, 4)


# --- rules -----------------------------------------------------------------------------------------------


def _link_evidence(text: str, prose_words: list[str], facts: PostFacts) -> list[Evidence]:
    out: list[Evidence] = []
    urls = urls_in(text)
    media = [m for m in MEDIA_LINK_RE.finditer(text)]
    if not urls and not media:
        obfuscated = OBFUSCATED_LINK_RE.search(text)
        if obfuscated:
            out.append(
                Evidence("obfuscated_link", "spam", 0.7, "a link written to dodge link filters", _span(obfuscated))
            )
        return out
    hosts = [_host(u) for u in urls]
    shorteners = [
        u
        for u, h in zip(urls, hosts, strict=True)
        if h in SHORTENERS or any(u.lower().find(s) >= 0 for s in SHORTENERS)
    ]
    if shorteners:
        out.append(Evidence("url_shortener", "spam", 0.75, "a link shortener hides where the link goes", shorteners[0]))
    referral = REFERRAL_RE.search(" ".join(urls))
    if referral:
        out.append(
            Evidence("referral_link", "spam", 0.8, "a referral/affiliate/invite code in a link", _span(referral))
        )
    only_timestamps = media and all(TIMESTAMP_LINK_RE.search(m.string[m.start() : m.end() + 20]) for m in media)
    n = len(set(urls)) or len(media)
    if only_timestamps and not referral and not shorteners:
        return out  # a link to a moment of a video is a reference, not promotion
    if len(prose_words) <= 4:
        out.append(
            Evidence("link_only", "spam", 0.8, f"{n} link(s) and almost no text", (urls or [media[0].group(0)])[0])
        )
    else:
        weight = 0.45 + 0.1 * min(n - 1, 3)
        if n / max(len(prose_words), 1) >= 0.1:
            weight += 0.1
        out.append(
            Evidence(
                "links",
                "spam",
                round(min(weight, 0.8), 2),
                f"{n} link(s) to elsewhere",
                (urls or [media[0].group(0)])[0],
            )
        )
    soliciting = SOLICITING_HOST_RE.search(" ".join(urls))
    if soliciting:
        out.append(
            Evidence(
                "soliciting_link", "spam", 0.6, "a link to a fundraiser, store, app or petition", _span(soliciting)
            )
        )
    cta = CALL_TO_ACTION_RE.search(URL_RE.sub(" ", text))
    if cta:
        out.append(Evidence("link_with_call_to_action", "spam", 0.45, "a link next to a call to action", _span(cta)))
    new = facts.account_age_s is not None and facts.account_age_s < NEW_ACCOUNT_S
    if new:
        out.append(Evidence("new_account_links", "spam", 0.3, "a brand-new account posting links"))
    if facts.author_post_count == 0 and not new:
        out.append(Evidence("first_post_links", "spam", 0.2, "the author's first post carries links"))
    return out


def _phrase_evidence(text: str) -> list[Evidence]:
    out: list[Evidence] = []
    promo = list(dict.fromkeys(_span(m) for m in PROMOTION_RE.finditer(text)))
    if promo:
        out.append(
            Evidence(
                "self_promotion",
                "spam",
                min(0.8 + 0.05 * (len(promo) - 1), 0.9),
                "asks readers to go to or support the author's content",
                promo[0],
            )
        )
    bait = list(dict.fromkeys(_span(m) for m in ENGAGEMENT_RE.finditer(text)))
    if bait:
        out.append(Evidence("engagement_bait", "spam", 0.72, "asks for likes, shares or votes", bait[0]))
    scam = list(dict.fromkeys(_span(m) for m in SCAM_RE.finditer(text)))
    if scam:
        out.append(
            Evidence(
                "scam_phrasing",
                "spam",
                min(0.75 + 0.1 * (len(scam) - 1), 0.92),
                "money, prize, giveaway or urgency phrasing",
                scam[0],
            )
        )
    phishing = PHISHING_RE.search(text)
    if phishing:
        out.append(
            Evidence("phishing", "spam", 0.7, "asks to verify an account or hand over credentials", _span(phishing))
        )
    premium = PREMIUM_RE.search(text)
    if premium:
        out.append(
            Evidence(
                "premium_rate_or_advance_fee",
                "spam",
                0.75,
                "premium-rate text/call or advance-fee wording",
                _span(premium),
            )
        )
    contact = CONTACT_RE.search(text) or EMAIL_RE.search(text)
    if contact:
        out.append(Evidence("contact_solicitation", "spam", 0.55, "asks to be contacted off the forum", _span(contact)))
    phone = next((m for m in PHONE_RE.finditer(text) if sum(c.isdigit() for c in m.group(0)) >= 9), None)
    if phone:
        out.append(Evidence("phone_number", "spam", 0.5, "a phone number", _span(phone)))
    wallet = CRYPTO_ADDRESS_RE.search(text)
    if wallet:
        out.append(Evidence("crypto_address", "spam", 0.75, "a cryptocurrency wallet address", _span(wallet)))
    money = MONEY_RE.search(text)
    if money:
        out.append(Evidence("money_amount", "spam", 0.35, "an amount of money", _span(money)))
    return out


def _shape_evidence(text: str, words: list[str]) -> list[Evidence]:
    out: list[Evidence] = []
    punct = REPEATED_PUNCT_RE.search(text)
    chars = REPEATED_CHAR_RE.search(text)
    if punct or chars:
        out.append(Evidence("repeated_characters", "spam", 0.1, "long runs of one character", _span(punct or chars)))  # type: ignore[arg-type]
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 30 and sum(c.isupper() for c in letters) / len(letters) >= 0.7:
        out.append(Evidence("shouting", "spam", 0.15, "mostly capital letters"))
    if len(words) >= 10:
        word, count = (
            Counter(w for w in words if len(w) > 2).most_common(1)[0] if any(len(w) > 2 for w in words) else ("", 0)
        )
        if count / len(words) >= 0.3:
            out.append(Evidence("repeated_word", "spam", 0.2, f"one word is {count} of {len(words)} words", word))
    return out


def _repetition_evidence(facts: PostFacts) -> list[Evidence]:
    out: list[Evidence] = []
    if facts.same_text_other_accounts:
        out.append(
            Evidence(
                "same_text_other_accounts",
                "spam",
                0.7,
                f"the same text was posted by {facts.same_text_other_accounts} other account(s)",
            )
        )
    if facts.same_text_other_threads:
        w = 0.5 + 0.1 * min(facts.same_text_other_threads - 1, 3)
        out.append(
            Evidence(
                "same_text_other_threads",
                "spam",
                round(w, 2),
                f"the same text was posted in {facts.same_text_other_threads} other thread(s)",
            )
        )
    return out


def _toxicity_evidence(text: str) -> list[Evidence]:
    out: list[Evidence] = []
    insults = insult_spans(text)
    if insults.targeted:
        out.append(Evidence("targeted_insult", "toxicity", 0.85, "an insult aimed at a person", insults.targeted[0]))
    if insults.slurs:
        out.append(Evidence("slur", "toxicity", 0.9, "a slur", insults.slurs[0]))
    if insults.threats:
        out.append(Evidence("threat", "toxicity", 0.9, "a threat of harm", insults.threats[0]))
    if insults.profanity:
        w = min(0.3 + 0.1 * (len(insults.profanity) - 1), 0.6)
        out.append(
            Evidence(
                "profanity", "toxicity", round(w, 2), f"{len(insults.profanity)} profane word(s)", insults.profanity[0]
            )
        )
    return out


def _duplicate_evidence(facts: PostFacts) -> list[Evidence]:
    if not facts.is_first_post:
        return []
    out = []
    for related in sorted(facts.related, key=lambda r: -r.score)[:1]:
        if related.score >= 0.5:
            out.append(
                Evidence(
                    "likely_duplicate",
                    "duplicate",
                    round(min(related.score, 0.95), 2),
                    f"looks like thread {related.thread_id}",
                    related.title,
                )
            )
    return out


def assess(facts: PostFacts) -> Assessment:
    """Score one post; pure (no I/O)."""
    text = HTML_TAG_RE.sub(lambda m: " " + " ".join(URL_RE.findall(m.group(0))) + " ", facts.body)
    if facts.title:
        text = f"{facts.title}\n{text}"
    prose = URL_RE.sub(" ", text)
    prose_words = WORD_RE.findall(prose.lower())
    words = WORD_RE.findall(text.lower())
    evidence = [
        *_link_evidence(text, prose_words, facts),
        *_phrase_evidence(text),
        *_shape_evidence(text, words),
        *_repetition_evidence(facts),
        *_toxicity_evidence(prose),
        *_duplicate_evidence(facts),
    ]
    spam = [e.weight for e in evidence if e.category == "spam"]
    boosted = any(e.rule == "new_account_links" for e in evidence)
    if spam and not boosted and facts.account_age_s is not None and facts.account_age_s < NEW_ACCOUNT_S:
        evidence.append(Evidence("new_account", "spam", 0.25, "the account is less than three days old"))
        spam.append(0.25)
    scores = {c: _noisy_or(e.weight for e in evidence if e.category == c) for c in CATEGORIES}
    return Assessment(scores=scores, evidence=evidence)
