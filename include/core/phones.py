"""Phone-number normalisation to E.164 (libphonenumber) and masking for logs."""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_REGION = "IN"
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class PhoneNumberError(ValueError):
    """A phone number that cannot be used for WhatsApp; `reason` says why."""

    def __init__(self, raw: object, reason: str):
        self.raw = raw
        self.reason = reason
        super().__init__(f"invalid phone number {raw!r}: {reason}")


def normalise_phone(raw: object, region: str = DEFAULT_REGION, require_mobile: bool = True) -> str:
    """Return the E.164 form of `raw` or raise PhoneNumberError naming the reason."""
    if raw is None or not str(raw).strip():
        raise PhoneNumberError(raw, "empty")
    text = str(raw).strip()
    if any(ch.isalpha() for ch in text):
        raise PhoneNumberError(raw, "contains letters")
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneNumberError(raw, _PARSE_REASONS.get(exc.error_type, str(exc))) from None
    if not phonenumbers.is_possible_number(parsed):
        raise PhoneNumberError(raw, "wrong length for its country")
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneNumberError(raw, "not a valid number for its country")
    if require_mobile and phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
        raise PhoneNumberError(raw, "not a mobile number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str:
    """+919812345678 -> +91******5678: enough to correlate in logs, not enough to contact."""
    if not phone:
        return "<none>"
    p = str(phone)
    if len(p) <= 6:
        return "*" * len(p)
    return p[:3] + "*" * (len(p) - 7) + p[-4:]
