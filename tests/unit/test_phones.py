import pytest

from include.core.phones import PhoneNumberError, mask_phone, normalise_phone


@pytest.mark.parametrize("raw,expected", [
    ("+91 98123 45678", "+919812345678"),
    ("098123 45678", "+919812345678"),
    ("9812345678", "+919812345678"),
    ("+91-98123-45678", "+919812345678"),
])
def test_valid_numbers_normalise_to_e164(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw,reason", [
    ("", "empty"),
    (None, "empty"),
    ("98765x4321", "contains letters"),
    ("+91 12345", "wrong length"),
    ("0000000000", "not a valid number"),
    ("+1 555 0100", "not a valid number"),
    ("+91 80 2345 6789", "not a mobile number"),
])
def test_bad_numbers_name_the_reason(raw, reason):
    with pytest.raises(PhoneNumberError) as info:
        normalise_phone(raw)
    assert reason in info.value.reason
    assert repr(raw) in str(info.value)


def test_masking_keeps_only_country_code_and_last_four():
    assert mask_phone("+919812345678") == "+91******5678"
    assert mask_phone(None) == "<none>"
