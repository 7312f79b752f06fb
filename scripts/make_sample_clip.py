"""Render the bundled sample clip (assets/) from recapture_core.synthetic: video and exact depth.

    .venv/bin/python scripts/make_sample_clip.py

Writes assets/recapture_sample.mp4 (the video, H.264) and assets/recapture_sample_depth.png (an
animated PNG, one grey depth map per frame, lossless: 0 = 1.5 scene units, 255 = 6.0, bright = far).
Deterministic: running it again gives the same pixels.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recapture_core.synthetic import sample_clip  # noqa: E402

NEAR, FAR, FPS = 1.5, 6.0, 7


def main() -> int:
    frames, depths = sample_clip()
    assets = REPO / "assets"
    assets.mkdir(exist_ok=True)
    pixels = (frames.numpy() * 255).round().astype(np.uint8)
    with av.open(str(assets / "recapture_sample.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        stream.options = {"crf": "16"}
        for frame in pixels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    grey = ((depths.numpy() - NEAR) / (FAR - NEAR) * 255).round().clip(0, 255).astype(np.uint8)
    images = [Image.fromarray(g).convert("RGB") for g in grey]
    images[0].save(assets / "recapture_sample_depth.png", save_all=True, append_images=images[1:], duration=1000 // FPS,
                   loop=0, optimize=True)
    for path in sorted(assets.iterdir()):
        print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
