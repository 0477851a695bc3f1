"""MDS as an installable package: the wheel a fresh install gets, and the compiled walk on machines that build it.

Both checks need an environment set up by ``.ci/run``: ``MDS_WHEEL`` names a wheel built from this checkout
(``pip wheel --no-deps .``) and ``MDS_REQUIRE_COMPILED_WALK=1`` says a C compiler is there, so a walk that did not
build is a failure rather than scikit-learn's walk quietly serving instead (its tests skip where it is not built).
"""

import os
import re
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from inference.compiled_forest import walk_library

COMPILED_WALK = "inference/_forest_walk" + sysconfig.get_config_var("EXT_SUFFIX")


@pytest.mark.skipif(not os.environ.get("MDS_REQUIRE_COMPILED_WALK"), reason="MDS_REQUIRE_COMPILED_WALK is not set")
def test_the_compiled_walk_is_built_where_required():
    assert walk_library() is not None, "the compiled forest walk did not build (make install)"


@pytest.mark.skipif(not os.environ.get("MDS_WHEEL"), reason="MDS_WHEEL names no wheel to check")
def test_the_wheel_holds_every_app_with_its_migrations_templates_and_commands():
    # given
    with zipfile.ZipFile(os.environ["MDS_WHEEL"]) as wheel:
        names = set(wheel.namelist())
        commands = next(wheel.read(name).decode() for name in names if name.endswith(".dist-info/entry_points.txt"))

    # when
    migrations = {name.split("/")[0] for name in names if "/migrations/0001_" in name}
    templates = {name.split("/")[0] for name in names if "/templates/" in name and name.endswith(".html")}
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}

    # then
    assert migrations == {"core", "training", "inference", "registry_mirror"}
    assert templates == {"core", "training", "inference", "registry_mirror"}
    assert "mds_project/settings/production.py" in names
    assert "mds/cli.py" in names
    assert "training/static/training/job_progress.js" in names
    assert "mds = mds.cli:main" in commands
    assert "mds-inference = mds_project.inference_server:main" in commands
    assert tops == {"core", "training", "inference", "registry_mirror", "mds_project", "mds"}
    if os.environ.get("MDS_REQUIRE_COMPILED_WALK"):
        assert COMPILED_WALK in names


def requirement_names(lines) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", line.strip())[0].lower().replace("_", "-") for line in lines}


def test_the_package_depends_on_every_pinned_runtime_requirement():
    # given
    root = Path(__file__).resolve().parent.parent
    pinned = [line for line in (root / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]

    # then: a pip install of the package gets what the pinned, verified set has, and nothing else
    assert requirement_names(declared) == requirement_names(pinned)
