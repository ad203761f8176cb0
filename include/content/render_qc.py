"""Render QC: a rules engine over a rendered pack (the image bytes, the renderer's manifest and the
pack's text). Each rule has a stable id and a message; a render passes only if no rule fails, and
a failed render is never delivered (content assignment only takes QC-passed renders).

Rules look at the real file: the image is decoded, its size and dimensions measured, and the region
where the disclaimer was drawn is checked for ink, so a blank or truncated disclaimer fails even if
the manifest claims otherwise.
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from include.core import config


@dataclass
class QCInput:
    data: bytes
    manifest: dict
    title: str
    body: str
    disclaimer: str
    registration_no: str
    image: Image.Image | None = None   # decoded once by the format rule, used by the others
    format: str | None = None


@dataclass(frozen=True)
class Failure:
    rule_id: str
    message: str
    detail: str

    def as_dict(self) -> dict:
        return {"rule": self.rule_id, "message": self.message, "detail": self.detail}


@dataclass(frozen=True)
class Rule:
    rule_id: str
    message: str
    check: Callable[[QCInput], str | None]  # returns a detail when the rule fails, else None


@dataclass
class QCResult:
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def rule_ids(self) -> list[str]:
        return [f.rule_id for f in self.failures]


def _block(inp: QCInput, name: str) -> dict | None:
    return next((b for b in inp.manifest.get("blocks", []) if b.get("name") == name), None)


def _ink_ratio(img: Image.Image, box: list[int]) -> tuple[float, float]:
    """Share of dark pixels and the contrast (max - min luminance) inside a box of the decoded image."""
    x0, y0, x1, y1 = (max(0, v) for v in box)
    region = img.crop((x0, y0, min(img.width, x1), min(img.height, y1))).convert("L")
    if region.width == 0 or region.height == 0:
        return 0.0, 0.0
    lo, hi = region.getextrema()
    hist = region.histogram()
    dark = sum(hist[:110]) / max(1, region.width * region.height)
    return dark, float(hi - lo)


# -- rules ---------------------------------------------------------------------------------------
def _format(inp: QCInput) -> str | None:
    try:
        with Image.open(io.BytesIO(inp.data)) as probe:
            probe.verify()
        img = Image.open(io.BytesIO(inp.data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder error means the file is not a usable image
        return f"cannot decode image: {type(exc).__name__}: {exc}"
    inp.format = img.format
    if img.format not in ("JPEG", "PNG"):
        return f"format is {img.format}, WhatsApp accepts JPEG or PNG"
    inp.image = img
    return None


def _size(inp: QCInput) -> str | None:
    if len(inp.data) > config.IMAGE_MAX_BYTES:
        return f"{len(inp.data):,} bytes > {config.IMAGE_MAX_BYTES:,} (5 MB)"
    return None


def _dimensions(inp: QCInput) -> str | None:
    if inp.image is None:
        return None  # reported by IMG-FORMAT
    w, h = inp.image.size
    lo, hi = config.IMAGE_MIN_SIDE_PX, config.IMAGE_MAX_SIDE_PX
    if not (lo <= w <= hi and lo <= h <= hi):
        return f"{w}x{h} px outside {lo}..{hi} px per side"
    return None


def _disclaimer_present(inp: QCInput) -> str | None:
    text = " ".join(inp.disclaimer.split()).casefold()
    if not text:
        return "the pack has no disclaimer"
    missing = [p for p in config.DISCLAIMER_REQUIRED_PHRASES if p.casefold() not in text]
    if missing:
        return f"disclaimer lacks the mandatory wording: {', '.join(repr(m) for m in missing)}"
    return None


def _disclaimer_drawn(inp: QCInput) -> str | None:
    if not inp.disclaimer.strip():
        return None  # reported by DISC-MISSING
    block = _block(inp, "disclaimer")
    if block is None:
        return "the renderer did not draw a disclaimer block"
    if not block.get("complete"):
        return f"disclaimer truncated: {block.get('lines')} line(s) drawn, text does not fit"
    if " ".join(block.get("text", "").split()) != " ".join(inp.disclaimer.split()):
        return "drawn disclaimer text differs from the pack's disclaimer"
    if inp.image is not None:
        dark, contrast = _ink_ratio(inp.image, block["box"])
        if dark < 0.005 or contrast < 120:
            return f"no legible ink in the disclaimer area (dark pixels {dark:.2%}, contrast {contrast:.0f})"
    return None


def _disclaimer_legible(inp: QCInput) -> str | None:
    block = _block(inp, "disclaimer")
    if block is None:
        return None
    if block.get("font_px", 0) < config.DISCLAIMER_MIN_FONT_PX:
        return f"disclaimer drawn at {block.get('font_px')} px < {config.DISCLAIMER_MIN_FONT_PX} px minimum"
    return None


_BANNED = [(phrase, re.compile(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", re.IGNORECASE))
           for phrase in config.BANNED_CLAIMS]


def _banned_claims(inp: QCInput) -> str | None:
    # The disclaimer itself says registration is no "assurance of returns"; only the claims are checked.
    text = f"{inp.title}\n{inp.body}"
    hits = sorted({phrase for phrase, rx in _BANNED if rx.search(text)})
    return f"banned claim(s): {', '.join(repr(h) for h in hits)}" if hits else None


def _registration(inp: QCInput) -> str | None:
    reg = (inp.registration_no or "").strip()
    if not reg:
        return "the advisor has no registration number"
    block = _block(inp, "registration")
    if block is None or reg not in block.get("text", ""):
        return "the registration number was not drawn on the image"
    return None


def _registration_format(inp: QCInput) -> str | None:
    reg = (inp.registration_no or "").strip()
    if reg and not re.match(config.REGISTRATION_PATTERN, reg):
        return f"{reg!r} is not an ARN or SEBI registration number"
    return None


RULES: tuple[Rule, ...] = (
    Rule("IMG-FORMAT", "Image must open as JPEG or PNG", _format),
    Rule("IMG-SIZE", "Image must be at most 5 MB", _size),
    Rule("IMG-DIMENSIONS", "Image dimensions must be within WhatsApp's limits", _dimensions),
    Rule("DISC-MISSING", "The pack must carry the mandatory SEBI disclaimer", _disclaimer_present),
    Rule("DISC-NOT-DRAWN", "The disclaimer must be drawn on the image, complete", _disclaimer_drawn),
    Rule("DISC-ILLEGIBLE", "The disclaimer must be drawn at a legible size", _disclaimer_legible),
    Rule("CMP-BANNED-CLAIM", "No banned claims (guaranteed or risk-free returns and the like)", _banned_claims),
    Rule("CMP-REG-MISSING", "The advisor's registration number must be shown", _registration),
    Rule("CMP-REG-FORMAT", "The registration number must be a valid ARN or SEBI number", _registration_format),
)
RULE_IDS = tuple(r.rule_id for r in RULES)


def check(inp: QCInput, rules: tuple[Rule, ...] = RULES) -> QCResult:
    result = QCResult()
    for rule in rules:
        detail = rule.check(inp)
        if detail:
            result.failures.append(Failure(rule.rule_id, rule.message, detail))
    return result
