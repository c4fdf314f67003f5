"""MkDocs hooks: the home page is the README, and links to files outside the site read as paths.

The guides link to example and source files beside them (``../examples/plugins/all_pay.py``), which
GitHub shows but a built site does not hold; the site prints those paths as code instead of a
dangling link, so ``mkdocs build --strict`` holds every remaining link to a page that exists.
"""

import re
from pathlib import Path

OUTSIDE = re.compile(r"\[([^\]]+)\]\((?:\.\./)+((?:examples|src|tests)/[^)\s]+)\)")
README_DOCS = re.compile(r"\(docs/([a-z_]+\.md)\)")


def _as_path(match: re.Match) -> str:
    text, path = match.group(1), match.group(2)
    return text if text.strip("`") == path else f"{text} (`{path}`)"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "index.md":
        readme = (Path(config["config_file_path"]).parent / "README.md").read_text()
        markdown = README_DOCS.sub(r"(\1)", readme)
    return OUTSIDE.sub(_as_path, markdown)
