"""Rendering and the render-QC rules engine, without a database: one test per rule."""
import io

import pytest
from PIL import Image

from include.core import config
from include.content.render_qc import RULE_IDS, QCInput, check
from include.content.rendering import AdvisorCard, PackContent, PackRenderer

PACK = PackContent(1, "2026-11-23-equity-daily", "Market view for 23 Nov",
                   "Markets remain volatile; stay invested as per your plan.", config.SEBI_DISCLAIMER, "equity")
CARD = AdvisorCard("Aarav Sharma", "INA100001", "+919000000001", "advisor1@example.in")


@pytest.fixture(scope="module")
def renderer():
    return PackRenderer()


def qc_of(renderer, pack=PACK, card=CARD, data=None):
    out = renderer.render(pack, card)
    return check(QCInput(data if data is not None else out.data, out.manifest, pack.title, pack.body,
                         pack.disclaimer, card.registration_no)), out


def test_a_good_render_passes_every_rule(renderer):
    result, out = qc_of(renderer)
    assert result.passed, result.failures
    img = Image.open(io.BytesIO(out.data))
    assert img.format == "JPEG" and img.size == (config.RENDER_WIDTH, config.RENDER_HEIGHT)
    names = {b["name"] for b in out.manifest["blocks"]}
    assert {"title", "body", "disclaimer", "advisor_name", "registration", "contact"} <= names
    disclaimer = next(b for b in out.manifest["blocks"] if b["name"] == "disclaimer")
    assert disclaimer["complete"] and disclaimer["font_px"] >= config.DISCLAIMER_MIN_FONT_PX


def test_rendering_is_deterministic_and_personalised(renderer):
    a = renderer.render(PACK, CARD).data
    assert renderer.render(PACK, CARD).data == a
    other = AdvisorCard("Diya Iyer", "ARN-100002", "+919000000002", None)
    assert renderer.render(PACK, other).data != a


def test_img_format_rejects_a_file_that_is_not_an_image(renderer):
    result, _ = qc_of(renderer, data=b"GIF89a not really an image")
    assert "IMG-FORMAT" in result.rule_ids


def test_img_format_rejects_gif(renderer):
    buf = io.BytesIO()
    Image.new("RGB", (1080, 1350), "white").save(buf, "GIF")
    result, _ = qc_of(renderer, data=buf.getvalue())
    assert "IMG-FORMAT" in result.rule_ids


def test_img_size_rejects_an_oversized_image(renderer):
    # Random noise does not compress: a 1,500 x 1,500 PNG of noise is about 6.75 MB (> 5 MB).
    noise = Image.frombytes("RGB", (1500, 1500), bytes(__import__("os").urandom(1500 * 1500 * 3)))
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=0)
    assert len(buf.getvalue()) > 5 * 1024 * 1024
    result, _ = qc_of(renderer, data=buf.getvalue())
    assert "IMG-SIZE" in result.rule_ids and "IMG-FORMAT" not in result.rule_ids


def test_img_dimensions_rejects_a_tiny_image(renderer):
    small = PackRenderer(width=240, height=300)
    out = small.render(PACK, CARD)
    result = check(QCInput(out.data, out.manifest, PACK.title, PACK.body, PACK.disclaimer, CARD.registration_no))
    assert "IMG-DIMENSIONS" in result.rule_ids


def test_disc_missing_rejects_a_pack_without_a_disclaimer(renderer):
    pack = PackContent(2, "no-disclaimer", PACK.title, PACK.body, "", "equity")
    result, out = qc_of(renderer, pack=pack)
    assert "DISC-MISSING" in result.rule_ids
    assert not any(b["name"] == "disclaimer" for b in out.manifest["blocks"])


def test_disc_missing_rejects_a_disclaimer_without_the_mandatory_wording(renderer):
    pack = PackContent(3, "weak-disclaimer", PACK.title, PACK.body, "Please invest wisely.", "equity")
    result, _ = qc_of(renderer, pack=pack)
    assert result.rule_ids == ["DISC-MISSING"]


def test_disc_not_drawn_rejects_a_blank_disclaimer_area(renderer):
    out = renderer.render(PACK, CARD)
    box = next(b for b in out.manifest["blocks"] if b["name"] == "disclaimer")["box"]
    img = Image.open(io.BytesIO(out.data)).convert("RGB")
    img.paste((236, 238, 242), tuple(box))  # paint over the drawn text: the manifest still claims it
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    result = check(QCInput(buf.getvalue(), out.manifest, PACK.title, PACK.body, PACK.disclaimer, "INA100001"))
    assert result.rule_ids == ["DISC-NOT-DRAWN"]


def test_disc_not_drawn_rejects_a_truncated_disclaimer(renderer):
    long = config.SEBI_DISCLAIMER + " " + " ".join([config.SEBI_DISCLAIMER] * 12)
    pack = PackContent(4, "long-disclaimer", PACK.title, PACK.body, long, "equity")
    result, out = qc_of(renderer, pack=pack)
    assert "DISC-NOT-DRAWN" in result.rule_ids
    assert "truncated" in next(f.detail for f in result.failures if f.rule_id == "DISC-NOT-DRAWN")


def test_disc_illegible_rejects_a_tiny_font(renderer):
    # Four disclaimers' worth of text only fits below the legibility floor.
    pack = PackContent(5, "dense", PACK.title, PACK.body, " ".join([config.SEBI_DISCLAIMER] * 4), "equity")
    result, out = qc_of(renderer, pack=pack)
    block = next(b for b in out.manifest["blocks"] if b["name"] == "disclaimer")
    assert block["font_px"] < config.DISCLAIMER_MIN_FONT_PX and block["complete"]
    assert result.rule_ids == ["DISC-ILLEGIBLE"]


@pytest.mark.parametrize("claim", ["Guaranteed returns of 12%", "A RISK-FREE way to grow", "double your money"])
def test_cmp_banned_claim_rejects_banned_phrases(renderer, claim):
    pack = PackContent(6, "banned", "Invest now", f"{claim} with our new fund.", config.SEBI_DISCLAIMER, "equity")
    result, _ = qc_of(renderer, pack=pack)
    assert result.rule_ids == ["CMP-BANNED-CLAIM"]


def test_cmp_banned_claim_ignores_the_disclaimers_own_wording(renderer):
    # The SEBI disclaimer says registration is no "assurance of returns": that is not a claim.
    result, _ = qc_of(renderer)
    assert "CMP-BANNED-CLAIM" not in result.rule_ids


def test_cmp_reg_missing_rejects_an_advisor_without_a_registration_number(renderer):
    card = AdvisorCard("Aarav Sharma", " ", "+919000000001", None)
    result, _ = qc_of(renderer, card=card)
    assert "CMP-REG-MISSING" in result.rule_ids


def test_cmp_reg_format_rejects_an_invalid_registration_number(renderer):
    card = AdvisorCard("Aarav Sharma", "REG-42", "+919000000001", None)
    result, _ = qc_of(renderer, card=card)
    assert result.rule_ids == ["CMP-REG-FORMAT"]


def test_every_rule_has_an_id_a_message_and_a_test():
    assert len(set(RULE_IDS)) == len(RULE_IDS) == 9
    tested = {rid for rid in RULE_IDS
              if any(f"test_{rid.lower().replace('-', '_')}" in name for name in globals())}
    assert tested == set(RULE_IDS)
