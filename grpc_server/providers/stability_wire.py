"""Stability AI's rules, as pure functions: which endpoint serves a model, the aspect
ratio nearest to a size, outpainting margins, the image sizes Stability takes, its mask
convention, and its error body. The adapter (stability) sends and reads through them.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from grpc_server.providers.media import nearest_aspect_ratio, parse_size

MAX_MARGIN = 2000
MIN_SIDE = 64
MIN_PIXELS = 4_096
MAX_PIXELS = 9_437_184
MAX_SEED = 4_294_967_294

ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
# "field: message": Stability's fields are snake_case, so "Error: ..." names none.
_ERROR_FIELD = re.compile(r"\s*([a-z_][a-z0-9_.\[\]-]*)\s*:")


def generation_endpoint(model: str) -> tuple[str, str | None] | None:
    """(endpoint, `model` field) for a bare model name; None when unknown."""
    name = model.strip().lower()
    if name in ("core", "stable-image-core"):
        return "core", None
    if name in ("ultra", "stable-image-ultra"):
        return "ultra", None
    if name == "sd3":
        return "sd3", None
    if name.startswith("sd3"):
        return "sd3", model.strip()
    return None


def aspect_ratio(size: str | None) -> str | None:
    """The Stability aspect ratio nearest to `WxH` (by log ratio); None for auto or unset."""
    return nearest_aspect_ratio(size, ASPECT_RATIOS)


def outpaint_margins(width: int, height: int, size: str | None) -> dict[str, int]:
    """left/right/up/down that centre the image in `size`; without one, half as large again."""
    wanted = parse_size(size)
    if wanted is None:
        grow_x, grow_y = width // 2, height // 2
    else:
        grow_x, grow_y = max(wanted[0] - width, 0), max(wanted[1] - height, 0)
    left, up = grow_x // 2, grow_y // 2
    sides = {"left": left, "right": grow_x - left, "up": up, "down": grow_y - up}
    return {side: min(pixels, MAX_MARGIN) for side, pixels in sides.items()}


def image_size_problem(width: int, height: int) -> str | None:
    """Why Stability would refuse an image of this size, or None."""
    if min(width, height) < MIN_SIDE:
        return f"Stability needs sides of at least {MIN_SIDE} pixels"
    if not MIN_PIXELS <= width * height <= MAX_PIXELS:
        return f"Stability needs {MIN_PIXELS:,} to {MAX_PIXELS:,} pixels"
    return None


def stability_mask(path: Path) -> bytes:
    """asyncgate's mask (transparent = edit) as Stability's: a grayscale PNG, white = edit."""
    with Image.open(path) as opened:
        alpha = opened.convert("RGBA").getchannel("A")
    # Lookup table: alpha 0 -> 255 (white, edit); any other alpha -> 0 (black, keep).
    mask = alpha.point([255] + [0] * 255)
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


def parse_error_body(body: bytes) -> tuple[str, str, str]:
    """(message, name, param) from `{"id", "name", "errors": [...]}`; empty where absent."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return "", "", ""
    if not isinstance(doc, dict):
        return "", "", ""
    name, raw_errors, message = doc.get("name"), doc.get("errors"), doc.get("message")
    errors = [e for e in raw_errors if isinstance(e, str)] if isinstance(raw_errors, list) else []
    if errors or not isinstance(message, str):
        message = "; ".join(errors)  # else: an answer that carries only a message
    field = _ERROR_FIELD.match(errors[0]) if errors else None
    return message, name if isinstance(name, str) else "", field[1] if field else ""
