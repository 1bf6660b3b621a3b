"""Post content: markdown rendering, HTML sanitizing, mention and link extraction.

Pipeline: mistune 3 (raw HTML allowed through, ``escape=False``) -> nh3 allow-list
sanitizer, always last. Anything mistune lets through is therefore still subject to
the tag / attribute / URL-scheme allow-lists below.

Relative URLs (``/t/42``, ``#reply-3``, ``../faq``) are kept: they have no scheme, so
the browser resolves them against the forum's own ``https:`` origin and they cannot run
script. nh3 classifies URLs after entity decoding and WHATWG-style trimming, so
``java&#x09;script:`` / `` javascript:`` count as schemes and are dropped; on top of that
:func:`_filter_relative_url` drops "relative" URLs with control characters or a colon in
the first segment (``\x01java\x03script:``), and "relative" URLs with a backslash before the
query (``/\\evil.example``: browsers read ``\\`` as ``/``, so it is really ``//evil.example``).
A protocol-relative ``//host/x`` is written out as ``https://host/x`` so nothing that looks local leaves
the site. mistune's own ``#harmful-link`` rewrite of ``javascript:`` links is left as a second layer.

Remote images (``http(s)://`` and ``//`` sources) would tell a third party every reader's IP address:
:func:`render_markdown` takes an :class:`ImagePolicy` (the org's setting) that routes them through the
forum's image proxy (``backend/media``) or turns them into plain links. The rewrite works on nh3's
output and nh3 runs again after it, so nh3 stays the last step.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from html.parser import HTMLParser
from typing import Any, Final, Literal

import mistune
import nh3

MARKDOWN_PLUGINS: Final[tuple[str, ...]] = ("strikethrough", "table", "url", "task_lists")

ALLOWED_TAGS: Final[frozenset[str]] = frozenset(
    {
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "del",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "input",  # task-list checkbox only: type forced to "checkbox", no name/value/form
    }
)
# Dropped together with their content (not just unwrapped).
CLEAN_CONTENT_TAGS: Final[frozenset[str]] = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "object",
        "embed",
        "textarea",
        "title",
        "xmp",
        "noembed",
        "noframes",
        "select",
        "option",
    }
)
ALLOWED_ATTRIBUTES: Final[Mapping[str, frozenset[str]]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "title"}),
    "code": frozenset({"class"}),
    "pre": frozenset({"class"}),
    "li": frozenset({"class"}),
    "input": frozenset({"class"}),
}
# Attributes allowed only with these exact values (must not be in ALLOWED_ATTRIBUTES).
ALLOWED_ATTRIBUTE_VALUES: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    "th": {"align": frozenset({"left", "right", "center"})},
    "td": {"align": frozenset({"left", "right", "center"})},
    "input": {"checked": frozenset({"", "checked"}), "disabled": frozenset({"", "disabled"})},
}
# Always set, whatever the input said: an <input> can only be a (form-less) checkbox.
# Keep one forced attribute per tag: nh3 adds several in random (hash) order.
FORCED_ATTRIBUTES: Final[Mapping[str, Mapping[str, str]]] = {"input": {"type": "checkbox"}}
URL_SCHEMES: Final[frozenset[str]] = frozenset({"http", "https", "mailto"})
LINK_REL: Final[str] = "nofollow ugc noopener"
FIXED_CLASSES: Final[Mapping[str, str]] = {
    "li": "task-list-item",
    "input": "task-list-item-checkbox",
}

_LANGUAGE_CLASS: Final[re.Pattern[str]] = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
MENTION_RE: Final[re.Pattern[str]] = re.compile(r"(?<![\w@])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,38}[A-Za-z0-9_])?)")
# Text that looks like an @mention but is not one: e-mail addresses and URLs.
_NOT_MENTION_RE: Final[re.Pattern[str]] = re.compile(
    r"[\w.%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z][A-Za-z0-9+.-]*://\S+"
)
_SKIPPED_TOKENS: Final[frozenset[str]] = frozenset({"codespan", "block_code", "inline_html", "block_html", "image"})


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Restrict ``class`` values; every other allowed attribute passes unchanged."""
    if attr != "class":
        return value
    if tag in FIXED_CLASSES:
        return FIXED_CLASSES[tag] if FIXED_CLASSES[tag] in value.split() else None
    classes = [c for c in value.split() if _LANGUAGE_CLASS.fullmatch(c)]
    return " ".join(classes) or None


def _filter_relative_url(url: str) -> str | None:
    """Keep a relative URL unless it has control characters, a scheme-like first segment or a backslash
    before its query; spell a protocol-relative one out as ``https:``."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    if "\\" in re.split(r"[?#]", url, maxsplit=1)[0]:
        return None  # `/\host` and `\\host`: browsers read each backslash as `/`
    head = re.split(r"[/?#]", url, maxsplit=1)[0]
    if ":" in head:
        return None
    if url.startswith("//"):
        return "https:" + url
    return url


def _render_table_cell(_renderer: object, text: str, align: str | None = None, head: bool = False) -> str:
    """Table cell with ``align="..."`` instead of mistune's inline ``style``."""
    tag = "th" if head else "td"
    align_attr = f' align="{align}"' if align in ("left", "right", "center") else ""
    return f"  <{tag}{align_attr}>{text}</{tag}>\n"


def _build_markdown() -> mistune.Markdown:
    markdown = mistune.create_markdown(escape=False, plugins=list(MARKDOWN_PLUGINS))
    if markdown.renderer is None:
        raise RuntimeError("mistune HTML renderer missing")
    markdown.renderer.register("table_cell", _render_table_cell)
    return markdown


_MARKDOWN: Final[mistune.Markdown] = _build_markdown()
_MARKDOWN_AST: Final[mistune.Markdown] = mistune.create_markdown(renderer=None, plugins=list(MARKDOWN_PLUGINS))
_CLEANER: Final[nh3.Cleaner] = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(CLEAN_CONTENT_TAGS),
    attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
    tag_attribute_values={
        tag: {attr: set(values) for attr, values in attrs.items()} for tag, attrs in ALLOWED_ATTRIBUTE_VALUES.items()
    },
    set_tag_attribute_values={tag: dict(attrs) for tag, attrs in FORCED_ATTRIBUTES.items()},
    attribute_filter=_filter_attribute,
    url_schemes=set(URL_SCHEMES),
    url_relative=_filter_relative_url,
    link_rel=LINK_REL,
    strip_comments=True,
)
_MAX_PASSES: Final[int] = 4


def sanitize_html(html: str) -> str:
    """Sanitize an HTML fragment with the forum allow-list; the result is a fixed point.

    Some trees (``<p><button>x</p>``) serialize to HTML that re-parses differently
    (nested ``<p>``), so we re-clean until stable: then the browser's parse of the output
    is exactly what nh3 approved. If it never stabilises, fall back to plain text.
    """
    out = _CLEANER.clean(html)
    for _ in range(_MAX_PASSES):
        again = _CLEANER.clean(out)
        if again == out:
            return out
        out = again
    return _CLEANER.clean(escape(out, quote=False))


ImageMode = Literal["proxy", "link", "keep"]


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    """What happens to remote images: `proxy` (served by the forum's image proxy through `proxy_url`),
    `link` (a plain link to the image, nothing loads by itself) or `keep` (internal: link counting)."""

    mode: ImageMode = "link"
    proxy_url: Callable[[str], str] | None = None  # remote URL -> same-origin proxy URL (signed)


LINK_IMAGES: Final[ImagePolicy] = ImagePolicy(mode="link")
KEEP_IMAGES: Final[ImagePolicy] = ImagePolicy(mode="keep")
_REMOTE_IMAGE: Final[re.Pattern[str]] = re.compile(r"(?i)(?:https?:)?//")


class _ImageRewriter(HTMLParser):
    """Re-emits sanitized HTML verbatim except remote ``<img>`` elements, which become proxied images
    or plain links. Its output goes through nh3 again."""

    def __init__(self, policy: ImagePolicy) -> None:
        super().__init__(convert_charrefs=False)
        self.policy = policy
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text = self.get_starttag_text() or ""
        if tag == "img":
            text = self._image(dict(attrs)) or text
        self.out.append(text)

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def _image(self, attrs: dict[str, str | None]) -> str | None:
        src = attrs.get("src") or ""
        if not _REMOTE_IMAGE.match(src):
            return None  # same-origin (relative) or no source: nothing leaves the site
        url = "https:" + src if src.startswith("//") else src
        alt, title = attrs.get("alt") or "", attrs.get("title")
        if self.policy.mode == "proxy" and self.policy.proxy_url is not None:
            parts = [f'src="{escape(self.policy.proxy_url(url))}"', f'alt="{escape(alt)}"']
            if title is not None:
                parts.append(f'title="{escape(title)}"')
            return f"<img {' '.join(parts)}>"
        return f'<a href="{escape(url)}">{escape(alt or url, quote=False)}</a>'


def apply_image_policy(html: str, policy: ImagePolicy) -> str:
    """Route or unlink the remote images of sanitized HTML; nh3 runs last."""
    if policy.mode == "keep" or "<img" not in html:
        return html
    rewriter = _ImageRewriter(policy)
    rewriter.feed(html)
    rewriter.close()
    return sanitize_html("".join(rewriter.out))


@lru_cache(maxsize=128)
def render_markdown(body: str, images: ImagePolicy = LINK_IMAGES) -> str:
    """Render user markdown to safe HTML with remote images handled as `images` says (by default they
    become links: nothing loads from a third party). Pure, so memoized: one write renders the same
    body for the post, the link limit and the spam screen."""
    return apply_image_policy(sanitize_html(str(_MARKDOWN(body))), images)


def _collect_text(tokens: Iterable[Mapping[str, Any]], out: list[str]) -> None:
    """Append visible prose text (no code, no raw HTML); token boundaries become spaces."""
    for token in tokens:
        kind = token.get("type")
        if kind == "text":
            out.append(token.get("raw", ""))
        elif kind not in _SKIPPED_TOKENS:
            out.append(" ")
            _collect_text(token.get("children", ()), out)
            out.append(" ")


def extract_mentions(body: str) -> list[str]:
    """Lowercase unique @usernames in order of first appearance (not in code/e-mails/URLs)."""
    parts: list[str] = []
    _collect_text(_MARKDOWN_AST(body), parts)  # type: ignore[arg-type]
    text = _NOT_MENTION_RE.sub(" ", "".join(parts))
    names = (m.group(1).lower() for m in MENTION_RE.finditer(text))
    return list(dict.fromkeys(names))


class _LinkCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.count = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and any(name == "href" for name, _ in attrs):
            self.count += 1


def count_links_in_html(html: str) -> int:
    """Number of ``<a href>`` elements in (already rendered) HTML."""
    counter = _LinkCounter()
    counter.feed(html)
    counter.close()
    return counter.count


def count_links(body: str) -> int:
    """Number of links the rendered markdown body contains (for anti-abuse limits)."""
    return count_links_in_html(render_markdown(body, KEEP_IMAGES))
