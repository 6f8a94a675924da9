"""The password gate's comparison (constant-time, any UTF-8)."""

from __future__ import annotations

from ui.auth import password_matches


def test_exact_match_only() -> None:
    assert password_matches("s3cret", "s3cret")
    assert not password_matches("s3cret", "s3cre")
    assert not password_matches("s3cret", "s3cret ")
    assert not password_matches("s3cret", "")


def test_non_ascii_passwords_compare_without_raising() -> None:
    # hmac.compare_digest refuses non-ASCII str; the gate compares UTF-8 bytes instead.
    assert password_matches("pässwörd", "pässwörd")
    assert not password_matches("pässwörd", "passwort")
