"""The harness's command line parsed in-process (devharness/cli.py): each command's options, their
defaults and types, the names `--help` shows, and the refusals, as the module's usage lines and the
README promise them."""

from __future__ import annotations

import argparse

import pytest

from devharness import cli, commands
from shared.config import ConfigError

from .support.scripts import load_script

reference = load_script("ci/cli_reference.py")


def _parsed(*argv: str) -> dict[str, object]:
    found = vars(cli.parser().parse_args(list(argv)))
    return {key: value for key, value in found.items() if key != "run"}


def test_serve_s_defaults_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    assert _parsed("serve") == {
        "command": "serve", "host": "127.0.0.1", "port": 8080, "reload": False, "workers": None,
        "like": "one-process", "idle_stop": 120, "servers": "auto",
    }  # fmt: skip
    given = _parsed("serve", "--host", "127.0.0.2", "--port", "9000", "--reload", "--workers", "3", "--like",
                    "cloud-run", "--idle-stop", "5", "--servers", "embedded")  # fmt: skip
    assert given == {
        "command": "serve", "host": "127.0.0.2", "port": 9000, "reload": True, "workers": 3,
        "like": "cloud-run", "idle_stop": 5, "servers": "embedded",
    }  # fmt: skip
    assert cli.parser().parse_args(["serve"]).run is commands.serve


def test_serve_takes_host_and_port_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "::1")
    monkeypatch.setenv("PORT", "8123")
    assert (_parsed("serve")["host"], _parsed("serve")["port"]) == ("::1", 8123)


def test_invoke_collects_repeated_queries_and_headers() -> None:
    assert _parsed("invoke", "today") == {
        "command": "invoke", "function": "today", "query": [], "method": "GET", "header": [], "data": None,
        "servers": "auto",
    }  # fmt: skip
    given = _parsed("invoke", "random", "--query", "language=de", "--query", "x=1", "--method", "POST",
                    "--header", "A:1", "--header", "B:2", "--data", "{}", "--servers", "external")  # fmt: skip
    assert given == {
        "command": "invoke", "function": "random", "query": ["language=de", "x=1"], "method": "POST",
        "header": ["A:1", "B:2"], "data": "{}", "servers": "external",
    }  # fmt: skip
    assert cli.parser().parse_args(["invoke", "random"]).run is commands.invoke


def test_import_and_migrate_options() -> None:
    assert _parsed("import", "facts.csv") == {
        "command": "import", "file": "facts.csv", "language": "en", "source": None, "servers": "auto", "timeout": 300.0,
    }  # fmt: skip
    given = _parsed("import", "f.jsonl", "--language", "de", "--source", "wiki", "--timeout", "2.5")
    assert given == {
        "command": "import", "file": "f.jsonl", "language": "de", "source": "wiki", "servers": "auto", "timeout": 2.5,
    }  # fmt: skip
    assert _parsed("migrate") == {"command": "migrate", "timeout": 300.0, "servers": "auto"}
    assert _parsed("migrate", "--timeout", "2.5") == {"command": "migrate", "timeout": 2.5, "servers": "auto"}
    assert cli.parser().parse_args(["import", "x"]).run is commands.import_file
    assert cli.parser().parse_args(["migrate"]).run is commands.migrate


def test_the_old_services_option_still_works_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parsed("migrate", "--services", "external")["servers"] == "external"
    assert "--servers" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],  # a command is required
        ["serve", "--workers", "0"],
        ["serve", "--workers", "two"],
        ["serve", "--idle-stop", "-1"],
        ["serve", "--like", "kubernetes"],
        ["serve", "--servers", "cloud"],
        ["invoke"],
        ["import", "f.csv", "--timeout", "0"],
        ["migrate", "--timeout", "-5"],
        ["migrate", "--timeout", "nan"],
        ["migrate", "--timeout", "soon"],
    ],
)
def test_bad_arguments_are_refused_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("usage: python -m devharness")


def test_a_positive_number_is_a_whole_number_of_at_least_one() -> None:
    assert cli._positive("1") == 1 and cli._positive("12") == 12
    for raw in ("0", "-3", "1.5", "", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be a whole number of at least 1, got {raw!r}"):
            cli._positive(raw)


def test_help_names_each_option_as_the_usage_lines_do() -> None:
    helps = {name: sub.format_help() for name, sub in _subparsers().items()}
    assert "--idle-stop SECONDS" in helps["serve"]
    assert "--servers {auto,embedded,containers,external}" in helps["serve"]
    assert "--query KEY=VALUE" in helps["invoke"] and "--header NAME:VALUE" in helps["invoke"]
    assert "--services" not in helps["serve"]  # the old name is taken, not advertised
    top = cli.parser().format_help()
    assert top.startswith("usage: python -m devharness") and "Run the facts functions locally." in top
    for command in ("serve", "invoke", "import", "migrate"):
        assert command in top


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_every_command_and_option_says_what_it_is_for() -> None:
    """`--help` is the harness's reference: no command or option goes without its line there."""
    top = cli.parser()
    commands_listed = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))._choices_actions
    assert {action.dest: bool(action.help) for action in commands_listed} == dict.fromkeys(
        ("serve", "invoke", "import", "migrate"), True
    )
    undocumented = {
        f"{name} {action.dest}"
        for name, sub in _subparsers().items()
        for action in sub._actions
        if not action.help and action.dest not in ("help", "servers")  # --services: SUPPRESSed, renamed
    }
    assert not undocumented
    assert top.description == "Run the facts functions locally."


def test_the_reference_page_says_what_help_says() -> None:
    """docs/harness-cli.md is made from the parser: a changed help line, option or command without
    `python ci/cli_reference.py --write` fails here."""
    page = reference.PAGE.read_text(encoding="utf-8")
    assert reference.page_with(reference.render(cli.parser()), page) == page
    assert "| `--idle-stop` SECONDS | --like cloud-run: an instance idle this long is stopped" in page
    assert "| `--servers` auto\\|embedded\\|containers\\|external | where Postgres and Redis come from" in page


def test_the_one_process_mode_is_a_choice_as_well_as_the_default() -> None:
    assert _parsed("serve", "--like", "one-process")["like"] == "one-process"


def test_the_old_services_option_takes_only_the_server_kinds() -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["migrate", "--services", "cloud"])
    servers = next(a for a in _subparsers()["serve"]._actions if "--servers" in a.option_strings)
    assert servers.help and servers.help.startswith("where Postgres and Redis come from")


def test_main_answers_a_user_error_with_its_message_and_2_and_an_interrupt_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise ConfigError("DATABASE_URL is not a postgresql:// URL")

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "migrate", refuse)  # what `migrate` would raise on a bad setting
    assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err == "error: DATABASE_URL is not a postgresql:// URL\n"
    monkeypatch.setattr(commands, "migrate", interrupted)
    assert cli.main(["migrate"]) == 130
