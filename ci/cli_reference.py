"""docs/harness-cli.md's reference: every harness command and option with its `--help` line, made
from the parser itself (devharness/cli.py), so the page and `--help` never say different things.

    python ci/cli_reference.py           # exit 1 and a diff when the page is stale
    python ci/cli_reference.py --write   # rewrite the page's generated part
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "harness-cli.md"
BEGIN, END = "<!-- cli:reference -->", "<!-- /cli:reference -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.choices is not None:
        return names + " " + "\\|".join(str(choice) for choice in action.choices)
    if action.nargs != 0 and action.option_strings:
        return f"{names} {action.metavar or action.dest.upper()}"
    return names


def _commands(top: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    # argparse keeps its subcommands on the subparsers action; their help lines on its choice actions.
    (subparsers,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help or "" for choice in subparsers._choices_actions}
    return [(name, helps[name], parser) for name, parser in subparsers.choices.items()]


def render(top: argparse.ArgumentParser) -> str:
    lines = [f"`{top.prog}`: {top.description}", ""]
    for name, summary, parser in _commands(top):
        lines += [f"### `{name}`", "", _cell(summary), "", "| argument | what it does |", "|---|---|"]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            lines.append(f"| {_option(action)} | {_cell(action.help or '')} |")
        lines.append("")
    return "\n".join(lines)


def page_with(reference: str, page: str) -> str:
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{reference}{END}{tail}"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from devharness.cli import parser

    page = PAGE.read_text(encoding="utf-8")
    wanted = page_with(render(parser()), page)
    if "--write" in argv:
        PAGE.write_text(wanted, encoding="utf-8")
        return 0
    if wanted == page:
        return 0
    sys.stdout.writelines(difflib.unified_diff(page.splitlines(True), wanted.splitlines(True), str(PAGE), "--help"))
    print(f"{PAGE.relative_to(ROOT)} is stale: python ci/cli_reference.py --write", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
