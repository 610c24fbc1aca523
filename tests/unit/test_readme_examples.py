"""The README's examples are true: the simulator's webhook URL example is a route the app answers,
and the simulator is not said to sign what it sends (it posts unsigned, like EasyParcel)."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from starlette.routing import Match

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_simulator_webhook_url_in_the_readme_is_a_webhook_route_of_the_app():
    from web.webhooks import routes

    urls = [url.strip("\"'") for url in re.findall(r"--webhook-url\s+(\S+)", README)]
    assert urls, "the README shows how to point the simulator's webhooks at the app"
    for url in urls:
        path = re.sub(r"\$\{?\w+\}?|<[^>]+>", "secret-placeholder", urlsplit(url).path)
        scope = {"type": "http", "method": "POST", "path": path}
        assert any(route.matches(scope)[0] is Match.FULL for route in routes), url
        # the simulator signs nothing, so it must use EasyParcel's secret-URL route
        assert path.startswith("/api/webhooks/easyparcel/"), url


def test_the_readme_does_not_say_the_simulator_uses_the_signed_form():
    for sentence in re.split(r"(?<=[.;])\s", README.replace("\n", " ")):
        if "signed form" in sentence:
            assert "simulator" not in sentence, sentence
