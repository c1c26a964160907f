"""The user guides (docs/guide-*.md) stay true to the repository: every link and image they name
exists, every screenshot in docs/images/ is used by a guide and taken by a browser test, every
setting config/settings.py reads from the environment is in the administrator's guide, and every
API path they mention is one the server routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GUIDES = sorted(DOCS.glob("guide-*.md"))
ROLES = ("expert", "coordinator", "data-manager", "ml-engineer", "administrator")
LINK = re.compile(r"\]\(([^)\s]+)\)")
ENV_READ = re.compile(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"")
# `/api/...` paths in backticks, and the example host's URLs in the commands, up to a query string.
API_PATH = re.compile(r"(?:`(?:GET |POST |PUT |PATCH |DELETE )?|clear\.example\.org)(/api/[^`?\s'\"]*)")


def test_there_is_one_guide_per_role_and_the_readme_links_each() -> None:
    assert [path.name for path in GUIDES] == sorted(f"guide-{role}.md" for role in ROLES)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for guide in GUIDES:
        assert f"](docs/{guide.name})" in readme, guide.name


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_every_relative_link_and_image_of_a_guide_exists(guide: Path) -> None:
    text = guide.read_text(encoding="utf-8")
    targets = [target for target in LINK.findall(text) if not re.match(r"[a-z]+://", target)]
    for target in targets:
        path, _, anchor = target.partition("#")
        linked = (guide.parent / path) if path else guide
        assert linked.is_file(), f"{guide.name} links {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}
            assert anchor in slugs, f"{guide.name} links {target}: no such heading"


def test_every_screenshot_is_used_by_a_guide_and_taken_by_a_browser_test() -> None:
    images = {path.stem for path in (DOCS / "images").glob("*.png")}
    assert images
    guides = "".join(guide.read_text(encoding="utf-8") for guide in GUIDES)
    used = set(re.findall(r"\(images/([a-z0-9-]+)\.png\)", guides))
    assert used == images
    browser_tests = (REPO / "tests" / "browser").glob("test_*.py")
    tests = "".join(path.read_text(encoding="utf-8") for path in browser_tests)
    taken = set(re.findall(r"docs_screenshot\(\s*page,\s*f?\"([a-z0-9{}.-]+)\"", tests))
    # An f-string name ("reading-{session.arm.name}") stands for the names it makes.
    patterns = [re.compile(re.sub(r"\\\{[^}]*\\\}", "[a-z0-9-]+", re.escape(name))) for name in taken]
    for image in images:
        assert any(pattern.fullmatch(image) for pattern in patterns), f"no browser test takes {image}.png"


def test_the_administrators_guide_lists_every_setting_read_from_the_environment() -> None:
    settings_source = (REPO / "config" / "settings.py").read_text(encoding="utf-8")
    variables = set(ENV_READ.findall(settings_source)) | {"DJANGO_SECRET_KEY", "CLEAR_PSEUDONYM_SECRET"}
    assert {"CLEAR_MODE", "DATABASE_URL", "CLEAR_MEDIA_ROOT"} <= variables
    guide = (DOCS / "guide-administrator.md").read_text(encoding="utf-8")
    missing = sorted(name for name in variables if f"`{name}`" not in guide)
    assert missing == []


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_every_api_path_a_guide_names_is_routed(guide: Path) -> None:
    paths = set(API_PATH.findall(guide.read_text(encoding="utf-8")))
    for path in sorted(paths):
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        try:
            resolve(concrete)
        except Resolver404:
            pytest.fail(f"{guide.name} names {path}, which no URL pattern serves")
