"""Start-up: `eventlake` imports only what the command being run needs (cli/main.py builds
each subcommand's parser when it is parsed; `eventlake` exports its names lazily)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eventlake.cli.main import main

HEAVY = ("duckdb", "pyarrow", "boto3", "botocore", "prefect", "eventlake.api",
         "eventlake.cli.demo", "eventlake.cli.replay", "eventlake.cli.sql")


def modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return set(done.stdout.split())


def test_importing_eventlake_or_building_the_parser_imports_nothing_heavy() -> None:
    loaded = modules_after("import eventlake\nfrom eventlake.cli.main import _parser\n_parser()")

    assert not {m for m in loaded if m.startswith(HEAVY)}


def test_the_public_names_still_import_from_the_package() -> None:
    import eventlake

    for name in eventlake.__all__:
        assert getattr(eventlake, name).__name__ == name
    assert eventlake.__version__
    with pytest.raises(AttributeError, match="no_such_name"):
        eventlake.no_such_name  # noqa: B018


@pytest.mark.parametrize(("command", "option"), [
    ("sql", "--cold-only"), ("put", "--max-problems"), ("compact", "--min-files"),
    ("replay", "--checkpoint"), ("catalog", "SUBCOMMAND"), ("demo", "--events"),
])
def test_each_subcommand_gets_its_arguments_when_it_is_parsed(
        command: str, option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])

    assert exit_.value.code == 0
    assert option in capsys.readouterr().out


def test_an_option_of_another_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--min-files", "3"])

    assert exit_.value.code == 2
    assert "unrecognized arguments: --min-files" in capsys.readouterr().err
