"""Generated outputs: real PNG/JPEG/MP4 files, deterministic under a seed, served under /_mock/files."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from PIL import Image

from mockserver.app import create_app
from mockserver.core.clock import Clock
from mockserver.core.media import (
    JPEG,
    MP4,
    PNG,
    FileStore,
    render_image,
    render_thumbnail,
    render_video,
    video_poster,
)
from mockserver.mock import MOCK, Mock
from mockserver.resources import PROVIDER_IDS, fixtures_dir
from mockserver.settings import Settings
from mockserver.state.factory import create_state
from mockserver.state.seed import read_seeds

PROMPT = "A futuristic city at sunset, cyberpunk style, neon lights"


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def count_frames(data: bytes) -> tuple[str, int, tuple[int, int]]:
    """Codec name, decoded frame count and frame size of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return stream.codec_context.name, len(frames), (frames[0].width, frames[0].height)


# -- renderers --------------------------------------------------------------------------------------


def test_image_is_a_png_of_the_requested_size() -> None:
    image = open_image(render_image(PROMPT, 0))
    assert image.format == "PNG"
    assert image.size == (512, 512)
    assert open_image(render_image(PROMPT, 0, width=320, height=200)).size == (320, 200)


def test_image_depends_on_prompt_and_seed_only() -> None:
    assert render_image(PROMPT, 0) == render_image(PROMPT, 0)
    assert render_image(PROMPT, 0) != render_image(PROMPT, 1)
    assert render_image(PROMPT, 0) != render_image(PROMPT + "!", 0)
    # Not just metadata: the pixels differ.
    first, second = open_image(render_image("a red fox", 3)), open_image(render_image("a blue whale", 3))
    assert first.tobytes() != second.tobytes()


def test_thumbnail_is_a_small_jpeg() -> None:
    thumb = open_image(render_thumbnail(render_image(PROMPT, 0)))
    assert thumb.format == "JPEG"
    assert max(thumb.size) == 128
    assert max(open_image(render_thumbnail(render_image(PROMPT, 0), size=64)).size) == 64


def test_video_is_an_h264_mp4_with_the_requested_frames() -> None:
    data = render_video(PROMPT, 0)
    assert data[4:8] == b"ftyp"
    assert count_frames(data) == ("h264", 16, (128, 128))
    assert count_frames(render_video(PROMPT, 0, seconds=1, fps=4, size=64)) == ("h264", 4, (64, 64))


def test_video_depends_on_prompt_and_seed_only() -> None:
    assert render_video(PROMPT, 0) == render_video(PROMPT, 0)
    assert render_video(PROMPT, 0) != render_video(PROMPT, 1)
    assert render_video(PROMPT, 0) != render_video("something else", 0)
    assert open_image(video_poster(PROMPT, 0)).size == (128, 128)


# -- the store --------------------------------------------------------------------------------------


async def test_store_gives_unique_ids_and_forgets_on_reset() -> None:
    state = create_state(Settings(), read_seeds(fixtures_dir(), PROVIDER_IDS), Clock())
    await state.open()
    store = FileStore(state)
    first = await store.put(b"one", PNG, "a.png")
    second = await store.put(b"one", PNG, "a.png")
    assert first.id != second.id
    assert all(c in "0123456789abcdef" for c in first.id)
    assert await store.get(first.id) == first
    assert await store.open(first.id) == (first, b"one")
    assert store.url("http://h:1", first) == f"http://h:1/_mock/files/{first.id}/a.png"
    await state.reset()
    store.reset()
    assert await store.get(first.id) is None
    # Ids handed out before a reset never name a new file.
    assert (await store.put(b"two", PNG, "a.png")).id not in {first.id, second.id}


async def test_a_recipe_is_drawn_on_first_open_and_kept() -> None:
    state = create_state(Settings(), read_seeds(fixtures_dir(), PROVIDER_IDS), Clock())
    await state.open()
    store = FileStore(state)
    recipe = {"render": "image", "prompt": PROMPT, "seed": 0}
    stored = await store.put_recipe(recipe, PNG, "a.png")
    assert await state.get_file(stored.id) == (stored, None)  # nothing drawn yet
    opened = await store.open(stored.id)
    assert opened == (stored, render_image(PROMPT, 0))
    assert await state.get_file(stored.id) == (stored, opened[1])
    with pytest.raises(LookupError):
        await store.put_recipe({"render": "nothing"}, PNG, "b.png")
    # Drawn from a file that is gone: unknown too (a 404 when downloaded), not an error.
    orphan = await store.put_recipe({"render": "thumbnail", "source": "0" * 24}, JPEG, "c.jpg")
    assert await store.open(orphan.id) is None


# -- served over HTTP -------------------------------------------------------------------------------


@dataclass
class Server:
    session: aiohttp.ClientSession
    origin: str
    mock: Mock


@pytest.fixture
async def server(backend_settings: Callable[[], dict[str, Any]]) -> AsyncIterator[Server]:
    """The ArtificialStudio-only mock in this event loop, on this test's state backend."""
    settings = Settings(providers=("artificialstudio",), response_validation="strict").with_changes(
        **backend_settings()
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            yield Server(session, f"http://127.0.0.1:{port}", app[MOCK])
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("content_type", "filename", "make"),
    [
        (PNG, "out.png", lambda: render_image(PROMPT, 0)),
        (JPEG, "thumb.jpg", lambda: render_thumbnail(render_image(PROMPT, 0))),
        (MP4, "clip.mp4", lambda: render_video(PROMPT, 0)),
    ],
)
async def test_files_are_served_with_their_content_type(
    server: Server, content_type: str, filename: str, make: Callable[[], bytes]
) -> None:
    data = make()
    stored = await server.mock.services.files.put(data, content_type, filename)
    url = server.mock.services.files.url(server.origin, stored)
    async with server.session.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == content_type
        assert await resp.read() == data


async def test_unknown_files_are_404_json(server: Server) -> None:
    stored = await server.mock.services.files.put(b"x", PNG, "out.png")
    for path in ("/_mock/files/0123456789abcdef/out.png", f"/_mock/files/{stored.id}/other.png"):
        async with server.session.get(server.origin + path) as resp:
            assert resp.status == 404
            body = await resp.json()
            assert body["error"]["code"] == "not_found"


async def test_files_kept_for_a_provider_are_not_served(server: Server) -> None:
    stored = await server.mock.services.files.put(b"secret", PNG, "out.png", public=False)
    async with server.session.get(server.mock.services.files.url(server.origin, stored)) as resp:
        assert resp.status == 404


async def test_reset_forgets_files(server: Server) -> None:
    stored = await server.mock.services.files.put(b"x", PNG, "out.png")
    url = server.mock.services.files.url(server.origin, stored)
    async with server.session.post(server.origin + "/_mock/reset") as resp:
        assert resp.status == 200
    async with server.session.get(url) as resp:
        assert resp.status == 404
