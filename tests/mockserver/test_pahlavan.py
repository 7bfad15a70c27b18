"""Pahlavan over real HTTP: catalogue, quotes, generations with fallback, chat, async videos and billing."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam

from mockserver.app import create_app
from mockserver.core.jobs import FAIL_MARKER
from mockserver.mock import MOCK, Mock
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.records import KeyRecord, WalletView
from mockserver.state.seed import key_id_of

KEY, LIMITED_KEY, OTHER_KEY = "sp_live_mockkey0001", "sp_live_mockkey0002", "sp_live_otheraccount"
ACCOUNT, OTHER_ACCOUNT = "user_123", "user_other"
SEED_BALANCE = 100_000
JOB_SPEED = 0.1
"""Jobs ten times slower than the default (queued 5 s, done 20 s after creation on the mock's clock), so
real time passing during a test never moves a video a stage."""
BILLING_FIELDS = (
    "estimated_charge_cents",
    "final_charge_cents",
    "estimated_charge_usd",
    "final_charge_usd",
    "metered_estimated_charge_usd",
    "metered_final_charge_usd",
)
STORAGE_READY = importlib.util.find_spec("mockserver.providers.pahlavan.storage") is not None
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a launch tweet for our lighthouse app"}
]


@dataclass
class Client:
    """HTTP access to one in-process mock, plus its ``Mock`` for arranging state."""

    session: aiohttp.ClientSession
    origin: str
    mock: Mock

    @property
    def base(self) -> str:
        return self.origin + "/pahlavan"

    @property
    def state(self) -> State:
        return self.mock.services.state

    async def money(self, key: str = KEY) -> WalletView:
        """The account's and the key's money now (the key names its account)."""
        found = await self.state.find_key("pahlavan", key)
        assert found is not None
        return await self.state.wallet("pahlavan", found.account, found.key_id)

    async def ledger(self) -> tuple[int, int, int]:
        """The wallet, the cents held and the carried micro-cents of the account."""
        money = await self.money()
        return await self.wallet(), money.held_cents, money.carry_microcents

    async def wallet(self) -> int:
        cents = (await self.money()).wallet_cents
        assert cents is not None
        return cents

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = KEY,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {key}"} if key is not None else {}
        sent.update(headers or {})
        async with self.session.request(
            method, self.base + path, json=json, params=params, headers=sent
        ) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json=body, **kwargs)

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.origin}/_mock{path}", json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    async def advance(self, seconds: float) -> None:
        status, _ = await self.control("POST", "/clock/advance", {"seconds": seconds})
        assert status == 200

    async def set_wallet(self, cents: int) -> None:
        """Through the control API."""
        status, _ = await self.control("PUT", f"/accounts/pahlavan/{ACCOUNT}/wallet", {"wallet_cents": cents})
        assert status == 200
        assert await self.wallet() == cents

    def set_price(self, model: str, **pricing: float) -> None:
        # The seed's catalogue is this server's own (read at start): changing it changes its prices.
        self.state.seed("pahlavan").models[model]["pricing"] = {"currency": "usd", **pricing}

    async def fetch(self, url: str) -> tuple[int, str, bytes]:
        async with self.session.get(url) as resp:
            return resp.status, resp.content_type, await resp.read()

    async def stream(self, body: Any, *, key: str = KEY) -> list[Any]:
        """A streamed chat completion's events (JSON chunks, then the literal ``[DONE]``)."""
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.post(
            self.base + "/api/v1/chat/completions", json=body, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "text/event-stream"
            return [event async for event in read_events(resp)]


async def read_events(resp: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """The ``data:`` payloads of an SSE response, parsed unless it is ``[DONE]``."""
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            yield data if data == "[DONE]" else json.loads(data)


@asynccontextmanager
async def serve(**changes: Any) -> AsyncIterator[Client]:
    """The mock with only Pahlavan, in this event loop, on a free loopback port; no violations allowed."""
    settings = Settings(
        host="127.0.0.1",
        port=0,
        seed=0,
        providers=("pahlavan",),
        response_validation="strict",
        job_speed=JOB_SPEED,
    ).with_changes(**changes)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, f"http://127.0.0.1:{port}", app[MOCK])
            yield client
            status, body = await client.control("GET", "/violations")
            assert (status, body["violations"]) == (200, [])
    finally:
        await runner.cleanup()


@pytest.fixture
async def pv(backend_settings: Callable[[], dict[str, Any]]) -> AsyncIterator[Client]:
    """The Pahlavan-only mock on this test's state backend (conftest.py's ``state_backend``)."""
    async with serve(**backend_settings()) as client:
        yield client


def assert_error(status: int, body: Any, expected_status: int, code: str) -> dict[str, Any]:
    """The documented envelope with the expected code; returns ``details.details``."""
    assert status == expected_status, body
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["details"]["code"] == code
    details: dict[str, Any] = body["details"]["details"]
    return details


def assert_billing(body: dict[str, Any], *, final: bool = True) -> None:
    """``*_usd`` are the settled cents / 100; the metered values are exact and never negative."""
    assert body["estimated_charge_usd"] == round(body["estimated_charge_cents"] / 100, 2)
    assert body["metered_estimated_charge_usd"] >= 0
    if final:
        assert body["final_charge_usd"] == round(body["final_charge_cents"] / 100, 2)
        assert body["metered_final_charge_usd"] >= 0
        assert body["metered_final_charge_usd"] <= body["metered_estimated_charge_usd"]


def language(model: str = "glm-4.5", **extra: Any) -> dict[str, Any]:
    return {"model": model, "type": "language", "messages": USER, **extra}


async def add_other_account(client: Client) -> None:
    key = KeyRecord(key=OTHER_KEY, account=OTHER_ACCOUNT, key_id=key_id_of(OTHER_KEY))
    assert await client.state.add_key("pahlavan", key)
    assert await client.state.set_wallet("pahlavan", OTHER_ACCOUNT, 1000) is not None


# -- health, models, envelope ---------------------------------------------------------------------------


async def test_health_is_public(pv: Client) -> None:
    assert await pv.call("GET", "/api/health", key=None) == (200, {"status": "ok"})


async def test_models_are_public_and_show_documented_fields_only(pv: Client) -> None:
    status, body = await pv.call("GET", "/api/v1/models", key=None)
    assert status == 200
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == list(pv.state.seed("pahlavan").models)
    offline = next(m for m in body["data"] if m["id"] == "glm-4.5-offline")
    assert "available" not in offline
    assert "provider_capabilities" not in offline
    assert all(m["object"] == "model" for m in body["data"])


async def test_models_filter_by_type_text_and_limit(pv: Client) -> None:
    _, images = await pv.call("GET", "/api/v1/models", params={"type": "image"})
    assert [m["id"] for m in images["data"]] == ["flux-schnell"]
    _, by_name = await pv.call("GET", "/api/v1/models", params={"q": "FLUX.1"})
    assert [m["id"] for m in by_name["data"]] == ["flux-schnell"]
    _, documented = await pv.call(
        "GET", "/api/v1/models", params={"type": "language", "limit": 50, "q": "glm"}
    )
    assert [m["id"] for m in documented["data"]] == ["glm-4.5", "glm-4.5-air", "glm-4.5-offline"]
    _, limited = await pv.call("GET", "/api/v1/models", params={"q": "GLM", "limit": 2})
    assert [m["id"] for m in limited["data"]] == ["glm-4.5", "glm-4.5-air"]
    _, none = await pv.call("GET", "/api/v1/models", params={"type": "video", "q": "glm"})
    assert none["data"] == []
    for bad in ("0", "201", "many"):
        status, body = await pv.call("GET", "/api/v1/models", params={"limit": bad})
        assert assert_error(status, body, 400, "INVALID_REQUEST")["field"] == "limit"


async def test_models_omit_null_and_empty_fields(pv: Client) -> None:
    pv.state.seed("pahlavan").models["llama-3.1-8b"].update(name="", owned_by=None, provider_capabilities=[])
    _, body = await pv.call("GET", "/api/v1/models", params={"q": "llama"})
    assert body["data"] == [
        {
            "id": "llama-3.1-8b",
            "object": "model",
            "type": "language",
            "pricing": {"currency": "usd", "input_per_1m_tokens": 0.05, "output_per_1m_tokens": 0.08},
            "requirements": {"inputs": ["messages"]},
        }
    ]


async def test_neutral_errors_use_the_documented_envelope(pv: Client) -> None:
    assert_error(
        *await pv.post("/api/v1/quotes", {"model": "glm-4.5", "type": "language"}, key=None),
        401,
        "UNAUTHORIZED",
    )
    assert_error(
        *await pv.post("/api/v1/quotes", {"model": "glm-4.5", "type": "language"}, key="sp_live_nope"),
        401,
        "UNAUTHORIZED",
    )
    assert_error(*await pv.call("DELETE", "/api/v1/quotes"), 405, "METHOD_NOT_ALLOWED")
    assert_error(*await pv.call("GET", "/api/v1/nothing-here"), 404, "NOT_FOUND")
    details = assert_error(
        *await pv.post("/api/v1/quotes", {"model": "glm-4.5", "type": "text"}), 400, "INVALID_REQUEST"
    )
    assert details["field"] == "type"


# -- quotes ---------------------------------------------------------------------------------------------


async def test_quote_of_the_documented_language_request(pv: Client) -> None:
    body = {"model": "glm-4.5", "type": "language", "inputTokens": 1000, "outputTokens": 500}
    status, quote = await pv.post("/api/v1/quotes", body)
    assert status == 200
    # 1000 x 0.6 + 500 x 2.2 USD per million tokens = 0.0017 USD = 0.17 cents.
    assert quote == {
        "object": "quote",
        "model": "glm-4.5",
        "type": "language",
        "currency": "usd",
        "estimated_charge_cents": 0,
        "estimated_charge_usd": 0.0,
        "metered_estimated_charge_usd": 0.0017,
        "affordable": True,
        "account": {"balance_cents": SEED_BALANCE, "affordable": True},
        "api_key": {"spent_cents": 0, "within_limit": True},
    }


async def test_quote_of_media_counts_units(pv: Client) -> None:
    _, images = await pv.post("/api/v1/quotes", {"model": "flux-schnell", "type": "image", "units": 4})
    assert images["metered_estimated_charge_usd"] == 0.012
    assert images["estimated_charge_cents"] == 1
    _, video = await pv.post("/api/v1/quotes", {"model": "veo-lite", "type": "video", "units": 12})
    assert video["metered_estimated_charge_usd"] == 0.6
    assert video["estimated_charge_cents"] == 60
    assert video["estimated_charge_usd"] == 0.6


async def test_quote_reports_the_key_limit_and_the_balance(pv: Client) -> None:
    body = {"model": "veo-lite", "type": "video", "units": 30}
    _, limited = await pv.post("/api/v1/quotes", body, key=LIMITED_KEY)
    assert limited["affordable"] is False
    assert limited["account"]["affordable"] is True
    key_check = limited["api_key"]
    assert key_check["spend_limit_cents"] == 100
    assert key_check["remaining_cents"] == 100
    assert key_check["within_limit"] is False
    assert "100 cents" in key_check["reason"]

    await pv.set_wallet(20)
    _, poor = await pv.post("/api/v1/quotes", body)
    assert poor["affordable"] is False
    assert poor["api_key"]["within_limit"] is True
    assert poor["account"]["balance_cents"] == 20
    assert poor["account"]["affordable"] is False
    assert "reason" in poor["account"]


async def test_quote_errors(pv: Client) -> None:
    details = assert_error(
        *await pv.post("/api/v1/quotes", {"model": "gpt-9", "type": "language"}), 404, "MODEL_NOT_FOUND"
    )
    assert details["model"] == "gpt-9"
    details = assert_error(
        *await pv.post("/api/v1/quotes", {"model": "veo-lite", "type": "image"}), 400, "INVALID_REQUEST"
    )
    assert details["field"] == "type"


# -- language generations and fallback ------------------------------------------------------------------


async def test_language_generation_answers_and_bills(pv: Client) -> None:
    status, gen = await pv.post("/api/v1/generations", language(settings={"max_tokens": 300}))
    assert status == 200
    assert gen["id"].startswith("gen_")
    assert gen["object"] == "generation"
    assert gen["status"] == "succeeded"
    assert (gen["type"], gen["model"], gen["finish_reason"]) == ("language", "glm-4.5", "stop")
    assert gen["output_text"].startswith("Here is what I can tell you about")
    usage = gen["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert_billing(gen)
    expected = (usage["prompt_tokens"] * 0.6 + usage["completion_tokens"] * 2.2) / 1_000_000
    assert gen["metered_final_charge_usd"] == pytest.approx(expected, rel=1e-12)
    # Same request, same text: the mock is deterministic.
    _, again = await pv.post("/api/v1/generations", language(settings={"max_tokens": 300}))
    assert again["output_text"] == gen["output_text"]
    assert again["id"] != gen["id"]


async def test_max_tokens_cuts_the_answer(pv: Client) -> None:
    _, full = await pv.post("/api/v1/generations", language())
    _, cut = await pv.post("/api/v1/generations", language(settings={"max_tokens": 5}))
    assert cut["usage"]["completion_tokens"] == 5
    assert cut["finish_reason"] == "length"
    assert full["output_text"].startswith(cut["output_text"])


async def test_fallback_skips_an_unavailable_model(pv: Client) -> None:
    body = language("glm-4.5-offline", models=["glm-4.5-air", "glm-4.5"])
    status, gen = await pv.post("/api/v1/generations", body)
    assert status == 200
    assert gen["model"] == "glm-4.5-air"
    status, chat = await pv.post(
        "/api/v1/chat/completions", {"model": "glm-4.5-offline", "messages": USER, "models": ["llama-3.1-8b"]}
    )
    assert status == 200
    assert chat["model"] == "llama-3.1-8b"


async def test_upstream_failure_of_the_whole_chain_charges_nothing(pv: Client) -> None:
    pv.state.seed("pahlavan").models["glm-4.5-air"]["available"] = False
    for path, body in (
        ("/api/v1/generations", language("glm-4.5-offline", models=["glm-4.5-air"])),
        (
            "/api/v1/chat/completions",
            {"model": "glm-4.5-offline", "messages": USER, "models": ["glm-4.5-air"]},
        ),
        ("/api/v1/generations", language("glm-4.5-offline")),
    ):
        details = assert_error(*await pv.post(path, body), 502, "UPSTREAM_REQUEST_FAILED")
        assert details["models"][0] == "glm-4.5-offline"
    pv.state.seed("pahlavan").models["flux-schnell"]["available"] = False
    assert_error(
        *await pv.post("/api/v1/generations", {"model": "flux-schnell", "type": "image", "prompt": "x"}),
        502,
        "UPSTREAM_REQUEST_FAILED",
    )
    assert ((await pv.wallet()), (await pv.money()).held_cents, (await pv.money()).carry_microcents) == (
        SEED_BALANCE,
        0,
        0,
    )


async def test_unknown_models_anywhere_in_the_chain(pv: Client) -> None:
    details = assert_error(*await pv.post("/api/v1/generations", language("gpt-9")), 404, "MODEL_NOT_FOUND")
    assert details == {"model": "gpt-9", "field": "model"}
    details = assert_error(
        *await pv.post("/api/v1/generations", language(models=["glm-4.5-air", "gpt-9"])),
        404,
        "MODEL_NOT_FOUND",
    )
    assert details == {"model": "gpt-9", "field": "models[1]"}
    status, body = await pv.post("/api/v1/chat/completions", {"model": "gpt-9", "messages": USER})
    assert_error(status, body, 404, "MODEL_NOT_FOUND")
    assert (await pv.wallet()) == SEED_BALANCE


async def test_request_rules_the_schema_cannot_state(pv: Client) -> None:
    image = {"model": "flux-schnell", "type": "image", "prompt": "a red kite"}
    assert (
        assert_error(
            *await pv.post("/api/v1/generations", {**image, "models": ["glm-4.5"]}), 400, "INVALID_REQUEST"
        )["field"]
        == "models"
    )
    assert (
        assert_error(
            *await pv.post("/api/v1/generations", {**language(), "async": False}), 400, "INVALID_REQUEST"
        )["field"]
        == "async"
    )
    assert (
        assert_error(
            *await pv.post("/api/v1/generations", language(models=["flux-schnell"])), 400, "INVALID_REQUEST"
        )["field"]
        == "type"
    )
    assert (
        assert_error(
            *await pv.post("/api/v1/generations", {**image, "type": "language"}), 400, "INVALID_REQUEST"
        )["field"]
        == "type"
    )
    video = {"model": "veo-lite", "type": "video", "prompt": "waves", "settings": {"duration_seconds": 61}}
    assert (
        assert_error(*await pv.post("/api/v1/generations", video), 400, "INVALID_REQUEST")["field"]
        == "settings.duration_seconds"
    )
    assert (await pv.wallet()) == SEED_BALANCE


async def test_model_input_required(pv: Client) -> None:
    details = assert_error(
        *await pv.post("/api/v1/generations", {"model": "glm-4.5", "type": "language"}),
        400,
        "MODEL_INPUT_REQUIRED",
    )
    assert details["input"] == "messages"
    details = assert_error(
        *await pv.post("/api/v1/generations", {"model": "flux-schnell", "type": "image"}),
        400,
        "MODEL_INPUT_REQUIRED",
    )
    assert details["input"] == "prompt"
    details = assert_error(
        *await pv.post("/api/v1/generations", {"model": "veo-lite", "type": "video"}),
        400,
        "MODEL_INPUT_REQUIRED",
    )
    assert details["input"] == "prompt"
    assert ((await pv.wallet()), (await pv.money()).held_cents) == (SEED_BALANCE, 0)


# -- billing errors ----------------------------------------------------------------------------------------


async def test_insufficient_balance_charges_nothing(pv: Client) -> None:
    await pv.set_wallet(0)
    requests = [
        ("/api/v1/generations", language()),
        ("/api/v1/generations", {"model": "flux-schnell", "type": "image", "prompt": "a red kite"}),
        ("/api/v1/chat/completions", {"model": "glm-4.5", "messages": USER, "stream": True}),
        ("/api/v1/videos/generations", {"model": "veo-lite", "prompt": "waves"}),
    ]
    for path, body in requests:
        details = assert_error(*await pv.post(path, body), 402, "INSUFFICIENT_BALANCE")
        assert details["balance_cents"] == 0
        assert details["required_cents"] >= 1
    assert ((await pv.wallet()), (await pv.money()).held_cents, (await pv.money(KEY)).key_spent_cents) == (
        0,
        0,
        0,
    )


async def test_spend_limit_of_the_limited_key_charges_nothing(pv: Client) -> None:
    body = {"model": "veo-lite", "prompt": "a slow pan over the sea", "settings": {"duration_seconds": 30}}
    details = assert_error(
        *await pv.post("/api/v1/videos/generations", body, key=LIMITED_KEY),
        403,
        "API_KEY_SPEND_LIMIT_EXCEEDED",
    )
    assert details["spend_limit_cents"] == 100
    assert details["required_cents"] == 150
    unified = {"type": "video", **body}
    assert_error(
        *await pv.post("/api/v1/generations", unified, key=LIMITED_KEY), 403, "API_KEY_SPEND_LIMIT_EXCEEDED"
    )
    limited = await pv.money(LIMITED_KEY)
    assert ((await pv.wallet()), limited.held_cents, limited.key_spent_cents, limited.key_held_cents) == (
        SEED_BALANCE,
        0,
        0,
        0,
    )
    # Within its limit the same key is billed as usual.
    status, video = await pv.post(
        "/api/v1/videos/generations", {**body, "settings": {"duration_seconds": 2}}, key=LIMITED_KEY
    )
    assert status == 202
    assert video["estimated_charge_cents"] == 10


async def test_spend_limit_counts_what_the_key_already_spent(pv: Client) -> None:
    pv.set_price("glm-4.5", input_per_1m_tokens=0, output_per_1m_tokens=100_000)  # 10 cents a token
    status, gen = await pv.post("/api/v1/generations", language(settings={"max_tokens": 9}), key=LIMITED_KEY)
    assert status == 200
    assert gen["final_charge_cents"] == 90
    assert (await pv.money(LIMITED_KEY)).key_spent_cents == 90
    status, body = await pv.post("/api/v1/generations", language(settings={"max_tokens": 2}), key=LIMITED_KEY)
    assert_error(status, body, 403, "API_KEY_SPEND_LIMIT_EXCEEDED")
    status, _ = await pv.post("/api/v1/generations", language(settings={"max_tokens": 1}), key=LIMITED_KEY)
    assert status == 200
    assert (await pv.money(LIMITED_KEY)).key_spent_cents == 100
    assert (await pv.wallet()) == SEED_BALANCE - 100


# -- images ------------------------------------------------------------------------------------------------


async def test_image_generation_returns_a_downloadable_png(pv: Client) -> None:
    status, gen = await pv.post(
        "/api/v1/generations", {"model": "flux-schnell", "type": "image", "prompt": "a red kite"}
    )
    assert status == 200
    assert gen["type"] == "image"
    assert gen["id"].startswith("gen_")
    assert "output_text" not in gen
    assert "usage" not in gen
    assert_billing(gen)
    assert gen["metered_final_charge_usd"] == 0.003
    assert gen["final_charge_cents"] == 0
    [url] = gen["output_urls"]
    assert url.startswith(pv.origin + "/")
    status, content_type, data = await pv.fetch(url)
    assert (status, content_type) == (200, "image/png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (await pv.money()).carry_microcents == 300_000


async def test_output_urls_follow_the_host_the_client_used(pv: Client) -> None:
    forwarded = {"X-Forwarded-Host": "studio.example.test", "X-Forwarded-Proto": "https"}
    _, gen = await pv.post(
        "/api/v1/generations", {"model": "flux-schnell", "type": "image", "prompt": "kite"}, headers=forwarded
    )
    assert gen["output_urls"][0].startswith("https://studio.example.test/_mock/files/")
    _, video = await pv.post(
        "/api/v1/videos/generations", {"model": "veo-lite", "prompt": "kite"}, headers=forwarded
    )
    assert (
        video["status_url"] == f"https://studio.example.test/pahlavan/api/v1/videos/generations/{video['id']}"
    )


@pytest.mark.skipif(not STORAGE_READY, reason="storage.py is not there yet")
async def test_image_save_to_storage_returns_signed_urls(pv: Client) -> None:
    body = {
        "model": "flux-schnell",
        "type": "image",
        "prompt": "a red kite",
        "settings": {"saveToStorage": True, "storagePath": "website-a/assets"},
    }
    status, gen = await pv.post("/api/v1/generations", body)
    assert status == 200, gen
    [url] = gen["output_urls"]
    assert "/pahlavan/api/v1/storage/object?" in url
    assert "website-a" in url
    status, content_type, data = await pv.fetch(url)
    assert (status, content_type) == (200, "image/png")
    assert data.startswith(b"\x89PNG")
    assert_billing(gen)


# -- videos ------------------------------------------------------------------------------------------------


async def test_video_runs_async_and_is_charged_on_success(pv: Client) -> None:
    status, created = await pv.post(
        "/api/v1/generations", {"model": "veo-lite", "type": "video", "prompt": "waves at dusk"}
    )
    assert status == 202
    assert created["id"].startswith("vid_")
    assert created["object"] == "video.generation"
    assert created["status"] == "queued"
    assert created["model"] == "veo-lite"
    assert created["status_url"] == f"{pv.base}/api/v1/videos/generations/{created['id']}"
    assert created["estimated_charge_cents"] == 25
    assert "final_charge_cents" not in created
    assert ((await pv.wallet()), (await pv.money()).held_cents) == (SEED_BALANCE, 25)

    await pv.advance(10)
    status, running = await pv.call("GET", f"/api/v1/videos/generations/{created['id']}")
    assert status == 200
    assert running["status"] == "processing"
    assert (await pv.wallet()) == SEED_BALANCE

    await pv.advance(15)
    async with pv.session.get(created["status_url"], headers={"Authorization": f"Bearer {KEY}"}) as resp:
        done = await resp.json()
    assert done["status"] == "succeeded"
    assert_billing(done)
    assert done["final_charge_cents"] == 25
    assert done["metered_final_charge_usd"] == 0.25
    assert ((await pv.wallet()), (await pv.money()).held_cents) == (SEED_BALANCE - 25, 0)
    status, content_type, data = await pv.fetch(done["output_url"])
    assert (status, content_type) == (200, "video/mp4")
    assert data[4:8] == b"ftyp"


async def test_failed_video_is_not_charged(pv: Client) -> None:
    status, created = await pv.post(
        "/api/v1/videos/generations", {"model": "veo-lite", "prompt": f"a storm {FAIL_MARKER}"}
    )
    assert status == 202
    await pv.advance(30)
    _, failed = await pv.call("GET", f"/api/v1/videos/generations/{created['id']}")
    assert failed["status"] == "failed"
    assert "output_url" not in failed
    assert set(failed["error"]) == {"code", "message"}
    assert FAIL_MARKER in failed["error"]["message"]
    assert "final_charge_cents" not in failed
    assert ((await pv.wallet()), (await pv.money()).held_cents) == (SEED_BALANCE, 0)


async def _while_advancing(pv: Client, request: Any) -> tuple[int, Any]:
    """Run a request that waits on the mock's clock, advancing the clock until it answers."""
    task = asyncio.ensure_future(request)
    for _ in range(100):
        if task.done():
            break
        await pv.advance(30)
        await asyncio.wait({task}, timeout=0.05)
    result: tuple[int, Any] = await task
    return result


async def test_sync_video_waits_for_the_final_state(pv: Client) -> None:
    body = {
        "model": "veo-lite",
        "prompt": "a quiet harbour",
        "async": False,
        "settings": {"duration_seconds": 2},
    }
    status, video = await _while_advancing(pv, pv.post("/api/v1/videos/generations", body))
    assert status == 200
    assert video["status"] == "succeeded"
    assert video["final_charge_cents"] == 10
    assert_billing(video)

    status, failed = await _while_advancing(
        pv, pv.post("/api/v1/videos/generations", {**body, "prompt": FAIL_MARKER})
    )
    assert status == 200
    assert failed["status"] == "failed"
    assert "error" in failed

    unified = {"type": "video", **body}
    status, gen = await _while_advancing(pv, pv.post("/api/v1/generations", unified))
    assert status == 200
    assert gen["object"] == "generation"
    assert gen["status"] == "succeeded"
    assert gen["id"].startswith("vid_")
    assert len(gen["output_urls"]) == 1
    assert_billing(gen)
    _, polled = await pv.call("GET", f"/api/v1/videos/generations/{gen['id']}")
    assert polled["status"] == "succeeded"

    status, body_failed = await _while_advancing(
        pv, pv.post("/api/v1/generations", {**unified, "prompt": FAIL_MARKER})
    )
    assert_error(status, body_failed, 502, "UPSTREAM_REQUEST_FAILED")
    assert ((await pv.wallet()), (await pv.money()).held_cents) == (SEED_BALANCE - 20, 0)


async def test_videos_are_private_to_their_account(pv: Client) -> None:
    await add_other_account(pv)
    _, created = await pv.post("/api/v1/videos/generations", {"model": "veo-lite", "prompt": "waves"})
    details = assert_error(
        *await pv.call("GET", f"/api/v1/videos/generations/{created['id']}", key=OTHER_KEY), 404, "NOT_FOUND"
    )
    assert details["id"] == created["id"]
    assert_error(*await pv.call("GET", "/api/v1/videos/generations/vid_unknown"), 404, "NOT_FOUND")
    # Another key of the same account sees it.
    status, _ = await pv.call("GET", f"/api/v1/videos/generations/{created['id']}", key=LIMITED_KEY)
    assert status == 200


# -- chat --------------------------------------------------------------------------------------------------


async def test_chat_completion_is_openai_shaped_and_billed(pv: Client) -> None:
    status, chat = await pv.post(
        "/api/v1/chat/completions", {"model": "glm-4.5", "messages": USER, "max_tokens": 6}
    )
    assert status == 200
    assert chat["id"].startswith("chatcmpl-")
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == 6
    assert_billing(chat)


async def test_stream_is_charged_once_at_the_end() -> None:
    async with serve(tokens_per_second=200) as pv:
        pv.set_price("glm-4.5", input_per_1m_tokens=10_000, output_per_1m_tokens=50_000)
        body = {
            "model": "glm-4.5",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"Authorization": f"Bearer {KEY}"}
        async with pv.session.post(pv.base + "/api/v1/chat/completions", json=body, headers=headers) as resp:
            events = read_events(resp)
            first = [await anext(events) for _ in range(3)]
            # Mid-stream: held, not charged (the quote shows the untouched balance).
            assert (await pv.wallet()) == SEED_BALANCE
            assert (await pv.money()).held_cents > 0
            _, quote = await pv.post("/api/v1/quotes", {"model": "glm-4.5", "type": "language"})
            assert quote["account"]["balance_cents"] == SEED_BALANCE
            rest = [event async for event in events]
        chunks = first + rest
        assert chunks[-1] == "[DONE]"
        *content, finish, final = chunks[:-1]
        assert all(not set(BILLING_FIELDS) & set(c) for c in (*content, finish))
        assert final["choices"] == []
        assert final["usage"]["completion_tokens"] == len(content) - 1
        assert_billing(final)
        assert final["final_charge_cents"] > 0
        assert ((await pv.wallet()), (await pv.money()).held_cents) == (
            SEED_BALANCE - final["final_charge_cents"],
            0,
        )
        assert (await pv.money(KEY)).key_spent_cents == final["final_charge_cents"]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in content)
        _, plain = await pv.post("/api/v1/chat/completions", {"model": "glm-4.5", "messages": USER})
        assert plain["choices"][0]["message"]["content"] == text
        assert plain["final_charge_cents"] == final["final_charge_cents"]


async def test_stream_without_usage_bills_on_the_finish_chunk(pv: Client) -> None:
    events = await pv.stream({"model": "glm-4.5", "messages": USER, "stream": True, "max_tokens": 4})
    assert events[-1] == "[DONE]"
    finish = events[-2]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert "usage" not in finish
    assert_billing(finish)
    assert all("final_charge_cents" not in e for e in events[:-2])


async def test_an_abandoned_stream_is_not_charged() -> None:
    async with serve(tokens_per_second=100) as pv:
        body = {"model": "glm-4.5", "messages": USER, "stream": True}
        headers = {"Authorization": f"Bearer {KEY}"}
        resp = await pv.session.post(pv.base + "/api/v1/chat/completions", json=body, headers=headers)
        events = read_events(resp)
        await anext(events)
        assert (await pv.money()).held_cents > 0
        resp.close()
        for _ in range(200):  # the server notices at its next write
            if (await pv.money()).held_cents == 0:
                break
            await asyncio.sleep(0.01)
        assert ((await pv.wallet()), (await pv.money()).held_cents, (await pv.money()).carry_microcents) == (
            SEED_BALANCE,
            0,
            0,
        )


async def test_a_cut_stream_is_not_charged(pv: Client) -> None:
    fault = {"provider": "pahlavan", "operation_id": "createChatCompletion", "cut_after_events": 3}
    assert (await pv.control("POST", "/faults", fault))[0] == 201
    with pytest.raises(aiohttp.ClientPayloadError):
        await pv.stream({"model": "glm-4.5", "messages": USER, "stream": True})
    for _ in range(100):
        if (await pv.money()).held_cents == 0:
            break
        await asyncio.sleep(0.01)
    assert ((await pv.wallet()), (await pv.money()).held_cents, (await pv.money()).carry_microcents) == (
        SEED_BALANCE,
        0,
        0,
    )


async def test_openai_client_works_unchanged(pv: Client) -> None:
    async with openai.AsyncOpenAI(
        base_url=pv.base + "/api/v1", api_key=KEY, max_retries=0, timeout=10
    ) as client:
        completion = await client.chat.completions.create(model="glm-4.5", messages=USER, max_tokens=8)
        assert completion.id.startswith("chatcmpl-")
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 8
        extra = completion.model_extra or {}
        assert set(BILLING_FIELDS) <= set(extra)

        stream = await client.chat.completions.create(
            model="glm-4.5-offline",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"models": ["glm-4.5"]},
        )
        chunks = [chunk async for chunk in stream]
        assert {c.model for c in chunks} == {"glm-4.5"}
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert "final_charge_cents" in (chunks[-1].model_extra or {})

        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model="gpt-9", messages=USER)
        assert raised.value.body is not None


# -- billing invariants ------------------------------------------------------------------------------------


async def test_quote_estimate_equals_the_charge_when_output_hits_max_tokens(pv: Client) -> None:
    pv.set_price("glm-4.5", input_per_1m_tokens=300, output_per_1m_tokens=1500)
    body = language(settings={"max_tokens": 7})
    _, first = await pv.post("/api/v1/generations", body)  # learns the prompt size and moves the carry
    prompt = first["usage"]["prompt_tokens"]
    for _ in range(3):  # at several carries
        _, quote = await pv.post(
            "/api/v1/quotes",
            {"model": "glm-4.5", "type": "language", "inputTokens": prompt, "outputTokens": 7},
        )
        _, gen = await pv.post("/api/v1/generations", body)
        assert gen["finish_reason"] == "length"
        assert gen["final_charge_cents"] == gen["estimated_charge_cents"] == quote["estimated_charge_cents"]
        assert gen["metered_final_charge_usd"] == quote["metered_estimated_charge_usd"]
        assert gen["final_charge_usd"] == quote["estimated_charge_usd"]


async def test_many_small_charges_sum_to_the_metered_total(pv: Client) -> None:
    pv.set_price("glm-4.5-air", input_per_1m_tokens=333, output_per_1m_tokens=777)
    settled = 0
    metered = 0.0
    for index in range(200):
        messages = [{"role": "user", "content": f"question number {index} " + "word " * (index % 7)}]
        body = {
            "model": "glm-4.5-air",
            "type": "language",
            "messages": messages,
            "settings": {"max_tokens": 1 + index % 9},
        }
        status, gen = await pv.post("/api/v1/generations", body)
        assert status == 200
        assert_billing(gen)
        settled += gen["final_charge_cents"]
        metered += gen["metered_final_charge_usd"]
    assert abs(metered * 100 - settled) < 1
    assert settled > 100  # the charges were each a fraction of a cent to a cent or so
    assert (await pv.wallet()) == SEED_BALANCE - settled
    assert 0 <= (await pv.money()).carry_microcents < 1_000_000


async def _billed_request(pv: Client, index: int) -> tuple[int, Any]:
    """One of a mix of billed requests; a stream's billing comes from its last JSON chunk."""
    messages = [{"role": "user", "content": f"Tell me about lighthouses, part {index}"}]
    kind = index % 4
    if kind == 0:
        return await pv.post(
            "/api/v1/chat/completions", {"model": "glm-4.5", "messages": messages, "max_tokens": 6}
        )
    if kind == 1:
        body = {"model": "glm-4.5", "messages": messages, "max_tokens": 6, "stream": True}
        async with pv.session.post(
            pv.base + "/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as resp:
            if resp.status != 200:
                return resp.status, await resp.json()
            events = [event async for event in read_events(resp)]
            assert events[-1] == "[DONE]"
            return resp.status, events[-2]
    if kind == 2:
        return await pv.post(
            "/api/v1/generations",
            {"model": "glm-4.5", "type": "language", "messages": messages, "settings": {"max_tokens": 6}},
        )
    return await pv.post(
        "/api/v1/generations", {"model": "flux-schnell", "type": "image", "prompt": f"lighthouse {index}"}
    )


@pytest.mark.slow
@pytest.mark.parametrize("run", range(5))
async def test_concurrent_requests_never_overdraw_the_wallet(run: int) -> None:
    # Paced streams keep their holds open across many event-loop turns while the other requests run.
    async with serve(tokens_per_second=400) as pv:
        pv.set_price("glm-4.5", input_per_1m_tokens=2_000, output_per_1m_tokens=8_000)
        pv.set_price("flux-schnell", per_image=0.05)
        await pv.set_wallet(150)
        lowest, most_held = [(await pv.wallet())], [0]
        finished = asyncio.Event()

        async def watch() -> None:
            while not finished.is_set():
                lowest.append(min((await pv.wallet()), (await pv.wallet()) - (await pv.money()).held_cents))
                most_held.append((await pv.money()).held_cents)
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        results = await asyncio.gather(*(_billed_request(pv, run * 1000 + i) for i in range(120)))
        finished.set()
        await watcher

        charged = [body for status, body in results if status == 200]
        refused = [(status, body) for status, body in results if status != 200]
        for status, body in refused:
            assert_error(status, body, 402, "INSUFFICIENT_BALANCE")
        assert charged
        assert refused
        for body in charged:
            assert_billing(body)
        total = sum(body["final_charge_cents"] for body in charged)
        assert min(lowest) >= 0
        assert max(most_held) > 10  # holds of several requests were open at once (a hold is 5-7 cents)
        assert (await pv.wallet()) == 150 - total >= 0
        assert (await pv.money(KEY)).key_spent_cents == total
        assert (await pv.money()).held_cents == (await pv.money(KEY)).key_held_cents == 0
        metered_cents = sum(body["metered_final_charge_usd"] for body in charged) * 100
        assert 0 <= metered_cents - total < 1
