"""Tests for backend.content: XSS resistance, idempotence, normal markdown, mentions, links."""

import importlib
import json
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runs without a conftest
    sys.path.insert(0, str(REPO_ROOT))

content = importlib.import_module("backend.content")

# The shared datasets sit next to the repository (../shared); a git worktree may be a level deeper.
DATASET_DIR = next(
    (
        parent / "shared" / "datasets" / "xss_dompurify"
        for parent in Path(__file__).resolve().parents[1:]
        if (parent / "shared" / "datasets" / "xss_dompurify").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "xss_dompurify",
)
VECTORS_ENV = "FORUM_XSS_VECTORS"
REL = "nofollow ugc noopener"
BAD_SCHEMES = ("javascript:", "vbscript:", "data:text")
URL_ATTRS = frozenset(
    {
        "href",
        "src",
        "action",
        "formaction",
        "xlink:href",
        "data",
        "srcset",
        "poster",
        "background",
        "lowsrc",
        "dynsrc",
        "ping",
        "cite",
        "longdesc",
        "codebase",
        "manifest",
    }
)
_URL_JUNK = re.compile(r"[\x00-\x20\x7f]")  # browsers ignore these inside a scheme


class _Collector(HTMLParser):
    """Every start tag with its attributes (entities decoded by html.parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, [(name, value or "") for name, value in attrs]))

    handle_startendtag = handle_starttag


def html_problems(html: str) -> list[str]:
    """Dangerous things in ``html``: script elements, on* attributes, bad URL schemes."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    problems: list[str] = []
    for tag, attrs in collector.tags:
        if tag == "script":
            problems.append("<script> element")
        for name, value in attrs:
            if name.startswith("on"):
                problems.append(f"<{tag} {name}>")
            url = _URL_JUNK.sub("", value).lower()
            if name in URL_ATTRS and url.startswith(BAD_SCHEMES):
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


def off_allowlist(html: str) -> list[str]:
    """Tags/attributes in ``html`` that the allow-list should never let through."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    found: list[str] = []
    for tag, attrs in collector.tags:
        if tag not in content.ALLOWED_TAGS:
            found.append(f"<{tag}>")
            continue
        allowed = set(content.ALLOWED_ATTRIBUTES.get(tag, ()))
        allowed |= set(content.ALLOWED_ATTRIBUTE_VALUES.get(tag, {}))
        allowed |= set(content.FORCED_ATTRIBUTES.get(tag, {})) | ({"rel"} if tag == "a" else set())
        found += [f"<{tag} {name}>" for name, _ in attrs if name not in allowed]
    return found


def nh3_cleaner_once(html: str) -> str:
    return content._CLEANER.clean(html)


def assert_safe(html: str) -> None:
    assert html_problems(html) == [], html
    assert off_allowlist(html) == [], html
    assert content.sanitize_html(html) == html, "sanitizing again changed the output"


# --- the checker itself must be able to fail -------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '<a href="javascript:x">x</a>',
        '<a href=" JaVa&#x09;ScRiPt:x">x</a>',
        '<a href="&#106;avascript:x">x</a>',
        "<img src=x onerror=x>",
        "<svg onload=alert(1)>",
        "<script>alert(1)</script>",
        '<iframe src="data:text/html,<script>alert(1)</script>"></iframe>',
        '<form action="vbscript:x"><button>b</button></form>',
    ],
)
def test_checker_flags_unsanitized_html(raw: str) -> None:
    assert html_problems(raw)
    assert html_problems(content.sanitize_html(raw)) == []


def test_checker_flags_off_allowlist_and_accepts_clean_html() -> None:
    assert off_allowlist('<div style="x"><a href="/" class="c">a</a></div>') == [
        "<div>",
        "<a class>",
    ]
    assert html_problems('<a href="https://x.org/javascript:">ok</a>') == []
    assert off_allowlist(content.render_markdown("[a](https://x.org) *b*")) == []


# --- repo-owned XSS cases --------------------------------------------------------------

XSS_CASES = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//xss.rocks/xss.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<img src=x onerror="alert(1)">',
    "<IMG SRC=x OnErRoR=alert(1)>",
    "<body onload=alert(1)>",
    '<p onclick="alert(1)">click</p>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;vascript&#58;alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x]( javascript:alert(1) )",
    '[x](javascript:alert(1) "title")',
    "[ref][r]\n\n[r]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "![i](javascript:alert(1))",
    "![i](data:text/html,alert(1))",
    '![i](x" onerror="alert(1))',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="&#x20;javascript:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="JAVASCRIPT&colon;alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mtext></math>",
    '<math href="javascript:alert(1)">x</math>',
    "<style>*{background:url(javascript:alert(1))}</style>",
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">b</button></form>',
    '<input type="image" src="x" onfocus="alert(1)" autofocus>',
    '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:/">',
    "<!-- <img src=x onerror=alert(1)> -->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<a href="https://ok.example" onmouseover="alert(1)">x</a>',
    "`<img src=x onerror=alert(1)>` and <img src=x onerror=alert(1)>",
    "```html\n<script>alert(1)</script>\n```",
    "<div>\n<img src=x onerror=alert(1)>\n</div>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "- [x] <img src=x onerror=alert(1)>",
    '<pre class="language-x" onclick="x"><code class="language-js" onclick=x">x</code></pre>',
]


@pytest.mark.parametrize("payload", XSS_CASES)
def test_repo_xss_cases_are_neutralised(payload: str) -> None:
    html = content.render_markdown(payload)
    assert_safe(html)


def test_dangerous_markdown_link_loses_its_target() -> None:
    for payload in ("[x](javascript:alert(1))", '<a href="vbscript:x">x</a>'):
        assert "script:" not in content.render_markdown(payload)


def test_script_style_iframe_content_dropped_entirely() -> None:
    html = content.render_markdown("<script>evil()</script><style>p{}</style><iframe>f</iframe>ok")
    assert "evil" not in html and "p{}" not in html and ">f<" not in html
    assert "ok" in html


def test_input_is_forced_to_disabled_checkbox() -> None:
    html = content.sanitize_html('<input type="text" name="pw" value="x" formaction="https://e">')
    assert html == '<input type="checkbox">'


def test_output_is_a_fixed_point_even_when_one_nh3_pass_is_not() -> None:
    raw = "<p><button>x</p>"
    once = nh3_cleaner_once(raw)
    assert nh3_cleaner_once(once) != once  # nh3 alone emits nested <p> that re-parses
    html = content.sanitize_html(raw)
    assert content.sanitize_html(html) == html


def test_sanitize_falls_back_to_text_when_not_converging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content, "_MAX_PASSES", 0)
    html = content.sanitize_html("<p>a <em>b</em></p><img src=x onerror=alert(1)>")
    assert html == '&lt;p&gt;a &lt;em&gt;b&lt;/em&gt;&lt;/p&gt;&lt;img src="x"&gt;'


@pytest.mark.parametrize(
    ("href", "kept"),
    [
        ("/t/1", True),
        ("#reply-3", True),
        ("?page=2", True),
        ("../faq", True),
        ("//cdn.example/x", True),
        ("a/b:c", True),
        ("foo:bar", False),
        ("\x01java\x03script:x", False),
        ("java\x00script:x", False),
    ],
)
def test_relative_urls(href: str, kept: bool) -> None:
    html = content.sanitize_html(f'<a href="{href}">x</a>')
    assert ("href=" in html) is kept, html


# --- dataset: every DOMPurify test vector ------------------------------------------------


def _vector_file() -> Path | None:
    env = os.environ.get(VECTORS_ENV)
    if env:
        return Path(env)  # explicitly configured: a missing file is an error, not a skip
    path = DATASET_DIR / "dompurify_test_vectors.json"
    return path if DATASET_DIR.is_dir() else None


def _vector_params() -> list:
    path = _vector_file()
    if path is None:
        reason = f"XSS dataset not found at {DATASET_DIR} (set {VECTORS_ENV} to the JSON file)"
        return [pytest.param(None, id="dataset-missing", marks=pytest.mark.skip(reason=reason))]
    vectors = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(v["payload"], id=f"dompurify-{i:03d}") for i, v in enumerate(vectors)]


def _wrappings(payload: str) -> dict[str, str]:
    return {
        "markdown": payload,
        "html-block": f"<div>\n{payload}\n</div>",
        "inline": f"Some text {payload} more text.",
        "blockquote": "> " + payload.replace("\n", "\n> "),
    }


@pytest.mark.parametrize("payload", _vector_params())
def test_dompurify_vectors(payload: str) -> None:
    assert isinstance(payload, str)
    failures = []
    for name, source in _wrappings(payload).items():
        html = content.render_markdown(source)
        problems = html_problems(html) + off_allowlist(html)
        if content.sanitize_html(html) != html:
            problems.append("not idempotent")
        if problems:
            failures.append((name, problems, html))
    raw = content.sanitize_html(payload)
    if html_problems(raw) or content.sanitize_html(raw) != raw:
        failures.append(("content.sanitize_html", html_problems(raw), raw))
    assert failures == []


def test_dataset_every_payload_is_a_string() -> None:
    path = _vector_file()
    if path is None:
        pytest.skip(f"XSS dataset not found at {DATASET_DIR}")
    vectors = json.loads(path.read_text(encoding="utf-8"))
    assert len(vectors) > 0
    assert all(isinstance(v.get("payload"), str) for v in vectors)


# --- normal path -----------------------------------------------------------------------


def test_headings_and_emphasis() -> None:
    html = content.render_markdown("# Title\n\n### Sub\n\n**bold** *it* ~~gone~~")
    assert "<h1>Title</h1>" in html and "<h3>Sub</h3>" in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<del>gone</del>" in html


def test_fenced_code_keeps_language_class_and_escapes_content() -> None:
    html = content.render_markdown('```python\nprint("<b>hi</b>")\n```')
    assert html.startswith('<pre><code class="language-python">')
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert_safe(html)


def test_inline_code_is_escaped() -> None:
    html = content.render_markdown("use `<em>x</em>`")
    assert html == "<p>use <code>&lt;em&gt;x&lt;/em&gt;</code></p>\n"


def test_links_get_rel_and_allowed_schemes_survive() -> None:
    html = content.render_markdown('[a](https://example.org "T") <mailto:me@example.org> [r](/t/1)')
    assert f'<a href="https://example.org" title="T" rel="{REL}">a</a>' in html
    assert f'<a href="mailto:me@example.org" rel="{REL}">' in html
    assert f'<a href="/t/1" rel="{REL}">r</a>' in html


def test_user_rel_is_replaced() -> None:
    html = content.render_markdown('<a href="https://e.org" rel="opener" target="_blank">x</a>')
    assert html == f'<p><a href="https://e.org" rel="{REL}">x</a></p>\n'


def test_bare_url_is_autolinked() -> None:
    html = content.render_markdown("see https://example.org/x now")
    assert f'<a href="https://example.org/x" rel="{REL}">https://example.org/x</a>' in html


def test_images_stay_as_written_only_for_link_counting() -> None:
    html = content.render_markdown('![alt](https://img.example/a.png "t")', content.KEEP_IMAGES)
    assert '<img src="https://img.example/a.png" alt="alt" title="t">' in html


# --- remote images never load from a third party ------------------------------------------------------

REMOTE_IMAGES = (
    '![alt](https://img.example/a.png?x=1&y=2 "t") <img src="//cdn.example/b.gif" alt="q&quot;>"> ![l](/local.png)'
)


def test_remote_images_become_links_by_default() -> None:
    html = content.render_markdown(REMOTE_IMAGES)
    assert "<img" in html and "https://img.example" not in html.split("<img")[1]
    assert f'<a href="https://img.example/a.png?x=1&amp;y=2" rel="{REL}">alt</a>' in html
    assert f'<a href="https://cdn.example/b.gif" rel="{REL}">q"&gt;</a>' in html
    assert '<img src="/local.png" alt="l">' in html  # same origin: nothing leaks
    assert_safe(html)


def test_remote_images_are_proxied_with_signed_urls() -> None:
    from backend.media.urls import signer_for

    signer = signer_for("test key")
    html = content.render_markdown(REMOTE_IMAGES, content.ImagePolicy(mode="proxy", proxy_url=signer))
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 3 and srcs[2] == "/local.png"
    from html import unescape
    from urllib.parse import parse_qs

    for src, original in zip(srcs, ("https://img.example/a.png?x=1&y=2", "https://cdn.example/b.gif"), strict=False):
        parts = urlsplit(unescape(src))
        query = parse_qs(parts.query)
        assert parts.path == "/media/image" and query["url"] == [original]
        assert signer.verify(original, query["sig"][0]) and not signer_for("other").verify(original, query["sig"][0])
    assert "img.example" not in html.replace("img.example%2F", "")  # only inside the proxy's query
    assert_safe(html)


@pytest.mark.parametrize(
    "href",
    [
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\\/evil.example",
        "/&#92;evil.example",
        "/t\\..\\..\\/evil.example",
    ],
)
def test_backslash_urls_do_not_survive(href: str) -> None:
    """Browsers read `\\` as `/` in http(s) URLs: `/\\evil.example` is really `//evil.example`."""
    raw = content.sanitize_html(f'<a href="{href}">x</a><img src="{href}">')
    for html in (raw, content.render_markdown(f"[x]({href})")):
        for _tag, attrs in _tags(html):
            for name, value in attrs:
                if name in ("href", "src"):
                    # gone, or spelled out as the external link it is (markdown's `\\/` is an escaped `/`)
                    assert "\\" not in value.split("?")[0] and not value.startswith("//"), html
                    resolved = urlsplit(urljoin("https://forum.example/t/1", value.replace("\\", "/")))
                    assert resolved.netloc == "forum.example" or value.startswith("https://"), html


def test_protocol_relative_links_are_spelled_out() -> None:
    assert 'href="https://cdn.example/x"' in content.sanitize_html('<a href="//cdn.example/x">x</a>')


def _tags(html: str) -> list[tuple[str, list[tuple[str, str]]]]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.tags


def test_table_uses_align_attribute() -> None:
    html = content.render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |")
    assert '<th align="left">a</th>' in html and '<td align="right">2</td>' in html
    assert "style=" not in html and "<table>" in html


def test_task_list() -> None:
    html = content.render_markdown("- [x] done\n- [ ] todo")
    assert html.startswith(
        '<ul>\n<li class="task-list-item"><input class="task-list-item-checkbox" disabled=""'
        ' checked="" type="checkbox">done</li>'
    )
    assert html.count('disabled="" type="checkbox"') == 1
    assert_safe(html)


def test_blockquote_lists_hr_br() -> None:
    html = content.render_markdown("> quote\n\n1. one\n2. two\n\n---\n\nline  \nbreak")
    for fragment in ("<blockquote>", "<ol>", "<li>one</li>", "<hr>", "<br>"):
        assert fragment in html


def test_disallowed_tags_are_unwrapped_not_escaped() -> None:
    assert content.render_markdown("<div><span>hi</span></div>") == "hi\n\n"


def test_mentions() -> None:
    body = (
        "Hi @Alice and @bob_smith, cc @alice again. Mail carol@example.com or a-@x.org.\n\n"
        "`@incode` and https://mastodon.social/@nope\n\n```\n@fenced\n```\n\n"
        "    @indented\n\n> **@Dave.** [@eve](https://e.org) ![@img](https://i.org/a.png)"
        " @z @-bad @x-"
    )
    assert content.extract_mentions(body) == ["alice", "bob_smith", "dave", "eve", "z", "x"]


def test_mentions_length_and_boundaries() -> None:
    long_name = "a" * 40
    assert content.extract_mentions(f"@{long_name}") == [long_name]
    assert content.extract_mentions(f"@{long_name}b") == [long_name]
    assert content.extract_mentions("email@@twice x@@y (@ok)") == ["ok"]
    assert content.extract_mentions("") == []


def test_count_links() -> None:
    body = (
        "[a](https://a.org) <https://b.org> https://c.org/x [d](/local) <mailto:e@f.org>\n\n"
        "`https://code.org` <a>no href</a> [bad](javascript:alert(1))"
    )
    html = content.render_markdown(body)
    # the javascript: link is neutralised by mistune to href="#harmful-link" (a dead anchor)
    assert content.count_links(body) == content.count_links_in_html(html) == 6
    assert content.count_links("no links here") == 0
    four = "[a](https://a.org) [b](https://b.org) [c](https://c.org) https://d.org"
    assert content.count_links(four) == 4
