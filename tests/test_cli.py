"""The ``triangulate`` command line: what every command documents, how flags and environment
variables become a run's options, and the one shape every error takes.

Commands that would start a batch are pointed at a stand-in for the runner, so these tests see
exactly the :class:`RunOptions` the command line built and never touch a model.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pipeline import __version__
from pipeline.batch import runner
from pipeline.cli.main import cli, main
from pipeline.extract.providers import OPENAI_COMPATIBLE, choose_provider
from schemas.options import RunOptions

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "run",
    "retry-failed",
    "reconcile",
    "eval",
    "export",
    "report",
    "show",
    "schema",
    "decide",
    "decisions",
    "serve",
]
MODEL_FLAGS = [
    "--model",
    "--gguf",
    "--embedded",
    "--max-reasks",
    "--max-transport-retries",
    "--timeout",
    "--stop-after-connection-failures",
    "--temperature",
    "--max-tokens",
    "--plan",
]
ENV_VARS = ["TRIANGULATE_MODEL", "TRIANGULATE_EMBEDDED", "TRIANGULATE_CONCURRENCY", "TRIANGULATE_DB"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own shell settings must not leak into what these tests parse."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RunOptions]]:
    """The options of every batch the command line starts (run and retry-failed), in order."""
    started: list[RunOptions] = []

    def start(options: RunOptions) -> int:
        started.append(options)
        return 0

    monkeypatch.setattr(runner, "run", start)
    monkeypatch.setattr(runner, "retry_failed", start)
    yield started


def _everything() -> list[tuple[str, click.Command]]:
    """The group itself and each of its commands, by the name a user types."""
    return [("triangulate", cli), *((f"triangulate {name}", cli.commands[name]) for name in COMMANDS)]


def _paragraphs(help_text: str) -> list[str]:
    return [block.strip() for block in help_text.strip().split("\n\n")]


# --------------------------------------------------------------------------- documentation


def test_the_group_has_exactly_the_documented_commands() -> None:
    assert sorted(cli.commands) == sorted(COMMANDS)


@pytest.mark.parametrize(("typed", "command"), _everything(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_describes_itself_and_shows_a_runnable_example(
    typed: str, command: click.Command
) -> None:
    paragraphs = _paragraphs(command.help or "")
    assert paragraphs[0] and not paragraphs[0].startswith("Example"), f"{typed}: no description"
    heading = next((i for i, block in enumerate(paragraphs) if block in ("Example:", "Examples:")), None)
    assert heading is not None, f"{typed}: no Example/Examples heading"
    # `\b` keeps click from rewrapping the example lines into one paragraph.
    example_block = paragraphs[heading + 1]
    assert example_block.startswith("\b"), f"{typed}: examples are not a \\b block"
    examples = [line.strip() for line in example_block.lstrip("\b").strip().splitlines()]
    assert examples and all(line.startswith(typed) for line in examples), examples
    assert command.short_help or command is cli, f"{typed}: no one-line summary for the command list"


@pytest.mark.parametrize(("typed", "command"), _everything(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_and_argument_has_help(typed: str, command: click.Command) -> None:
    undocumented = [param.name for param in command.params if not (param.help or "").strip()]
    assert undocumented == [], f"{typed}: parameters without help"


def test_run_and_retry_failed_share_the_model_flags_declared_once() -> None:
    def flags(name: str) -> dict[str, click.Parameter]:
        return {opt: p for p in cli.commands[name].params for opt in p.opts if opt.startswith("--")}

    run, retry = flags("run"), flags("retry-failed")
    for flag in MODEL_FLAGS:
        assert flag in run and flag in retry, flag
        # One declaration: the same help and type on both commands.
        assert (run[flag].help, repr(run[flag].type)) == (retry[flag].help, repr(retry[flag].type))


@pytest.mark.parametrize("name", [None, *COMMANDS])
def test_help_exits_0_and_prints_the_usage(name: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if name is None else [name, "--help"]
    assert main(argv) == 0
    usage = "Usage: triangulate" + ("" if name is None else f" {name}")
    assert capsys.readouterr().out.startswith(usage)


@pytest.mark.parametrize("variable", ENV_VARS)
def test_the_help_names_each_environment_variable(variable: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert f"env var: {variable}" in " ".join(capsys.readouterr().out.split())


def test_version_prints_the_program_and_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"triangulate {__version__}\n"


def test_python_dash_m_pipeline_is_the_same_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"triangulate {__version__}\n"), done.stderr


def test_help_loads_none_of_the_modules_that_do_the_work() -> None:
    # `triangulate --help` should answer at once: the runner and the commands import the model
    # client, the store and pydantic models that only a real command needs.
    script = (
        "import sys\n"
        "from pipeline.cli.main import main\n"
        "assert main(['--help']) == 0 and main(['run', '--help']) == 0\n"
        "heavy = ('pipeline.batch.runner', 'pipeline.cli.commands', 'openai')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- flags -> RunOptions


def test_the_command_line_defaults_are_the_run_options_defaults(batches: list[RunOptions]) -> None:
    assert main(["run", "a.txt", "folder", "--out", "o"]) == 0
    assert main(["retry-failed", "o"]) == 0
    assert batches == [
        RunOptions(out=Path("o"), paths=(Path("a.txt"), Path("folder"))),
        RunOptions(out=Path("o"), command="retry-failed"),
    ]


def test_each_run_flag_reaches_its_option(batches: list[RunOptions]) -> None:
    argv = [
        "run", "a.txt", "--out", "o", "--model", "m", "--gguf", "f.gguf", "--plan", "flat-no-example",
        "--max-reasks", "1", "--max-tokens", "512", "--temperature", "0.5", "--max-transport-retries", "2",
        "--timeout", "30", "--concurrency", "3", "--rpm", "60", "--tpm", "1000",
        "--stop-after-connection-failures", "0", "--refresh", "--no-reconcile", "--db", "sqlite:///x",
        "-q", "--max-article-bytes", "100",
    ]  # fmt: skip
    assert main(argv) == 0
    assert batches == [
        RunOptions(
            out=Path("o"), paths=(Path("a.txt"),), model="m", gguf=Path("f.gguf"), plan="flat-no-example",
            max_reasks=1, max_tokens=512, temperature=0.5, max_transport_retries=2, timeout=30.0,
            concurrency=3, rpm=60.0, tpm=1000.0, stop_after_connection_failures=0, refresh=True,
            reconcile=False, db="sqlite:///x", quiet=True, max_article_bytes=100,
        )
    ]  # fmt: skip


def test_environment_variables_stand_in_for_their_flags_and_the_flag_wins(
    monkeypatch: pytest.MonkeyPatch, batches: list[RunOptions]
) -> None:
    monkeypatch.setenv("TRIANGULATE_CONCURRENCY", "3")
    monkeypatch.setenv("TRIANGULATE_MODEL", "from-env")
    monkeypatch.setenv("TRIANGULATE_DB", "postgresql://env/db")
    assert main(["run", "a.txt", "--out", "o"]) == 0
    assert main(["run", "a.txt", "--out", "o", "--concurrency", "7", "--model", "from-flag"]) == 0
    assert main(["retry-failed", "o"]) == 0
    got = [(b.concurrency, b.model, b.db) for b in batches]
    assert got == [
        (3, "from-env", "postgresql://env/db"),
        (7, "from-flag", "postgresql://env/db"),
        (3, "from-env", None),
    ]


def test_an_invalid_environment_value_is_a_usage_error_naming_the_flag_and_the_variable(
    monkeypatch: pytest.MonkeyPatch, batches: list[RunOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIANGULATE_CONCURRENCY", "0")
    assert main(["run", "a.txt", "--out", "o"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "--concurrency" in line and "TRIANGULATE_CONCURRENCY" in line
    assert batches == []


def test_triangulate_embedded_is_left_to_the_provider_which_reads_it_itself(
    monkeypatch: pytest.MonkeyPatch, batches: list[RunOptions]
) -> None:
    # The variable only picks which embedded model runs when the embedded engine is chosen; as
    # --embedded it would also choose that engine over --model.
    monkeypatch.setenv("TRIANGULATE_EMBEDDED", "qwen2.5-coder-0.5b")
    assert main(["run", "a.txt", "--out", "o", "--model", "gpt-4.1-mini"]) == 0
    assert main(["run", "a.txt", "--out", "o", "--embedded", "gemma3-270m"]) == 0
    assert [b.embedded for b in batches] == [None, "gemma3-270m"]
    env = {"TRIANGULATE_EMBEDDED": "qwen2.5-coder-0.5b"}
    first = batches[0]
    assert (
        choose_provider(model=first.model, gguf=None, env=env, embedded=first.embedded) == OPENAI_COMPATIBLE
    )


def test_a_misspelt_triangulate_embedded_fails_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, batches: list[RunOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIANGULATE_EMBEDDED", "qwen-typo")
    assert main(["run", "a.txt", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "TRIANGULATE_EMBEDDED" in err and "qwen2.5-coder-1.5b" in err
    assert batches == []


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        ("run", "--concurrency", "0"),
        ("retry-failed", "--concurrency", "0"),
        ("run", "--rpm", "0"),
        ("run", "--tpm", "-5"),
        ("run", "--stop-after-connection-failures", "-1"),
        ("run", "--max-article-bytes", "0"),
        ("run", "--max-article-bytes", "2MiB"),
        ("run", "--timeout", "soon"),
    ],
)
def test_a_bad_number_is_refused_naming_the_flag_and_nothing_runs(
    command: str, flag: str, value: str, batches: list[RunOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["a.txt", "--out", "o"] if command == "run" else ["o"]
    assert main([command, *args, flag, value]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and f"'{flag}'" in line
    assert batches == []


def test_max_article_bytes_keeps_its_own_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "a.txt", "--out", "o", "--max-article-bytes", "0"]) == 2
    assert "must be a whole number of bytes, at least 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- errors and exit codes


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "a.txt", "--out", "o", "--no-such-flag"], "triangulate run --help"),
        (["export", "dir", "--format", "xls"], "triangulate export --help"),
        (["show", "dir"], "triangulate show --help"),
        (["run", "a.txt"], "triangulate run --help"),
        (["frobnicate"], "triangulate --help"),
    ],
    ids=["unknown flag", "bad value", "missing argument", "missing option", "unknown command"],
)
def test_a_usage_error_is_one_error_line_with_a_hint_and_exit_2(
    argv: list[str], hint: str, batches: list[RunOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("error: ") and line.endswith(f"try '{hint}'"), line
    assert batches == []


def test_no_command_shows_the_overview_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: triangulate") and all(name in err for name in COMMANDS)


def test_ctrl_c_exits_130_saying_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(options: RunOptions) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    assert main(["run", "a.txt", "--out", "o"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["eval", "missing.jsonl", "missing.json"], 2),
        (["report", "."], 1),
        (["reconcile", "missing.jsonl", "--out", "out"], 2),
        (["show", ".", "anything"], 2),
    ],
    ids=["eval", "report", "reconcile", "show"],
)
def test_errors_from_the_commands_take_the_same_prefix(
    argv: list[str],
    code: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    err_lines = capsys.readouterr().err.splitlines()
    assert err_lines and all(line.startswith(("error: ", "warning: ")) for line in err_lines), err_lines
