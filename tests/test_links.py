"""Links to published pages: the laptop form and the hub's proxy form, as the browser needs them."""

from __future__ import annotations

import pytest

from dockercourse.notebook.links import link, proxy_prefix, url

pytestmark = pytest.mark.unit


def test_on_a_laptop_the_published_address():
    assert url(8080, env={}) == "http://127.0.0.1:8080/"
    assert url(5000, "v2/_catalog", env={}) == "http://127.0.0.1:5000/v2/_catalog"
    assert repr(link(8080, env={})) == "http://127.0.0.1:8080/"


def test_behind_a_hub_the_proxy_path():
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
    assert proxy_prefix(env) == "/user/alice/"
    assert url(8080, "/index.html", env=env) == "/user/alice/proxy/8080/index.html"
    assert url(8080, env={"JUPYTERHUB_SERVICE_PREFIX": "user/bob"}) == "/user/bob/proxy/8080/"


def test_html_is_a_safe_clickable_link():
    h = link(8080, "/a?b=<c>", text="the <site>", env={})._repr_html_()
    assert h == (
        '<a href="http://127.0.0.1:8080/a?b=&lt;c&gt;" target="_blank" rel="noopener">the &lt;site&gt;</a>'
    )
    for bad in (0, 70000, -1):
        with pytest.raises(ValueError, match="not a port"):
            url(bad, env={})
