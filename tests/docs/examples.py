"""The shell examples of the README and the documentation pages, as the test runs them.

The rules (also in docs/development.md, "Writing documentation"): a fenced block marked ``sh`` or ``bash`` is an
example and is run; output goes in ``json`` or ``text`` blocks; comments right above a block say more:
``<!-- example: expect TEXT -->`` (its output holds TEXT, and so does a shown output block right after it),
``<!-- example: exit N (why) -->`` (it must exit N) and ``<!-- example: not run (why) -->``.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHELL = ("sh", "bash")
# Every fence says what it holds, so no command hides in a block nobody runs.
OUTPUT = ("json", "text")
KNOWN = (*SHELL, *OUTPUT, "python", "yaml", "ini", "toml")

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!-- example: (expect|exit|not run)\s*(.*?)\s*-->$")


@dataclass
class Block:
    page: str
    line: int
    language: str
    text: str
    expect: list[str] = field(default_factory=list)
    exit_code: int = 0
    not_run: str | None = None
    shown_output: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    """The README, then the documentation's pages in the order of mkdocs.yml's nav."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return ["README.md", *(f"docs/{page}" for page in _nav_files(config["nav"]))]


def _nav_files(nav) -> list[str]:
    files = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files.extend(_nav_files(value) if isinstance(value, list) else [value])
    return files


def blocks(page: str) -> list[Block]:
    """Every fenced block of a page with the directives above it; shell blocks get the output block after them."""
    lines = (ROOT / page).read_text().splitlines()
    found: list[Block] = []
    index, previous_end = 0, -1
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        block = Block(page, index + 1, opening.group(1), "\n".join(lines[index + 1 : end]) + "\n")
        _read_directives(block, lines, index)
        # Output shown right after an example (nothing but blank lines between) is that example's.
        right_after = not any(line.strip() for line in lines[previous_end + 1 : index])
        if found and found[-1].language in SHELL and block.language in OUTPUT and right_after:
            found[-1].shown_output = block.text
        found.append(block)
        previous_end, index = end, end + 1
    return found


def _read_directives(block: Block, lines: list[str], fence: int) -> None:
    above = fence - 1
    while above >= 0 and (match := DIRECTIVE.match(lines[above].strip())):
        kind, argument = match.groups()
        if kind == "expect":
            block.expect.insert(0, argument)
        elif kind == "exit":
            block.exit_code = int(argument.split()[0])
        else:
            block.not_run = argument.strip("() ")
        above -= 1


def squeezed(text: str) -> str:
    """Text without whitespace: JSON shown with spaces and line breaks matches the server's compact JSON."""
    return re.sub(r"\s+", "", text)
