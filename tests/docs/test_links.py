"""Every relative link in README.md, docs/ and the deploy recipes' READMEs points at a file
or folder that exists, and at a heading there when it names one.

``mkdocs build --strict`` (``make docs``) checks the links between docs pages as the site
sees them; it never reads README.md, and links from docs/ into the repository (``../deploy/``)
leave the site. This test reads every file the way a reader on GitHub or in a checkout
follows its links: a heading's anchor must work both on GitHub and in the MkDocs site,
whose slugs differ for some punctuation.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markdown
import pytest

from tests.conftest import REPO

MARKDOWN_FILES = sorted(
    [
        REPO / "README.md",
        *(REPO / "docs").rglob("*.md"),
        *(REPO / "deploy").rglob("README.md"),
    ]
)
README_MOST_LINES = 250


class _Targets(HTMLParser):
    """The ``href`` of every link and the ``src`` of every image in rendered Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value is not None:
                self.urls.append(value)


def _render(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The link targets of a Markdown file and its headings, as MkDocs renders it."""
    md = markdown.Markdown(extensions=["toc", "tables", "fenced_code"])
    targets = _Targets()
    targets.feed(md.convert(path.read_text()))
    return targets.urls, md.toc_tokens


def _github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors that work for ``path`` both on GitHub and in the MkDocs site."""
    site: set[str] = set()
    github: set[str] = set()
    pending = list(_render(path)[1])
    while pending:
        token = pending.pop()
        site.add(token["id"])
        github.add(_github_slug(html.unescape(token["name"])))
        pending.extend(token["children"])
    return site & github


def relative_links(path: Path) -> list[str]:
    return [
        url
        for url in _render(path)[0]
        if not urllib.parse.urlsplit(url).scheme and not url.startswith("mailto:")
    ]


def broken_links(path: Path, *, root: Path = REPO) -> list[str]:
    """Each relative link of ``path`` that leads nowhere (or out of ``root``), with why."""
    broken = []
    for url in relative_links(path):
        target, _, anchor = url.partition("#")
        if target.startswith("/"):
            broken.append(f"{url}: an absolute path (GitHub and the site read it differently)")
            continue
        found = (path.parent / urllib.parse.unquote(target)).resolve() if target else path
        if not found.exists():
            broken.append(f"{url}: no such file or folder")
        elif not found.is_relative_to(root):
            broken.append(f"{url}: outside the repository")
        elif anchor and (found.suffix != ".md" or anchor not in anchors(found)):
            broken.append(f"{url}: no heading #{anchor} in {found.relative_to(root)}")
    return broken


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_points_into_docs_and_stays_short() -> None:
    readme = REPO / "README.md"
    pages = {
        (readme.parent / url.partition("#")[0]).resolve()
        for url in relative_links(readme)
        if url.startswith("docs/")
    }
    docs_pages = {page.resolve() for page in (REPO / "docs").rglob("*.md")}
    assert docs_pages - pages == set(), "pages the README's table does not list"
    assert len(readme.read_text().splitlines()) <= README_MOST_LINES


def test_the_check_finds_what_is_broken(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside.md").write_text("# Outside\n")
    page = root / "page.md"
    page.write_text(
        "# A page\n\n## Two words\n\n## Is `this` A/B?\n\n## Settings / env\n\n"
        "[ok](#two-words) [ok](#is-this-ab) [gone](missing.md) [no heading](#three-words)\n"
        "[root](/abs.md) [up](../outside.md) ![picture](missing.png) [site only](#settings-env)\n"
        "`[in code](nowhere.md)`\n\n```text\n[in a block](nowhere.md)\n```\n"
    )
    assert broken_links(page, root=root) == [
        "missing.md: no such file or folder",
        "#three-words: no heading #three-words in page.md",
        "/abs.md: an absolute path (GitHub and the site read it differently)",
        "../outside.md: outside the repository",
        "missing.png: no such file or folder",
        # GitHub says #settings--env, MkDocs #settings-env: a heading to reword.
        "#settings-env: no heading #settings-env in page.md",
    ]
