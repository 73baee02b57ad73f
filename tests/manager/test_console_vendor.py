"""The console's vendored front-end files (manager/console/vendor.json, scripts/vendor_frontend.py): on disk as the
manifest names them, with their licence, served by the console itself; its stylesheet names nothing elsewhere."""

from __future__ import annotations

import hashlib
import json
import re

import httpx

from manager.console.app import STATIC
from tests.manager.conftest import Running

CONSOLE = STATIC.parent
MANIFEST = json.loads((CONSOLE / "vendor.json").read_text())


def test_every_vendored_file_is_the_one_the_manifest_pins_with_its_licence() -> None:
    assert MANIFEST["packages"], "nothing vendored"
    for package in MANIFEST["packages"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"]), package  # pinned, not a range
        assert package["integrity"].startswith("sha512-")
        into = CONSOLE / package["into"]
        assert (into / "LICENSE").stat().st_size > 0
        on_disk = {path.name for path in into.iterdir()}
        assert on_disk == set(package["files"].values()) == set(package["sha256"])
        for name, digest in package["sha256"].items():
            assert hashlib.sha256((into / name).read_bytes()).hexdigest() == digest, name


def test_the_stylesheet_takes_its_fonts_from_the_console_and_nothing_from_elsewhere() -> None:
    css = (STATIC / "console.css").read_text()
    urls = re.findall(r"url\(([^)]*)\)", css)
    assert urls, "no font in the stylesheet"
    for url in urls:
        assert not re.match(r"[a-z]+:|//", url.strip("'\"")), url
        assert (STATIC / url.strip("'\"")).is_file(), url


async def test_the_console_serves_its_vendored_font(sqlite_platform: Running) -> None:
    answer: httpx.Response = await sqlite_platform.http.get("/console/static/vendor/inter/inter-latin-400-normal.woff2")
    assert answer.status_code == 200 and answer.content[:4] == b"wOF2"
    licence = await sqlite_platform.http.get("/console/static/vendor/inter/LICENSE")
    assert licence.status_code == 200 and "SIL Open Font License" in licence.text

