"""Generated outputs as real files: a store served under ``/_mock/files`` and deterministic renderers.

Renders depend only on (seed, prompt), so the same request under the same seed gives the same bytes,
and a different prompt or seed gives visibly different ones. Each render takes a few milliseconds, which
thousands of jobs finishing at one clock advance would add up to seconds of a blocked event loop: a file
can therefore be stored as a recipe (``FileStore.put_recipe``, a name in ``RENDERS`` and its arguments),
drawn on its first download in a worker thread and kept (``State.put_blob``), so any instance sharing the
state can draw it and it is drawn once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import textwrap
from collections.abc import Callable, Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from mockserver.state.api import State
from mockserver.state.records import FileRecord

PNG = "image/png"
JPEG = "image/jpeg"
MP4 = "video/mp4"

Recipe = Mapping[str, Any]
"""``{"render": <name in RENDERS>, ...its arguments}``; ``"source": <file id>`` hands the render that
file's bytes (a thumbnail of an image)."""
Render = Callable[[Recipe, "bytes | None"], bytes]
"""Draws a recipe (with its source file's bytes, when it names one)."""


def files_path(file_id: str, filename: str) -> str:
    """The path a file is served at: ``/_mock/files/<id>/<filename>``."""
    return f"/_mock/files/{file_id}/{quote(filename)}"


class FileStore:
    """Generated files in the state (bounded as resources are); cleared by a state reset."""

    def __init__(self, state: State) -> None:
        self._state = state
        # A counter that keeps running across resets, so an id handed out before a reset never names
        # a different file after it (the instance number keeps instances apart).
        self._counter = itertools.count()
        self._drawing: dict[str, asyncio.Future[bytes]] = {}
        """Draws in progress here, by file id: concurrent downloads share one."""

    def _new_id(self, filename: str) -> str:
        number, instance = next(self._counter), self._state.instance
        # Instance 0 (memory) keeps the ids a seed always gave.
        name = f"{number}:{filename}" if instance == 0 else f"{instance}:{number}:{filename}"
        return hashlib.blake2b(name.encode(), digest_size=12).hexdigest()

    async def put(self, data: bytes, content_type: str, filename: str, *, public: bool = True) -> FileRecord:
        """Store a file's bytes under a fresh unique hex id (``public=False``: never served under
        ``/_mock/files``, a provider serves it itself)."""
        record = FileRecord(self._new_id(filename), filename, content_type, public=public)
        await self._state.put_file(record, data)
        return record

    async def put_recipe(self, recipe: Recipe, content_type: str, filename: str) -> FileRecord:
        """Store a file as the recipe that draws it on its first download."""
        if recipe.get("render") not in RENDERS:
            raise LookupError(f"no render named {recipe.get('render')!r}")
        record = FileRecord(self._new_id(filename), filename, content_type, recipe=dict(recipe))
        await self._state.put_file(record, None)
        return record

    async def get(self, file_id: str) -> FileRecord | None:
        """A stored file's record (its bytes may still be a recipe), or None."""
        stored = await self._state.get_file(file_id)
        return stored[0] if stored is not None else None

    async def open(self, file_id: str) -> tuple[FileRecord, bytes] | None:
        """A file and its bytes, drawn (off the event loop) and kept on first use; None when unknown (or
        drawn from a file that is gone)."""
        stored = await self._state.get_file(file_id)
        if stored is None:
            return None
        record, data = stored
        if data is None:
            drawing = self._drawing.get(file_id)
            if drawing is None:
                drawing = self._drawing[file_id] = asyncio.ensure_future(self._draw(record))
                drawing.add_done_callback(lambda _: self._drawing.pop(file_id, None))
            try:
                # Shielded: a download that is cancelled (a client gone) must not cancel the draw for others.
                data = await asyncio.shield(drawing)
            except LookupError:
                return None  # drawn from a file that is gone meanwhile (its retention): unknown now too
        return record, data

    async def _draw(self, record: FileRecord) -> bytes:
        recipe = record.recipe or {}
        source: bytes | None = None
        if "source" in recipe:
            opened = await self.open(str(recipe["source"]))
            if opened is None:
                raise LookupError(f"file {record.id} is drawn from file {recipe['source']}, which is gone")
            source = opened[1]
        data = await asyncio.to_thread(draw, recipe, source)
        await self._state.put_blob(record.id, data)
        return data

    def url(self, origin: str, record: FileRecord) -> str:
        """Where a client downloads the file: ``<origin>/_mock/files/<id>/<filename>``."""
        return origin + files_path(record.id, record.filename)

    def reset(self) -> None:
        """Forget this instance's draws in progress (the state forgets the files)."""
        self._drawing.clear()


def draw(recipe: Recipe, source: bytes | None = None) -> bytes:
    """A recipe's bytes (slow: call it in a worker thread from the event loop)."""
    return RENDERS[str(recipe["render"])](recipe, source)


def _palette(prompt: str, seed: int) -> bytes:
    """32 stable pseudo-random bytes for (seed, prompt): colours and shape positions come from them."""
    # surrogatepass: a prompt may carry a lone surrogate (a client's "\ud800" escape), and must still render.
    return hashlib.blake2b(f"{seed}\x00{prompt}".encode("utf-8", "surrogatepass"), digest_size=32).digest()


def _colour(digest: bytes, offset: int) -> tuple[int, int, int]:
    return digest[offset], digest[offset + 1], digest[offset + 2]


def _gradient(size: tuple[int, int], start: tuple[int, int, int], end: tuple[int, int, int]) -> Image.Image:
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, end), Image.new("RGB", size, start), mask)


def _canvas(digest: bytes, width: int, height: int, shift: float = 0.0) -> Image.Image:
    """A gradient with a few shapes; ``shift`` (0..1) moves the shapes, for video frames."""
    image = _gradient((width, height), _colour(digest, 0), _colour(digest, 3))
    draw = ImageDraw.Draw(image)
    for index in range(4):
        base = 6 + index * 6
        cx = (digest[base] / 255 + shift * (1 if index % 2 else -1)) % 1.0 * width
        cy = digest[base + 1] / 255 * height
        radius = (0.08 + digest[base + 2] / 255 * 0.18) * min(width, height)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        fill = _colour(digest, base + 3)
        if index % 2:
            draw.rectangle(box, fill=fill)
        else:
            draw.ellipse(box, fill=fill)
    return image


def _caption(image: Image.Image, text: str) -> None:
    width, height = image.size
    size = max(10, width // 28)
    font = ImageFont.load_default(size=size)
    # About 0.6 em per character in the default font; at most four lines.
    lines = textwrap.wrap(text, width=max(8, int(width / (size * 0.6))))[:4]
    draw = ImageDraw.Draw(image)
    line_height = size + 4
    top = height - line_height * len(lines) - 8
    draw.rectangle((0, top - 4, width, height), fill=(0, 0, 0))
    for number, line in enumerate(lines):
        draw.text((8, top + number * line_height), line, fill=(255, 255, 255), font=font)


def render_image(prompt: str, seed: int, width: int = 512, height: int = 512) -> bytes:
    """A PNG that depends on the prompt and seed: a gradient, shapes and the prompt as a caption."""
    image = _canvas(_palette(prompt, seed), width, height)
    _caption(image, prompt)
    out = io.BytesIO()
    # Low compression: the files are small anyway and the render stays fast.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def render_thumbnail(png: bytes, size: int = 128) -> bytes:
    """A JPEG thumbnail (at most ``size`` pixels on its longer side) of an image."""
    with Image.open(io.BytesIO(png)) as image:
        thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=80)
    return out.getvalue()


def video_poster(prompt: str, seed: int, size: int = 128) -> bytes:
    """The first frame of ``render_video``'s video, as a PNG (a video's thumbnail source)."""
    image = _canvas(_palette(prompt, seed), size, size)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def preload() -> None:
    """Import the video encoder ahead of the first video (start-up runs this in a worker thread)."""
    import av  # noqa: F401


def render_video(prompt: str, seed: int, seconds: int = 2, fps: int = 8, size: int = 128) -> bytes:
    """A small H.264 MP4 whose frames move the shapes of the prompt's and seed's picture."""
    # Imported here: PyAV (FFmpeg) costs ~0.1 s to import and only video outputs need it.
    import av

    digest = _palette(prompt, seed)
    frames = max(1, seconds * fps)
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=fps)
        stream.width = size
        stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        # One thread and a fixed preset keep x264's output byte-identical from run to run.
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "threads": "1"}
        for index in range(frames):
            picture = _canvas(digest, size, size, shift=index / frames)
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]  # untyped in av stubs
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def _need(source: bytes | None) -> bytes:
    if source is None:
        raise LookupError("this render needs a source file")
    return source


RENDERS: Mapping[str, Render] = MappingProxyType(
    {
        # Looked up when drawn (not bound now), so a test may count or replace the render functions.
        "image": lambda r, _: render_image(r["prompt"], r["seed"], r.get("width", 512), r.get("height", 512)),
        "thumbnail": lambda r, source: render_thumbnail(_need(source), r.get("size", 128)),
        "video": lambda r, _: render_video(r["prompt"], r["seed"], seconds=r.get("seconds", 2)),
        "video_thumbnail": lambda r, _: render_thumbnail(video_poster(r["prompt"], r["seed"])),
    }
)
"""The recipes a stored file may name, by name: the same on every instance."""
