"""The walls between the apps that import-linter cannot see: references by string."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# An app label, a dotted path or an admin URL name of another app, as code would write them.
OTHER_APP = re.compile(
    r"""["'](training|inference)["'.:_]|admin:(training|inference)_|\b(training|inference)\.[a-z_]+\("""
)


def test_the_registry_mirror_names_no_other_app():
    # given
    files = [path for path in (ROOT / "registry_mirror").rglob("*") if path.suffix in (".py", ".html")]

    # when
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if OTHER_APP.search(line)
    ]

    # then
    assert len(files) > 10
    assert found == []


def test_the_probe_finds_a_reference_by_string():
    assert OTHER_APP.search('apps.get_model("training", "TrainingJob")')
    assert OTHER_APP.search('reverse("admin:training_trainingjob_change")')
    assert not OTHER_APP.search('"""Id of the experiment that holds every training run."""')
