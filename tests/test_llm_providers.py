"""LLM providers: one contract suite run against every implementation, plus provider-specific tests.

The Anthropic provider is exercised through the real SDK over a real socket against the local fake
Messages API (`engine.llm.fake_messages_api`); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import httpx
import pytest

from engine.llm import (
    AnthropicProvider,
    ContextSource,
    LLMError,
    LLMProvider,
    LLMRejected,
    LLMRequest,
    LLMTimeout,
    LLMUnavailable,
    LLMUsage,
    Message,
    OfflineProvider,
    cost_of,
    price_for,
    provider_from_settings,
    render_sources,
)
from engine.llm.base import count_tokens, redact, word_deltas
from engine.llm.fake_messages_api import FakeMessagesAPI, Script
from engine.llm.offline_provider import parse_sources

# Deliberately not shaped like an Anthropic key: redaction must work on the exact secret, not a pattern.
API_KEY = "fleet-test-secret-7f3a9c1e5b2d4680"
WRONG_KEY = "fleet-wrong-secret-0a1b2c3d4e5f6789"
REPLY = "Reset it from Settings, then Security, then choose Reset password and follow the emailed link."

SOURCES = [
    ContextSource(
        "Password reset email never arrives",
        "https://forum.test/o/acme/t/11",
        "Check your spam folder first. The reset email comes from no-reply@acme.test. "
        "Admins can trigger a password reset from the member page.",
    ),
    ContextSource(
        "Changing the theme",
        "https://forum.test/o/acme/t/12",
        "Open Preferences and pick a theme. Dark mode follows the system setting.",
    ),
]


def make_request(
    question: str = "The password reset email never arrives, what should I check?",
    *,
    max_tokens: int = 200,
    metadata: dict[str, str] | None = None,
) -> LLMRequest:
    return LLMRequest(
        system="You are the forum's helpful assistant. Cite the related threads you use.",
        messages=[Message("user", f"{question}\n\nRelated threads:\n{render_sources(SOURCES)}")],
        max_tokens=max_tokens,
        metadata=metadata if metadata is not None else {"task": "answer"},
    )


class Recorder:
    """An on_delta callback that keeps each delta and when it arrived."""

    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.times: list[float] = []

    async def __call__(self, delta: str) -> None:
        self.deltas.append(delta)
        self.times.append(time.perf_counter())


def assert_no_secret(secrets: tuple[str, ...], *texts: object) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in str(text)


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=API_KEY) as server:
        yield server


# -- the contract ---------------------------------------------------------------------------------


class ProviderContract:
    """Every LLMProvider passes these. Subclasses supply the `provider` fixture and the hooks."""

    provider_name: ClassVar[str]
    secrets: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    async def provider(self) -> AsyncIterator[LLMProvider]:
        raise NotImplementedError
        yield

    def expected_text(self, request: LLMRequest) -> str:
        raise NotImplementedError

    def max_tokens_received(self) -> int | None:
        """The max_tokens the backend itself saw for the last request (None: in-process)."""
        return None

    async def test_implements_the_protocol(self, provider: LLMProvider) -> None:
        assert isinstance(provider, LLMProvider)

    async def test_streams_more_than_one_delta(self, provider: LLMProvider) -> None:
        recorder = Recorder()
        await provider.generate(make_request(), on_delta=recorder)
        assert len(recorder.deltas) > 1
        assert all(recorder.deltas)

    async def test_deltas_concatenate_to_the_result_text(self, provider: LLMProvider) -> None:
        recorder = Recorder()
        result = await provider.generate(make_request(), on_delta=recorder)
        assert result.text
        assert "".join(recorder.deltas) == result.text

    async def test_usage_is_recorded(self, provider: LLMProvider) -> None:
        result = await provider.generate(make_request())
        assert result.usage.input_tokens > 0
        assert result.usage.output_tokens > 0

    async def test_result_is_labelled(self, provider: LLMProvider) -> None:
        result = await provider.generate(make_request())
        assert result.provider == provider.name == self.provider_name
        assert result.model == provider.model
        assert result.stop_reason == "end_turn"

    async def test_latency_and_first_token_are_measured(self, provider: LLMProvider) -> None:
        result = await provider.generate(make_request(), on_delta=Recorder())
        assert result.first_token_ms is not None
        assert 0 < result.first_token_ms <= result.latency_ms

    async def test_cost_follows_the_price_table(self, provider: LLMProvider) -> None:
        result = await provider.generate(make_request())
        cost = cost_of(result.model, result.usage)
        assert result.cost_usd == pytest.approx(cost.usd)
        assert result.cost_known is cost.known

    async def test_text_is_the_expected_one_every_time(self, provider: LLMProvider) -> None:
        request = make_request()
        first = await provider.generate(request)
        second = await provider.generate(request)
        assert first.text == second.text == self.expected_text(request)

    async def test_respects_max_tokens(self, provider: LLMProvider) -> None:
        recorder = Recorder()
        result = await provider.generate(make_request(max_tokens=3), on_delta=recorder)
        assert result.usage.output_tokens <= 3
        assert 0 < len(recorder.deltas) <= 3
        assert result.stop_reason == "max_tokens"
        received = self.max_tokens_received()
        assert received is None or received == 3

    async def test_rejected_request_is_not_retryable(self, provider: LLMProvider) -> None:
        with pytest.raises(LLMRejected) as caught:
            await provider.generate(make_request(max_tokens=0))
        assert caught.value.retryable is False
        assert caught.value.provider == self.provider_name

    async def test_no_secret_in_repr_or_errors(self, provider: LLMProvider) -> None:
        with pytest.raises(LLMError) as caught:
            await provider.generate(make_request(max_tokens=0))
        error = caught.value
        assert_no_secret(self.secrets, repr(provider), str(provider), repr(error), str(error), error.args)
        assert error.__cause__ is None


class TestOfflineProvider(ProviderContract):
    provider_name = "offline"

    @pytest.fixture
    async def provider(self) -> AsyncIterator[LLMProvider]:
        provider = OfflineProvider()
        yield provider
        await provider.aclose()

    def expected_text(self, request: LLMRequest) -> str:
        return OfflineProvider().compose(request)


class TestAnthropicProvider(ProviderContract):
    provider_name = "anthropic"
    secrets = (API_KEY,)

    @pytest.fixture
    async def provider(self, fake_api: FakeMessagesAPI) -> AsyncIterator[LLMProvider]:
        fake_api.reset(Script(text=REPLY))
        self.server = fake_api
        provider = AnthropicProvider(api_key=API_KEY, base_url=fake_api.base_url, timeout_s=5)
        yield provider
        await provider.aclose()

    def expected_text(self, request: LLMRequest) -> str:
        return REPLY

    def max_tokens_received(self) -> int | None:
        return int(self.server.requests[-1].max_tokens)


# -- Anthropic, through the real SDK against the fake server ---------------------------------------


class TestAnthropicAgainstFakeServer:
    @pytest.fixture
    def server(self, fake_api: FakeMessagesAPI) -> FakeMessagesAPI:
        fake_api.reset(Script(text=REPLY))
        return fake_api

    @staticmethod
    async def provider(server: FakeMessagesAPI, **kwargs: object) -> AnthropicProvider:
        options: dict[str, object] = {"api_key": API_KEY, "base_url": server.base_url, "timeout_s": 5.0}
        options.update(kwargs)
        return AnthropicProvider(**options)  # type: ignore[arg-type]

    async def test_the_key_reaches_the_server_in_the_sdk_header(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server)
        await provider.generate(make_request())
        received = server.requests[-1]
        # anthropic 2.14 sends the key as `Authorization: Bearer` (STACK_NOTES).
        assert received.key_header == "authorization"
        assert received.key_matched
        await provider.aclose()

    async def test_the_request_is_forwarded_as_given(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server, model="claude-haiku-4-5")
        request = make_request(max_tokens=77)
        await provider.generate(request)
        received = server.requests[-1]
        assert received.stream
        assert received.model == "claude-haiku-4-5"
        assert received.max_tokens == 77
        assert received.system == request.system
        assert received.messages == [{"role": "user", "content": request.messages[0].content}]
        assert "temperature" not in received.body  # anthropic 2.14's stream() has no temperature
        assert "metadata" not in received.body  # routing metadata stays local
        await provider.aclose()

    async def test_temperature_is_sent_only_when_enabled(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server, send_temperature=True)
        await provider.generate(make_request())
        assert server.requests[-1].body["temperature"] == pytest.approx(0.2)
        await provider.aclose()

    async def test_the_provider_caps_max_tokens(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server, max_tokens=5)
        result = await provider.generate(make_request(max_tokens=500))
        assert server.requests[-1].max_tokens == 5
        assert result.usage.output_tokens == 5
        assert result.stop_reason == "max_tokens"
        await provider.aclose()

    async def test_deltas_arrive_as_they_are_streamed(self, server: FakeMessagesAPI) -> None:
        server.script = Script(text="one two three four five", token_delay_s=0.05)
        provider = await self.provider(server)
        recorder = Recorder()
        result = await provider.generate(make_request(), on_delta=recorder)
        assert recorder.deltas == ["one", " two", " three", " four", " five"]
        gaps = [b - a for a, b in zip(recorder.times, recorder.times[1:], strict=False)]
        assert min(gaps) > 0.03  # not buffered until the end
        assert result.first_token_ms is not None
        assert result.latency_ms - result.first_token_ms > 150
        await provider.aclose()

    async def test_mid_stream_error_is_unavailable_after_delivering_the_deltas(self, server: FakeMessagesAPI) -> None:
        server.script = Script(text=REPLY, fail_after_deltas=3)
        provider = await self.provider(server)
        recorder = Recorder()
        with pytest.raises(LLMUnavailable) as caught:
            await provider.generate(make_request(), on_delta=recorder)
        assert recorder.deltas == word_deltas(REPLY)[:3]
        error = caught.value
        assert error.retryable
        assert error.error_type == "overloaded_error"
        assert error.partial_text == "".join(recorder.deltas)
        await provider.aclose()

    @pytest.mark.parametrize(
        "script",
        [
            Script(hang_before_headers=True),
            Script(hang_after_deltas=0),
            Script(text=REPLY, hang_after_deltas=2),
        ],
        ids=["before-headers", "after-message-start", "after-two-deltas"],
    )
    async def test_a_hang_times_out_quickly(self, server: FakeMessagesAPI, script: Script) -> None:
        server.script = script
        provider = await self.provider(server, timeout_s=0.3)
        recorder = Recorder()
        started = time.monotonic()
        with pytest.raises(LLMTimeout) as caught:
            await provider.generate(make_request(), on_delta=recorder)
        assert time.monotonic() - started < 2.0
        assert caught.value.retryable
        assert caught.value.partial_text == "".join(recorder.deltas)
        await provider.aclose()

    async def test_a_slow_drip_hits_the_total_timeout(self, server: FakeMessagesAPI) -> None:
        server.script = Script(text=" ".join(["word"] * 40), token_delay_s=0.05)
        provider = await self.provider(server, timeout_s=1.0, total_timeout_s=0.4)
        recorder = Recorder()
        started = time.monotonic()
        with pytest.raises(LLMTimeout) as caught:
            await provider.generate(make_request(), on_delta=recorder)
        assert time.monotonic() - started < 1.5
        assert 0 < len(recorder.deltas) < 40
        assert caught.value.partial_text == "".join(recorder.deltas)
        await provider.aclose()

    async def test_wrong_key_is_rejected_without_leaking_it(self, server: FakeMessagesAPI) -> None:
        # The fake echoes the key it received in its 401 body, as a hostile upstream could.
        async with httpx.AsyncClient() as http:
            raw = await http.post(
                f"{server.base_url}/v1/messages",
                headers={"x-api-key": WRONG_KEY},
                json={"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
            )
        assert raw.status_code == 401 and WRONG_KEY in raw.text

        provider = await self.provider(server, api_key=WRONG_KEY)
        with pytest.raises(LLMRejected) as caught:
            await provider.generate(make_request())
        error = caught.value
        assert error.status_code == 401
        assert not error.retryable
        assert "authentication_error" in str(error)
        assert_no_secret((WRONG_KEY, API_KEY), str(error), repr(error), error.args, error.message, repr(provider))
        assert error.__cause__ is None and error.__suppress_context__
        assert server.requests[-1].key_matched is False
        await provider.aclose()

    @pytest.mark.parametrize(
        ("status", "expected"),
        [(529, LLMUnavailable), (500, LLMUnavailable), (429, LLMUnavailable), (400, LLMRejected)],
    )
    async def test_http_errors_before_streaming(
        self, server: FakeMessagesAPI, status: int, expected: type[LLMError]
    ) -> None:
        server.script = Script(status=status)
        provider = await self.provider(server)
        recorder = Recorder()
        with pytest.raises(expected) as caught:
            await provider.generate(make_request(), on_delta=recorder)
        assert type(caught.value) is expected
        assert caught.value.status_code == status
        assert recorder.deltas == []
        await provider.aclose()

    async def test_connection_refused_is_unavailable(self) -> None:
        async with FakeMessagesAPI(api_key=API_KEY) as gone:
            base_url = gone.base_url
        provider = AnthropicProvider(api_key=API_KEY, base_url=base_url, timeout_s=1.0)
        with pytest.raises(LLMUnavailable) as caught:
            await provider.generate(make_request())
        assert_no_secret((API_KEY,), str(caught.value), repr(caught.value))
        await provider.aclose()

    async def test_cost_is_computed_from_usage_and_the_price_table(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server, model="claude-haiku-4-5")
        request = make_request()
        result = await provider.generate(request)
        # The fake counts whitespace tokens: the prompt's in, the reply's out.
        expected_in = count_tokens(request.system) + count_tokens(request.messages[0].content)
        assert result.usage == LLMUsage(expected_in, len(REPLY.split()))
        assert result.cost_usd == pytest.approx((expected_in * 1 + len(REPLY.split()) * 5) / 1_000_000)
        assert result.cost_known
        await provider.aclose()

    async def test_an_unknown_model_costs_zero_and_is_flagged(self, server: FakeMessagesAPI) -> None:
        provider = await self.provider(server, model="claude-imaginary-9")
        result = await provider.generate(make_request())
        assert result.model == "claude-imaginary-9"
        assert result.cost_usd == 0
        assert result.cost_known is False
        await provider.aclose()

    async def test_concurrent_generations_do_not_mix(self, server: FakeMessagesAPI) -> None:
        server.script = Script(text=REPLY, token_delay_s=0.005)
        provider = await self.provider(server)
        recorders = [Recorder() for _ in range(5)]
        results = await asyncio.gather(*(provider.generate(make_request(), on_delta=r) for r in recorders))
        for result, recorder in zip(results, recorders, strict=True):
            assert result.text == REPLY == "".join(recorder.deltas)
        await provider.aclose()


# -- the fake server itself -------------------------------------------------------------------------


class TestFakeMessagesAPI:
    @pytest.fixture
    def server(self, fake_api: FakeMessagesAPI) -> FakeMessagesAPI:
        fake_api.reset(Script(text="Hello there friend."))
        return fake_api

    BODY: ClassVar[dict[str, object]] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }

    @pytest.mark.parametrize(
        ("headers", "status", "key_header"),
        [
            ({"x-api-key": API_KEY}, 200, "x-api-key"),
            ({"authorization": f"Bearer {API_KEY}"}, 200, "authorization"),
            ({}, 401, None),
            ({"x-api-key": WRONG_KEY}, 401, "x-api-key"),
        ],
        ids=["x-api-key", "bearer", "no-key", "wrong-key"],
    )
    def test_key_headers(
        self, server: FakeMessagesAPI, headers: dict[str, str], status: int, key_header: str | None
    ) -> None:
        response = httpx.post(f"{server.base_url}/v1/messages", headers=headers, json=self.BODY)
        assert response.status_code == status
        assert server.requests[-1].key_header == key_header

    def test_non_streaming_json(self, server: FakeMessagesAPI) -> None:
        response = httpx.post(f"{server.base_url}/v1/messages", headers={"x-api-key": API_KEY}, json=self.BODY)
        message = response.json()
        assert message["type"] == "message"
        assert message["content"] == [{"type": "text", "text": "Hello there friend."}]
        assert message["stop_reason"] == "end_turn"
        assert message["usage"] == {"input_tokens": 1, "output_tokens": 3}

    def test_sse_event_sequence(self, server: FakeMessagesAPI) -> None:
        body = {**self.BODY, "stream": True}
        with httpx.stream(
            "POST", f"{server.base_url}/v1/messages", headers={"x-api-key": API_KEY}, json=body
        ) as response:
            assert response.headers["content-type"] == "text/event-stream"
            lines = [line for line in response.iter_lines() if line]
        names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
        assert [d["delta"]["text"] for d in data if d["type"] == "content_block_delta"] == [
            "Hello",
            " there",
            " friend.",
        ]
        assert data[-2]["delta"]["stop_reason"] == "end_turn"
        assert data[-2]["usage"] == {"output_tokens": 3}

    def test_bad_request_and_unknown_route(self, server: FakeMessagesAPI) -> None:
        bad = httpx.post(
            f"{server.base_url}/v1/messages",
            headers={"x-api-key": API_KEY},
            json={"model": "m", "messages": []},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert httpx.get(f"{server.base_url}/v1/models", headers={"x-api-key": API_KEY}).status_code == 404


# -- the offline provider's behaviour ---------------------------------------------------------------


class TestOfflineComposition:
    async def test_welcome_points_to_categories_and_rules(self) -> None:
        request = LLMRequest(
            system="Welcome new members.",
            messages=[Message("user", "Hi all, I run the billing team and want to learn how you plan sprints.")],
            max_tokens=200,
            metadata={
                "task": "welcome",
                "username": "ada",
                "org_name": "Acme",
                "categories": "General, Help, Announcements",
                "rules_url": "https://forum.test/o/acme/rules",
            },
        )
        result = await OfflineProvider().generate(request)
        assert result.text.startswith("Welcome to Acme, ada!")
        assert "General, Help, Announcements" in result.text
        assert "https://forum.test/o/acme/rules" in result.text
        assert "more context" not in result.text

    async def test_welcome_asks_for_context_on_a_very_short_post(self) -> None:
        request = LLMRequest(
            system="", messages=[Message("user", "help pls")], max_tokens=200, metadata={"task": "welcome"}
        )
        result = await OfflineProvider().generate(request)
        assert "more context" in result.text

    async def test_answer_quotes_the_best_sentences_with_citations(self) -> None:
        result = await OfflineProvider().generate(make_request())
        assert "The reset email comes from no-reply@acme.test. [1]" in result.text
        assert "[2]" not in result.text  # the theme thread does not match
        assert "[1] Password reset email never arrives https://forum.test/o/acme/t/11" in result.text

    async def test_answer_admits_when_nothing_matches(self) -> None:
        result = await OfflineProvider().generate(make_request("Where is the parking garage?"))
        assert "could not find an answer" in result.text
        assert "[1]" not in result.text

    async def test_summary_keeps_the_top_sentences_in_order(self) -> None:
        thread = (
            "The deploy failed on Monday because the database migration timed out. "
            "Lunch was pizza. "
            "We split the database migration into smaller batches. "
            "The deploy then succeeded after the migration finished. "
            "Someone asked about the weather."
        )
        request = LLMRequest(
            system="",
            messages=[Message("user", thread)],
            max_tokens=200,
            metadata={"task": "summarize", "max_sentences": "2"},
        )
        result = await OfflineProvider().generate(request)
        # The two sentences richest in the thread's recurring words (deploy, database, migration).
        assert result.text == (
            "The deploy failed on Monday because the database migration timed out. "
            "The deploy then succeeded after the migration finished."
        )

    async def test_deltas_are_word_sized(self) -> None:
        recorder = Recorder()
        await OfflineProvider().generate(make_request(), on_delta=recorder)
        assert all(len(delta.split()) == 1 for delta in recorder.deltas)

    async def test_delay_paces_the_stream(self) -> None:
        recorder = Recorder()
        result = await OfflineProvider(delay_s=0.01).generate(make_request(max_tokens=10), on_delta=recorder)
        assert len(recorder.deltas) == 10
        assert result.latency_ms >= 100

    def test_sources_round_trip(self) -> None:
        own, sources = parse_sources("Question here?\n\n" + render_sources(SOURCES))
        assert own == "Question here?"
        assert sources == SOURCES


# -- pieces ---------------------------------------------------------------------------------------------


def test_word_deltas_concatenate_back() -> None:
    for text in ["", "  ", "one", " lead and trail  ", "a\n\nb  c\t"]:
        assert "".join(word_deltas(text)) == text


def test_redact_replaces_known_secrets_and_key_shapes() -> None:
    shaped_like_a_key = "sk-" + "ant-api03-abcdefghijkl"
    text = redact(f"key {API_KEY} and {shaped_like_a_key}", [API_KEY])
    assert API_KEY not in text and shaped_like_a_key not in text


def test_prices() -> None:
    assert price_for("claude-sonnet-4-5-20250929") == price_for("claude-sonnet-4-5")
    assert cost_of("claude-opus-4-1", LLMUsage(1_000_000, 1_000_000)).usd == pytest.approx(90.0)
    assert cost_of("claude-haiku-4-5", LLMUsage(2_000_000, 0)).usd == pytest.approx(2.0)
    assert cost_of("claude-sonnet-4-5", LLMUsage(1_000_000, 1_000_000)).usd == pytest.approx(18.0)
    unknown = cost_of("claude-opus-9", LLMUsage(10, 10))
    assert unknown.usd == 0 and unknown.known is False


async def test_provider_from_settings(fake_api: FakeMessagesAPI) -> None:
    common: dict[str, object] = {
        "model": "claude-haiku-4-5",
        "base_url": None,
        "timeout_s": 5.0,
        "max_tokens": 64,
    }
    assert isinstance(provider_from_settings("auto", api_key=None, **common), OfflineProvider)  # type: ignore[arg-type]
    assert isinstance(provider_from_settings("offline", api_key=API_KEY, **common), OfflineProvider)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        provider_from_settings("anthropic", api_key=None, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        provider_from_settings("gpt", api_key=API_KEY, **common)  # type: ignore[arg-type]

    fake_api.reset(Script(text=REPLY))
    provider = provider_from_settings(
        "auto",
        api_key=API_KEY,
        model="claude-haiku-4-5",
        base_url=fake_api.base_url,
        timeout_s=5.0,
        max_tokens=64,
    )
    assert isinstance(provider, AnthropicProvider)
    result = await provider.generate(make_request(max_tokens=1000))
    assert (result.provider, result.model, result.text) == ("anthropic", "claude-haiku-4-5", REPLY)
    assert fake_api.requests[-1].max_tokens == 64
    await provider.aclose()
