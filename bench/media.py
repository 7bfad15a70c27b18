"""How long generated outputs take to render, against a plain Pillow PNG encode measured in the same run.

    python bench/media.py [--runs 7]

Renders run when a job finishes (on the mock's clock), so their cost is what a clock advance over many
jobs pays. Each figure is the best of ``--runs`` after a warm-up, printed in milliseconds and as a ratio to
the baseline (a 128x128 RGB image encoded as PNG by Pillow alone): machines here vary by 2x between runs,
the ratio much less.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

from PIL import Image

from mockserver.core.media import render_image, render_thumbnail, render_video

PROMPT = "A futuristic city at sunset, cyberpunk style, neon lights"


def best_ms(render: Callable[[], object], runs: int) -> float:
    """The fastest of ``runs`` timed calls after one warm-up, in milliseconds."""
    render()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        render()
        timings.append((time.perf_counter() - started) * 1000)
    return min(timings)


def baseline() -> bytes:
    """A 128x128 RGB image encoded as PNG by Pillow: the floor any image output pays."""
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (40, 80, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    """Print each render's best time and its ratio to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    base = best_ms(baseline, runs)
    print(f"{'baseline (Pillow PNG 128x128)':<32} {base:8.2f} ms   1.0x")
    cases: dict[str, Callable[[], object]] = {
        "image": lambda: render_image(PROMPT, 7),
        "image + thumbnail": lambda: render_thumbnail(render_image(PROMPT, 7)),
        "video (16 frames)": lambda: render_video(PROMPT, 7),
    }
    for name, render in cases.items():
        ms = best_ms(render, runs)
        print(f"{name:<32} {ms:8.2f} ms {ms / base:6.1f}x")


if __name__ == "__main__":
    main()
