"""One running app shared by the test modules that need nothing special from it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.app.support import make_app
from tests.conftest import TideflowProcess


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TideflowProcess]:
    """The app with default settings and two replicas (model load is paid once)."""
    app = make_app(tmp_path_factory.mktemp("shared") / "home")
    app.start("--replicas", "2")
    yield app
    app.stop()
    app.close()
