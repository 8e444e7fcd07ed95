"""Every `invoke` command loads the tasks and the pipeline; the Sigstore and PEP 740 libraries (two thirds of that
load, 0.7 s of 1.3 s per command) are imported only by the code that signs or verifies. The test suite runs some
hundreds of commands, and a release engineer's refusals come back at once."""

from __future__ import annotations

import subprocess
import sys

from pypi_attestations import AttestationType

from ac_release.supply_chain import wheel_attestations
from tests.helpers import REPO


def test_loading_the_tasks_and_the_pipeline_imports_no_signing_library():
    code = "import sys, tasks; "
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'sigstore', 'pypi_attestations'}))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_publish_predicate_type_is_pypi_attestations_own():
    assert wheel_attestations.PREDICATE_TYPES["publish"] == AttestationType.PYPI_PUBLISH_V1.value
