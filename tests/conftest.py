"""Fixtures for toolkit tests: a real engine and tracked cleanup; the markers of every test.

Markers (``pytest -m unit`` runs on any laptop, with no Docker at all):

* ``unit``   needs no engine; marked in the test module.
* ``engine`` needs a Docker engine: every test that is not ``unit`` gets it (the root conftest.py).
* ``vm``     boots qemu (the VM engine's tests): set by module in the root conftest.py.
* ``slow``   takes minutes (VM boots, a cold rebuild of the image kit); marked in the module.
"""

from __future__ import annotations

import uuid

import pytest

from dockercourse.core import buildcache
from dockercourse.core.cleanup import Sweep, clean
from dockercourse.core.engine import connect
from dockercourse.core.images import BUSYBOX
from dockercourse.core.namespace import Namespace
from dockercourse.errors import NoEngineError


@pytest.fixture(scope="session")
def engine():
    try:
        return connect()
    except NoEngineError as e:
        pytest.fail(f"the toolkit tests need a real engine (run scripts/engine-up): {e}")


@pytest.fixture(scope="session")
def busybox(engine):
    engine.images.get(BUSYBOX)  # the image kit makes it; fail loudly if missing
    return BUSYBOX


@pytest.fixture
def ns(engine):
    """A namespace of a test-only chapter (97) with its own tag; cleaned after the test."""
    space = Namespace(chapter="97", tag="t" + uuid.uuid4().hex[:6])
    yield space
    clean(engine, namespace=space)
    if buildcache.noted(space.prefix):  # the build cache records its builds made
        Sweep(engine).build_records(space.prefix)
    assert not engine.containers.list(all=True, filters=space.filters())
