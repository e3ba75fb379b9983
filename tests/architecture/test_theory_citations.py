"""Every docstring that cites the theory cites ``docs/theory.md`` and a section that exists there.

A citation is ``docs/theory.md section N`` or ``docs/theory.md sections N, M and K`` (line breaks
allowed); a section ``N`` (or ``N.k``) exists when the document has a heading ``## N. Title`` (or
``### N.k Title``).
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
THEORY = ROOT / "docs" / "theory.md"
CITATION = re.compile(r"docs/theory\.md\s+sections?\s+((?:\d+(?:\.\d+)?(?:\s*(?:,|and|-|to)\s*)?)+)")


def _sections():
    text = THEORY.read_text(encoding="utf-8")
    found = set(re.findall(r"^## (\d+)\. ", text, flags=re.M))
    found |= set(re.findall(r"^### (\d+\.\d+)\.? ", text, flags=re.M))
    return found


def _cited():
    for path in sorted((ROOT / "bnsym").rglob("*.py")) + [ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            line = text[: match.start()].count("\n") + 1
            for number in re.findall(r"\d+(?:\.\d+)?", match.group(1)):
                yield number, f"{path.relative_to(ROOT)}:{line}"


def test_theory_document_is_in_the_repository():
    assert THEORY.is_file()
    assert {str(n) for n in range(1, 10)} <= _sections()


def test_every_cited_section_exists():
    sections = _sections()
    cited = list(_cited())
    assert len(cited) > 30
    missing = [f"{where}: section {n}" for n, where in cited if n not in sections]
    assert not missing, "\n".join(missing)


def test_no_citation_of_a_file_outside_the_repository():
    stale = []
    for path in sorted((ROOT / "bnsym").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"(?<!docs/)THEORY\.md", line):
                stale.append(f"{path.relative_to(ROOT)}:{i}")
    assert not stale, "cite docs/theory.md instead:\n" + "\n".join(stale)
