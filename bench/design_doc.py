"""Sections of docs/design.md that bench/ writes: the text between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`, replaced whole (the markers stay, so a second run replaces its own text)."""

from __future__ import annotations

from pathlib import Path

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


def replace_section(name: str, text: str, path: Path = DESIGN) -> None:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise ValueError(f"{path} has no {begin} ... {end} section")
    before, rest = doc.split(begin, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{begin}\n{text.strip()}\n{end}{after}")
