"""The examples of README.md and docs/*.md: every bash block that calls the API (curl)
and every Python block, in the order a reader meets them.

A block is skipped only when the line before its fence says so, with a reason:
`<!-- docs-runner: skip (why) -->`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>[a-z]*)\n(?P<code>.*?)```", re.S)
SKIP = re.compile(r"<!-- docs-runner: skip \(.+\) -->")

# What the docs write, and what a run against a test server uses instead.
KEY_PLACEHOLDER = "bk_live_…"
ORIGINS = ("http://127.0.0.1:8000", "https://bunch.example")
RECEIVER_PLACEHOLDER = "https://example.com/hooks/bunch"


@dataclass(frozen=True)
class Example:
    file: str
    line: int
    lang: str  # "bash" or "python"
    code: str

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}"

    def for_server(self, *, origin: str, key: str, receiver: str) -> str:
        code = self.code.replace(KEY_PLACEHOLDER, key).replace(RECEIVER_PLACEHOLDER, receiver)
        for documented in ORIGINS:
            code = code.replace(documented, origin)
        return code


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(path: Path) -> list[Example]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        lang, code = match.group("lang"), match.group("code")
        runnable = lang == "python" or (lang in ("bash", "sh") and "curl " in code)
        if not runnable or SKIP.search(match.group("before")):
            continue
        line = text.count("\n", 0, match.start("lang")) + 1
        found.append(
            Example(
                str(path.relative_to(ROOT)), line, "python" if lang == "python" else "bash", code
            )
        )
    return found
