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


LOCKED_TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def locked_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TideflowProcess]:
    """The HTTP service alone with API_TOKEN set (uploads are journaled, not classified)."""
    app = make_app(tmp_path_factory.mktemp("locked") / "home", API_TOKEN=LOCKED_TOKEN)
    app.start("--only", "service", wait_consumers=False)
    yield app
    app.stop()
    app.close()
