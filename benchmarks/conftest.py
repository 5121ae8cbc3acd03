import pytest


@pytest.fixture(scope="session")
def bundled():
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("bundled", size="small")}
