import atexit
import os
import shutil
import tempfile

import pytest

# cold figures must not come from the user's disk cache (~/.cache/kernel-env): a private one per run
os.environ["KERNEL_ENV_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernel-env-bench-cache-")
atexit.register(shutil.rmtree, os.environ["KERNEL_ENV_CACHE_DIR"], True)


@pytest.fixture(scope="session")
def bundled():
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("bundled", size="small")}
