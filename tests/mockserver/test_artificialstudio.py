"""Artificial Studio over real HTTP: runs, polling on the mock clock, real output files, webhooks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import yaml
from _mock_test_helpers import listen
from aiohttp import web
from jsonschema import Draft202012Validator
from PIL import Image

from mockserver.app import create_app
from mockserver.core import media
from mockserver.core.jobs import FAIL_MARKER
from mockserver.mock import MOCK, Mock
from mockserver.resources import fixtures_dir, spec_path
from mockserver.settings import Settings

PROVIDER = "artificialstudio"
KEY = "as_test_mockkey_0001"
OTHER_KEY = "as_test_mockkey_0002"
PROMPT = "A futuristic city at sunset, cyberpunk style, neon lights"
GENERATION_ID = re.compile(r"^[0-9a-f]{24}$")
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Jobs ten times slower than the default, so real time passing during a test never finishes one.
JOB_SPEED = 0.1
PAST_ANY_JOB = 60.0


@cache
def spec() -> dict[str, Any]:
    return dict(yaml.safe_load(spec_path(PROVIDER).read_text(encoding="utf-8")))


def validator(ref: str) -> Draft202012Validator:
    """A validator for a schema of the spec, its ``$ref``s resolving inside the spec."""
    return Draft202012Validator({"$ref": ref, "components": spec()["components"]})


def webhook_body_schema() -> Draft202012Validator:
    body = spec()["webhooks"]["generationCompleted"]["post"]["requestBody"]
    return Draft202012Validator(
        {**body["content"]["application/json"]["schema"], "components": spec()["components"]}
    )


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The Standard Webhooks signature check, from the scheme."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(sig.removeprefix("v1,"), expected) for sig in headers["webhook-signature"].split()
    )


@dataclass
class Client:
    session: aiohttp.ClientSession
    origin: str
    mock: Mock

    @property
    def base(self) -> str:
        return self.origin + "/" + PROVIDER

    async def request(
        self, method: str, path: str, *, key: str | None = KEY, json: Any = None, auth: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": auth if auth is not None else key} if (key or auth) else {}
        async with self.session.request(method, self.base + path, json=json, headers=headers) as resp:
            return resp.status, await resp.json()

    async def run(self, prompt: str = PROMPT, tool: str = "create-image", **extra: Any) -> dict[str, Any]:
        status, body = await self.request(
            "POST", "/api/run", json={"tool": tool, "input": {"prompt": prompt}, **extra}
        )
        assert status == 200, body
        return dict(body)

    async def poll(self, generation_id: str, key: str = KEY) -> tuple[int, Any]:
        return await self.request("GET", f"/api/generations/{generation_id}", key=key)

    async def advance(self, seconds: float = PAST_ANY_JOB) -> None:
        async with self.session.post(self.origin + "/_mock/clock/advance", json={"seconds": seconds}) as r:
            assert r.status == 200

    async def finished(self, generation_id: str) -> dict[str, Any]:
        await self.advance()
        status, body = await self.poll(generation_id)
        assert status == 200, body
        return dict(body)

    async def download(self, url: str) -> tuple[str, bytes]:
        async with self.session.get(url) as resp:
            assert resp.status == 200, url
            return resp.content_type, await resp.read()

    async def control(self, path: str) -> Any:
        async with self.session.get(self.origin + "/_mock" + path) as resp:
            assert resp.status == 200
            return await resp.json()


@asynccontextmanager
async def serve(seed: int = 0, fixtures: Path | None = None, **backend: Any) -> AsyncIterator[Client]:
    """The ArtificialStudio-only mock in this event loop (on the state ``backend`` names; memory without)."""
    settings = Settings(
        seed=seed, providers=(PROVIDER,), response_validation="strict", job_speed=JOB_SPEED, fixtures=fixtures
    ).with_changes(**backend)
    app = create_app(settings)
    async with listen(app) as origin, aiohttp.ClientSession() as session:
        client = Client(session, origin, app[MOCK])
        yield client
        assert (await client.control("/violations"))["violations"] == []


@pytest.fixture
async def client(backend_settings: Callable[[], dict[str, Any]]) -> AsyncIterator[Client]:
    async with serve(**backend_settings()) as c:
        yield c


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"error", "code"}
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert validator("#/components/schemas/Error").is_valid(body)


# -- listing and runs -------------------------------------------------------------------------------


async def test_listing_shows_the_tools_as_models(client: Client) -> None:
    (entry,) = (await client.control("/providers"))["providers"]
    assert entry["id"] == PROVIDER
    assert entry["base_url"] == client.base
    assert entry["api_key"] == KEY
    assert entry["models"] == ["create-image", "create-video"]


async def test_image_run_processes_then_succeeds_with_real_files(client: Client) -> None:
    created = await client.run()
    assert set(created) == {"id", "status", "tool", "createdAt"}
    assert GENERATION_ID.match(created["id"])
    assert (created["status"], created["tool"]) == ("processing", "create-image")
    assert CREATED_AT.match(created["createdAt"])

    status, polled = await client.poll(created["id"])
    assert status == 200
    assert polled == created

    done = await client.finished(created["id"])
    assert set(done) == {"id", "status", "tool", "createdAt", "output", "thumbnail", "type"}
    assert (done["id"], done["status"], done["type"], done["tool"]) == (
        created["id"],
        "success",
        "image",
        "create-image",
    )
    assert done["createdAt"] == created["createdAt"]
    assert validator("#/components/schemas/Generation").is_valid(done)
    assert done["output"].startswith(client.origin + "/_mock/files/")
    assert done["output"].endswith(f"/{created['id']}.png")

    content_type, png = await client.download(done["output"])
    assert content_type == "image/png"
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (512, 512))
    content_type, jpeg = await client.download(done["thumbnail"])
    assert content_type == "image/jpeg"
    thumb = Image.open(io.BytesIO(jpeg))
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= 128

    # Polling again gives the same generation and the same files.
    assert (await client.poll(created["id"]))[1] == done


async def test_outputs_are_drawn_once_however_many_download_them(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws: list[str] = []
    render = media.render_image

    def counted(prompt: str, seed: int, width: int = 512, height: int = 512) -> bytes:
        draws.append(prompt)
        return render(prompt, seed, width, height)

    monkeypatch.setattr(media, "render_image", counted)
    done = await client.finished((await client.run())["id"])
    assert draws == []  # finishing the job draws nothing
    # The output and its thumbnail (drawn from the output), downloaded concurrently, several times.
    downloads = await asyncio.gather(*(client.download(done[name]) for name in ["output", "thumbnail"] * 4))
    assert draws == [PROMPT]
    assert len({data for _, data in downloads[::2]}) == len({data for _, data in downloads[1::2]}) == 1
    assert (await client.download(done["output"]))[1] == downloads[0][1]
    assert draws == [PROMPT]


async def test_video_run_gives_an_mp4_and_a_jpeg_thumbnail(client: Client) -> None:
    created = await client.run("A timelapse of clouds", tool="create-video")
    done = await client.finished(created["id"])
    assert (done["status"], done["type"], done["tool"]) == ("success", "video", "create-video")
    content_type, mp4 = await client.download(done["output"])
    assert content_type == "video/mp4"
    assert mp4[4:8] == b"ftyp"
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 16
    content_type, jpeg = await client.download(done["thumbnail"])
    assert content_type == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


async def test_outputs_depend_on_prompt_and_seed(client: Client) -> None:
    first, same, other = (
        (await client.run(PROMPT)),
        (await client.run(PROMPT)),
        (await client.run("a red fox")),
    )
    await client.advance()
    outputs = []
    for created in (first, same, other):
        done = (await client.poll(created["id"]))[1]
        outputs.append((await client.download(done["output"]))[1])
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    async with serve(seed=1) as reseeded:
        created = await reseeded.run(PROMPT)
        done = await reseeded.finished(created["id"])
        assert (await reseeded.download(done["output"]))[1] != outputs[0]


async def test_the_failure_marker_fails_the_generation(client: Client) -> None:
    created = await client.run(f"a cat {FAIL_MARKER}")
    assert created["status"] == "processing"
    done = await client.finished(created["id"])
    assert done["status"] == "failed"
    assert FAIL_MARKER in done["error"]
    assert "output" not in done
    assert validator("#/components/schemas/Generation").is_valid(done)


async def test_reset_forgets_generations_and_their_files(client: Client) -> None:
    created = await client.run()
    done = await client.finished(created["id"])
    async with client.session.post(client.origin + "/_mock/reset") as resp:
        assert resp.status == 200
    assert_error(*await client.poll(created["id"]), 404, "not_found")
    async with client.session.get(done["output"]) as resp:
        assert resp.status == 404


# -- errors -----------------------------------------------------------------------------------------


async def test_the_raw_key_is_the_only_accepted_form(client: Client) -> None:
    body = {"tool": "create-image", "input": {"prompt": PROMPT}}
    assert_error(
        *await client.request("POST", "/api/run", json=body, auth=f"Bearer {KEY}"), 401, "unauthorized"
    )
    assert_error(*await client.request("POST", "/api/run", json=body, key=None), 401, "unauthorized")
    assert_error(*await client.request("POST", "/api/run", json=body, key="as_wrong"), 401, "unauthorized")
    assert_error(
        *await client.request("GET", "/api/generations/507f1f77bcf86cd799439011", key=None),
        401,
        "unauthorized",
    )


async def test_unknown_and_malformed_generation_ids(client: Client) -> None:
    assert_error(*await client.poll("507f1f77bcf86cd799439011"), 404, "not_found")
    assert_error(*await client.poll("not-an-id"), 400, "invalid_request")
    assert_error(*await client.poll("507F1F77BCF86CD799439011"), 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"tool": "create-image", "input": {}},
        {"tool": "create-image", "input": {"prompt": ""}},
        {"input": {"prompt": PROMPT}},
        {"tool": "create-image", "input": {"prompt": PROMPT}, "webhook": 5},
        {"tool": "create-image", "input": {"prompt": PROMPT}, "webhook": "not a uri"},
    ],
    ids=["no-prompt", "empty-prompt", "no-tool", "webhook-not-string", "webhook-not-uri"],
)
async def test_invalid_runs_are_400(client: Client, body: dict[str, Any]) -> None:
    assert_error(*await client.request("POST", "/api/run", json=body), 400, "invalid_request")


async def test_unknown_tool_is_not_found_and_names_the_tool(client: Client) -> None:
    status, body = await client.request(
        "POST", "/api/run", json={"tool": "create-imagee", "input": {"prompt": "x"}}
    )
    assert_error(status, body, 404, "not_found")
    assert body["error"] == "Unknown tool: create-imagee"


async def test_generations_belong_to_the_keys_account(tmp_path: Path) -> None:
    seed = yaml.safe_load((fixtures_dir() / "seed" / f"{PROVIDER}.yaml").read_text(encoding="utf-8"))
    seed["accounts"].append({"id": "acct_other"})
    seed["keys"].append({"key": OTHER_KEY, "account": "acct_other"})
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / f"{PROVIDER}.yaml").write_text(yaml.safe_dump(seed), encoding="utf-8")
    async with serve(fixtures=tmp_path) as c:
        created = await c.run()
        await c.advance()
        assert (await c.poll(created["id"]))[0] == 200
        assert_error(*await c.poll(created["id"], key=OTHER_KEY), 404, "not_found")


# -- webhooks ---------------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", hook.handle)
    async with listen(app) as origin:
        hook.url = origin + "/webhook"
        yield hook


async def test_webhook_receives_the_final_generation_signed(client: Client, receiver: Receiver) -> None:
    created = await client.run(webhook=receiver.url)
    await client.advance(1)
    assert receiver.received == []
    done = await client.finished(created["id"])

    ((headers, body),) = receiver.received
    payload = json.loads(body)
    assert payload == done
    assert payload["status"] == "success"
    errors = [e.message for e in webhook_body_schema().iter_errors(payload)]
    assert errors == []
    parameters = spec()["components"]["parameters"]
    for name in ("WebhookId", "WebhookTimestamp", "WebhookSignature"):
        param = parameters[name]
        value: Any = headers[param["name"]]
        if param["schema"].get("type") == "integer":
            value = int(value)
        assert Draft202012Validator(param["schema"]).is_valid(value), (name, value)
    secret = (await client.control("/webhooks/secrets"))["secrets"][PROVIDER]
    assert verify(secret, headers, body)

    (delivery,) = (await client.control(f"/webhooks?provider={PROVIDER}"))["deliveries"]
    assert delivery["id"] == headers["webhook-id"]
    assert (delivery["status"], delivery["event"], delivery["url"]) == (
        "succeeded",
        "generationCompleted",
        receiver.url,
    )
    assert delivery["payload"] == done
    assert [a["status"] for a in delivery["attempts"]] == [204]

    # The output URL in the webhook downloads the same file the poll points to.
    assert (await client.download(payload["output"]))[0] == "image/png"


async def test_webhook_for_a_failed_generation(client: Client, receiver: Receiver) -> None:
    created = await client.run(f"nope {FAIL_MARKER}", webhook=receiver.url)
    done = await client.finished(created["id"])
    ((_, body),) = receiver.received
    payload = json.loads(body)
    assert payload == done
    assert payload["status"] == "failed"
    assert webhook_body_schema().is_valid(payload)


async def test_webhook_is_retried_until_acknowledged(client: Client, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    created = await client.run(webhook=receiver.url)
    await client.finished(created["id"])
    for _ in range(2):
        await client.advance(PAST_ANY_JOB + 5)
    (delivery,) = (await client.control("/webhooks"))["deliveries"]
    assert delivery["status"] == "succeeded"
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 204]
    assert len({h["webhook-id"] for h, _ in receiver.received}) == 1


async def test_webhook_without_a_listener_is_not_sent_for_runs_without_one(client: Client) -> None:
    created = await client.run()
    await client.finished(created["id"])
    assert (await client.control("/webhooks"))["deliveries"] == []
