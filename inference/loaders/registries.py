"""Where the cache's MLflow reads run: in this process (REST, or the MLflow client) or in the child process."""

from typing import Any

from registry_mirror import gateway


class InProcessRegistry:
    """The gateway's serving calls, made in this process (imports MLflow here)."""

    def version_number(self, *, name: str, version: str) -> int:
        return gateway.model_version_number(name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        return gateway.model_version_fetch(name=name, version=version, files=files, dst=dst)


class ServingRegistry(InProcessRegistry):
    """The gateway's serving calls made where they are cheapest: with an MLflow server, over its REST API in this
    process; with any other store (embedded SQLite), in the MLflow child process unless that is turned off."""

    def __init__(self, child):
        self.child = child

    def version_number(self, *, name: str, version: str) -> int:
        if self.child is None or gateway.serves_over_rest():
            return super().version_number(name=name, version=version)
        return self.child.version_number(name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        if self.child is None or gateway.serves_over_rest():
            return super().fetch(name=name, version=version, files=files, dst=dst)
        return self.child.fetch(name=name, version=version, files=files, dst=dst)


class ChildProcessRegistry:
    """The gateway's serving calls, made by ``gateway.RegistryProcess`` in a child process."""

    def __init__(self, process: gateway.RegistryProcess):
        self.process = process

    def version_number(self, *, name: str, version: str) -> int:
        return self.process.call("model_version_number", name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        return self.process.call("model_version_fetch", name=name, version=version, files=files, dst=dst)
