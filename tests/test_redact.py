"""One redaction routine for every URL, header and error text that is printed or stored."""

from __future__ import annotations

from pipeline.common.redact import REDACTED, redact, redact_url


def test_a_key_in_the_userinfo_of_a_url_is_removed_with_or_without_a_password() -> None:
    assert redact_url("http://sk-live-abcdef123456@llm.internal:8080/v1") == (
        f"http://{REDACTED}@llm.internal:8080/v1"
    )
    assert redact_url("postgresql://ana:hunter2-long@db:5432/news") == f"postgresql://{REDACTED}@db:5432/news"


def test_a_query_string_is_replaced_because_providers_take_keys_there() -> None:
    assert redact_url("https://api.example/v1?key=AIzaSyExample123") == f"https://api.example/v1?{REDACTED}"
    assert redact_url("https://api.example/v1") == "https://api.example/v1"


def test_urls_inside_an_error_text_are_redacted_in_place() -> None:
    text = "APIConnectionError: could not reach http://mykey123456@10.0.0.5/v1/chat/completions (refused)"
    cleaned = redact(text)
    assert cleaned is not None
    assert "mykey123456" not in cleaned
    assert "10.0.0.5/v1/chat/completions (refused)" in cleaned


def test_known_secrets_bearer_tokens_and_sk_keys_are_scrubbed() -> None:
    text = "Authorization: Bearer abcdefghijklmnop; key sk-proj-0123456789abcdef; custom s3cr3t-value"
    cleaned = redact(text, ["s3cr3t-value"])
    assert cleaned is not None
    for secret in ("abcdefghijklmnop", "sk-proj-0123456789abcdef", "s3cr3t-value"):
        assert secret not in cleaned
    assert redact(None) is None


def test_short_placeholders_are_not_treated_as_secrets() -> None:
    assert redact("the key is unused here", ["unused"]) == "the key is unused here"


def test_redacting_twice_keeps_both_markers() -> None:
    once = redact("at http://sk-abcdefgh12345678@llm.internal/v1?key=abcdef123456")
    assert once == f"at http://{REDACTED}@llm.internal/v1?{REDACTED}"
    assert redact(once) == once
