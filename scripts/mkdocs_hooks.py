"""MkDocs hook (mkdocs.yml ``hooks``): links from docs/ to the repository's own files.

A link such as ``[deploy/ecs/](../deploy/ecs/)`` works on GitHub and in a checkout, but the
built site holds docs/ only, so there it would lead nowhere: in the site it becomes the
path, as text. tests/docs/test_links.py checks that every such path exists.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from mkdocs.structure.pages import Page

# An inline Markdown link or image: [text](url) / ![text](url).
_LINK = re.compile(r"(?P<image>!?)\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)")


def on_page_markdown(markdown: str, *, page: Page, **_: Any) -> str:
    here = posixpath.dirname(page.file.src_uri)

    def outside_docs(link: re.Match[str]) -> str:
        url = link["url"]
        if link["image"] or "://" in url or url.startswith(("#", "/", "mailto:")):
            return link[0]
        target = posixpath.normpath(posixpath.join(here, url.split("#", 1)[0]))
        if not target.startswith("../"):
            return link[0]
        path = target.removeprefix("../")
        text = link["text"]
        return text if path in text else f"{text} (`{path}` in the repository)"

    return _LINK.sub(outside_docs, markdown)
