import pytest

from inference import compiled_forest


@pytest.fixture
def no_compiled_walk(monkeypatch):
    """A machine where the compiled forest walk was not built (no C compiler): scikit-learn's walk serves."""
    monkeypatch.setattr(compiled_forest, "_library", None)
    monkeypatch.setattr(compiled_forest, "_library_checked", True)
