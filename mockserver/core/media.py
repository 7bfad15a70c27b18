"""Generated outputs as real files: a store served under ``/_mock/files`` and deterministic renderers.

Renders depend only on (seed, prompt), so the same request under the same seed gives the same bytes,
and a different prompt or seed gives visibly different ones. Each render takes a few milliseconds, which
thousands of jobs finishing at one clock advance would add up to seconds of a blocked event loop: a file
can therefore be stored as its render (``FileStore.put(render, ...)``) and drawn on its first download.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import textwrap
from collections.abc import Callable
from fractions import Fraction
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from mockserver.core.retention import ResourceTable, Retention

PNG = "image/png"
JPEG = "image/jpeg"
MP4 = "video/mp4"


Render = Callable[[], bytes]


class StoredFile:
    """One file the mock serves: its bytes, or the render that makes them when first read."""

    __slots__ = ("_data", "_render", "content_type", "filename", "id")

    def __init__(self, file_id: str, filename: str, content_type: str, data: bytes | Render) -> None:
        self.id = file_id
        self.filename = filename
        self.content_type = content_type
        self._data = data if isinstance(data, bytes) else None
        self._render = None if isinstance(data, bytes) else data

    @property
    def data(self) -> bytes:
        """The file's bytes (rendered on first use, then kept)."""
        if self._data is None:
            assert self._render is not None
            self._data, self._render = self._render(), None
        return self._data


class FileStore:
    """Generated files by id, in memory, kept as ``retention`` says; cleared by a state reset."""

    def __init__(self, retention: Retention) -> None:
        self._files: ResourceTable[str, StoredFile] = ResourceTable(retention)
        # A counter that keeps running across resets, so an id handed out before a reset never names
        # a different file after it.
        self._counter = itertools.count()

    def put(self, data: bytes | Render, content_type: str, filename: str) -> StoredFile:
        """Store a file under a fresh unique hex id: its bytes, or the render that makes them on its first
        download."""
        number = next(self._counter)
        file_id = hashlib.blake2b(f"{number}:{filename}".encode(), digest_size=12).hexdigest()
        stored = StoredFile(file_id, filename, content_type, data)
        self._files[file_id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """A stored file, or None."""
        return self._files.get(file_id)

    def url(self, origin: str, stored: StoredFile) -> str:
        """Where a client downloads the file: ``<origin>/_mock/files/<id>/<filename>``."""
        return f"{origin}/_mock/files/{stored.id}/{quote(stored.filename)}"

    def reset(self) -> None:
        """Forget every file."""
        self._files.clear()


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
