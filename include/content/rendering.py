"""Drawing one advisor's personalised pack image with Pillow. Pure: inputs in, JPEG bytes and a
layout manifest out; no database and no storage (include/content/nightly_window.py does those).

The image carries the pack artwork, title and body, the advisor's name, registration number and
contact, and the SEBI disclaimer on a high-contrast panel. The manifest records every text block
that was drawn (its box, font size and whether all of its text fitted) so that render QC can prove
the disclaimer was actually drawn, legibly, instead of trusting the renderer.

Speed: the pack layer (artwork, title, body, disclaimer) is the same for every advisor of a pack, so
it is drawn once per pack and cached; an advisor's render is a copy plus three lines and a JPEG encode.
"""
from __future__ import annotations

import hashlib
import io
import textwrap
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from include.core import config

_FONT_CANDIDATES = {
    "regular": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",),
    "bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",),
}
INK = (20, 24, 33)
PAPER = (250, 250, 247)


@dataclass(frozen=True)
class PackContent:
    pack_id: int
    pack_key: str
    title: str
    body: str
    disclaimer: str
    artwork: str


@dataclass(frozen=True)
class AdvisorCard:
    name: str
    registration_no: str
    phone: str
    email: str | None


@dataclass
class RenderOutput:
    data: bytes
    mime_type: str
    width: int
    height: int
    manifest: dict


@lru_cache(maxsize=64)
def font(style: str, size: int) -> ImageFont.FreeTypeFont:
    for candidate in _FONT_CANDIDATES.get(style, ()):
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)  # Pillow's bundled FreeType font: present on any machine


def renderer_id() -> str:
    """Everything about the renderer that changes its output; part of each render's input hash."""
    family = " ".join(font("regular", 20).getname())
    return (f"{config.RENDERER_VERSION}|{family}|{config.RENDER_WIDTH}x{config.RENDER_HEIGHT}"
            f"|q{config.RENDER_JPEG_QUALITY}")


def _artwork_colours(artwork: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    h = hashlib.sha256(artwork.encode()).digest()
    top = (40 + h[0] % 80, 60 + h[1] % 90, 110 + h[2] % 110)
    bottom = (top[0] // 3, top[1] // 3, top[2] // 3)
    return top, bottom


def _artwork(artwork: str, width: int, height: int, supplied: bytes | None) -> Image.Image:
    """The pack's artwork: the uploaded image when there is one, else a deterministic gradient."""
    if supplied:
        img = Image.open(io.BytesIO(supplied)).convert("RGB")
        scale = max(width / img.width, height / img.height)
        img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))))
        left, top = (img.width - width) // 2, (img.height - height) // 2
        return img.crop((left, top, left + width, top + height))
    top, bottom = _artwork_colours(artwork)
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(1, height - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return column.resize((width, height))


def _wrap(text: str, fnt: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    avg = max(1.0, fnt.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    width_chars = max(8, int(max_width / avg))
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        wrapped = textwrap.wrap(para, width=width_chars) or [""]
        # Tighten if the estimate was optimistic for this text.
        while any(fnt.getlength(line) > max_width for line in wrapped) and width_chars > 8:
            width_chars -= 2
            wrapped = textwrap.wrap(para, width=width_chars) or [""]
        lines.extend(wrapped)
    return lines


def _block(draw: ImageDraw.ImageDraw, name: str, text: str, box: tuple[int, int, int, int], style: str,
           sizes: tuple[int, ...], fill, line_gap: float = 1.25) -> dict:
    """Draw `text` wrapped inside `box` at the largest size that fits; report what was drawn."""
    x0, y0, x1, y1 = box
    for size in sizes:
        fnt = font(style, size)
        lines = _wrap(text, fnt, x1 - x0)
        height = round(len(lines) * size * line_gap)
        if height <= y1 - y0:
            break
    else:  # nothing fits: draw what fits at the smallest size and say it was truncated
        fnt = font(style, sizes[-1])
        lines = _wrap(text, fnt, x1 - x0)
        keep = max(0, int((y1 - y0) / (sizes[-1] * line_gap)))
        lines, size = lines[:keep], sizes[-1]
    y = y0
    for line in lines:
        draw.text((x0, y), line, font=fnt, fill=fill)
        y += round(size * line_gap)
    drawn = " ".join(" ".join(lines).split())
    return {"name": name, "box": [x0, y0, x1, max(y0 + 1, y)], "font_px": size, "lines": len(lines),
            "text": drawn, "complete": drawn == " ".join(text.split())}


class PackRenderer:
    """Renders advisors' images; keeps the per-pack layer of the last few packs in memory."""

    def __init__(self, width: int | None = None, height: int | None = None,
                 quality: int | None = None, cache_packs: int = 16):
        width = config.RENDER_WIDTH if width is None else width
        height = config.RENDER_HEIGHT if height is None else height
        quality = config.RENDER_JPEG_QUALITY if quality is None else quality
        self.width, self.height, self.quality = width, height, quality
        self._packs: OrderedDict[tuple, tuple[Image.Image, list[dict]]] = OrderedDict()
        self._cache_packs = cache_packs
        self.layout = self._layout()

    def _layout(self) -> dict[str, tuple[int, int, int, int]]:
        w, h, m = self.width, self.height, round(self.width * 0.05)
        art_h = round(h * 0.40)
        return {
            "title": (m, round(art_h * 0.55), w - m, art_h - m // 2),
            "body": (m, art_h + m // 2, w - m, round(h * 0.60)),
            "advisor": (m, round(h * 0.61), w - m, round(h * 0.75)),
            "disclaimer_panel": (0, round(h * 0.77), w, h),
            "disclaimer": (m, round(h * 0.77) + m // 2, w - m, h - m // 2),
        }

    def _pack_layer(self, pack: PackContent, artwork_bytes: bytes | None) -> tuple[Image.Image, list[dict]]:
        key = (pack.pack_id, pack.title, pack.body, pack.disclaimer, pack.artwork,
               hashlib.sha256(artwork_bytes).hexdigest() if artwork_bytes else None)
        if key in self._packs:
            self._packs.move_to_end(key)
            return self._packs[key]
        L = self.layout
        art_h = round(self.height * 0.40)
        img = Image.new("RGB", (self.width, self.height), PAPER)
        img.paste(_artwork(pack.artwork, self.width, art_h, artwork_bytes), (0, 0))
        draw = ImageDraw.Draw(img)
        blocks = [_block(draw, "title", pack.title, L["title"], "bold", (64, 56, 48, 40), (255, 255, 255)),
                  _block(draw, "body", pack.body, L["body"], "regular", (40, 36, 32, 28, 24), INK)]
        draw.rectangle(L["disclaimer_panel"], fill=(236, 238, 242))
        draw.line((0, L["disclaimer_panel"][1], self.width, L["disclaimer_panel"][1]), fill=(90, 96, 110), width=3)
        if pack.disclaimer.strip():
            sizes = tuple(s for s in (26, 24, 22, 20, 18, 16, 14) if s)
            blocks.append(_block(draw, "disclaimer", pack.disclaimer, L["disclaimer"], "regular", sizes, INK,
                                 line_gap=1.2))
        self._packs[key] = (img, blocks)
        if len(self._packs) > self._cache_packs:
            self._packs.popitem(last=False)
        return img, blocks

    def render(self, pack: PackContent, advisor: AdvisorCard, artwork_bytes: bytes | None = None) -> RenderOutput:
        base, pack_blocks = self._pack_layer(pack, artwork_bytes)
        img = base.copy()
        draw = ImageDraw.Draw(img)
        x0, y0, x1, _ = self.layout["advisor"]
        contact = advisor.phone + (f"  ·  {advisor.email}" if advisor.email else "")
        blocks = list(pack_blocks)
        blocks.append(_block(draw, "advisor_name", advisor.name, (x0, y0, x1, y0 + 52), "bold", (40, 34, 28), INK))
        reg_text = f"Registration No. {advisor.registration_no}" if advisor.registration_no.strip() else ""
        if reg_text:
            blocks.append(_block(draw, "registration", reg_text, (x0, y0 + 60, x1, y0 + 100), "regular",
                                 (30, 26, 22), INK))
        blocks.append(_block(draw, "contact", contact, (x0, y0 + 106, x1, y0 + 146), "regular", (28, 24, 20), INK))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=self.quality)
        manifest = {"renderer": renderer_id(), "width": self.width, "height": self.height, "blocks": blocks,
                    "registration_no": advisor.registration_no}
        return RenderOutput(out.getvalue(), "image/jpeg", self.width, self.height, manifest)
