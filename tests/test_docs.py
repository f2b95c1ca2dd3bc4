"""The documentation a new user follows: README.md -> docs/*.md without a dead
link, docstrings that point at files which exist, and benchmark runs that
leave the tracked report alone."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gomap

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Pages other branches add (linked from here before they merge). Each may be
# missing; once it exists its links are checked like every other page's.
WRITTEN_ON_OTHER_BRANCHES = {"docs/go-releases.md"}

LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set:
    body = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", body, re.M)}


def links(page: Path):
    body = FENCE.sub("", page.read_text(encoding="utf-8"))  # code is not a link
    for m in LINK.finditer(body):
        yield m.group("target")


def relative_links():
    for page in PAGES:
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            yield page, target


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    for page in ["docs/fidelity.md", "docs/architecture.md", "docs/concurrency.md", "docs/crosscheck.md",
                 "docs/explorer.md"]:
        assert page in names
    readme_targets = set(links(ROOT / "README.md"))
    for page in names - {"README.md"}:
        assert page in readme_targets, f"README.md does not link {page}"


@pytest.mark.parametrize("page,target", list(relative_links()),
                         ids=lambda x: x.relative_to(ROOT).as_posix() if isinstance(x, Path) else x)
def test_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
    assert dest.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
    if not dest.exists() and rel in WRITTEN_ON_OTHER_BRANCHES:
        pytest.skip(f"{rel} is written on another branch")
    assert dest.is_file(), f"{page.name}: {target} -> {rel} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {rel}"


def test_link_checker_can_fail(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](missing.md) [b](https://x.y) `[c](no.md)`\n```\n[d](code.md)\n```\n## A `b()`: c\n")
    assert list(links(page)) == ["missing.md", "https://x.y", "no.md"]
    assert anchors(page) == {"a-b-c"}


def test_docstrings_point_at_files_that_exist():
    texts = [gomap._core.__doc__, gomap.Map.__doc__] + [getattr(gomap.Map, n).__doc__ or "" for n in dir(gomap.Map)]
    mentioned = {m for t in texts if t for m in re.findall(r"docs/[\w\-]+\.md", t)}
    assert "docs/fidelity.md" in mentioned
    for rel in mentioned:
        assert (ROOT / rel).is_file(), rel
    assert not any("../shared" in t for t in texts if t)


def test_quick_benchmark_report_leaves_the_tracked_files_alone():
    tracked = [ROOT / "BENCHMARKS.md", ROOT / "benches" / "get_hit.png"]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in tracked]
    r = subprocess.run([sys.executable, "benches/run_all.py", "--quick", "--report"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote benches/results/quick/BENCHMARKS.md" in r.stdout
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in tracked] == before
    quick = (ROOT / "benches" / "results" / "quick" / "BENCHMARKS.md").read_text()
    assert quick.startswith("# gomap benchmarks") and "Quick run" in quick
    ignored = subprocess.run(["git", "check-ignore", "-q", "benches/results/quick/BENCHMARKS.md"], cwd=ROOT)
    if (ROOT / ".git").exists():
        assert ignored.returncode == 0, "benches/results/ must be ignored by git"
