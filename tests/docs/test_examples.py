"""Every shell example of the README and the documentation site runs against a live server, so none can rot.

One embedded server for the session, started as `make run` starts it (scripts/run.sh: gunicorn and its own MLflow
server) on free ports with a fresh data directory; its admin's token is exported as ``TOKEN``. Each page's
examples run in order in one bash (variables carry over, as in a reader's terminal), the README first, then the
pages in mkdocs.yml's nav order, whatever order the tests themselves run in. The rules for writing examples are
in tests/docs/examples.py and docs/development.md.
"""

import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .examples import KNOWN, ROOT, SHELL, Block, blocks, pages, squeezed

# The addresses the examples use (make run's, and an inference server's beside it), rewritten to the live ones,
# in URLs and in options such as --bind alike.
DOCS_URL, DOCS_MLFLOW_URL, DOCS_INFERENCE_URL = (
    "http://127.0.0.1:8000",
    "http://127.0.0.1:5001",
    "http://127.0.0.1:8002",
)
# What the examples may leave out of the suite, each with its reason: Docker, the real stack, root, a second
# long-running server, answers that depend on timing. More than this means examples that no longer teach.
MAX_NOT_RUN = 12
SERVER_START_SECONDS = 240
PAGE_SECONDS = 300
# The server and the examples see none of the caller's configuration (CI exports the real stack's coordinates and
# a PostgreSQL DATABASE_URL): embedded mode, as on a fresh clone.
PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME", "SHELL")

MARK = "@@mds-example"


@dataclass
class Server:
    url: str
    mlflow_url: str
    inference_url: str
    token: str
    env: dict
    log: Path


@dataclass
class Outcome:
    block: Block
    exit_code: int | None
    stdout: str
    stderr: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(data_dir: Path, tmp: Path) -> dict:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    return {
        **env,
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "MDS_DATA_DIR": str(data_dir),
        "TMPDIR": str(tmp),
        "GUNICORN_ACCESSLOG": "",
    }


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="mds-docs-") as scratch:
        scratch_dir = Path(scratch)
        (scratch_dir / "tmp").mkdir()
        port, mlflow_port = free_port(), free_port()
        env = base_env(scratch_dir / "data", scratch_dir / "tmp")
        log = scratch_dir / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=ROOT,
                env={**env, "PORT": str(port), "MLFLOW_UI_PORT": str(mlflow_port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(process, f"{url}/health", log)
            token = (scratch_dir / "data" / "api-token.txt").read_text().strip()
            mlflow_url, inference_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{free_port()}"
            yield Server(url, mlflow_url, inference_url, token, {**env, "TOKEN": token}, log)
        finally:
            _stop(process)


def _wait_until_up(process: subprocess.Popen, health_url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"scripts/run.sh exited {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if requests.get(health_url, timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            pass
        time.sleep(0.5)
    pytest.fail(f"the embedded server did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """The whole process group run.sh leads (gunicorn and the MLflow server), and only it."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def page_script(page_blocks: list[Block], server: Server) -> str:
    """One bash script for a page: each block between markers (on stdout and stderr), its exit status after it."""
    lines = [
        "set -e -o pipefail",
        # A server an example started in the background stops with its page, whatever happened.
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
        f"cd {shlex.quote(str(ROOT))}",
        'curl() { command curl --silent --show-error --fail-with-body "$@"; }',
    ]
    for number, block in enumerate(page_blocks):
        text = block.text
        for documented, live in (
            (DOCS_URL, server.url),
            (DOCS_MLFLOW_URL, server.mlflow_url),
            (DOCS_INFERENCE_URL, server.inference_url),
        ):
            text = text.replace(documented.removeprefix("http://"), live.removeprefix("http://"))
        lines.append(f"printf '\\n{MARK} {number}@@\\n' | tee /dev/stderr")
        if block.exit_code:
            # A block that must fail runs in a subshell, so its failure is recorded rather than ending the page.
            lines += ["set +e", "(", "set -e", text, ")", "__mds_exit=$?", "set -e"]
        else:
            lines += [text, "__mds_exit=0"]
        lines.append(f"printf '\\n{MARK} exit %d@@\\n' \"$__mds_exit\"")
    return "\n".join(lines) + "\n"


def split(output: str) -> dict[int, tuple[str, int | None]]:
    """Each block's output, by number, and its exit status if the script got past it."""
    parts: dict[int, tuple[str, int | None]] = {}
    for chunk in output.split(f"\n{MARK} ")[1:]:
        head, _, rest = chunk.partition("@@\n")
        if head.isdigit():
            number = int(head)
            parts[number] = (rest, None)
        elif head.startswith("exit "):
            parts[number] = (parts[number][0], int(head.removeprefix("exit ")))
    return parts


class PageRunner:
    """Runs pages in the site's order, each once, however the tests asking for them are ordered."""

    def __init__(self, server: Server):
        self.server = server
        self.order = pages()
        self.done: dict[str, list[Outcome]] = {}

    def outcomes(self, page: str) -> list[Outcome]:
        for earlier in self.order[: self.order.index(page) + 1]:
            if earlier not in self.done:
                self.done[earlier] = run_page(earlier, self.server)
        return self.done[page]


def run_page(page: str, server: Server) -> list[Outcome]:
    """A page's examples in one bash; a block that failed (or never ran) says so in its outcome."""
    runnable = [block for block in blocks(page) if block.language in SHELL and block.not_run is None]
    if not runnable:
        return []
    result = subprocess.run(
        ["bash", "-c", page_script(runnable, server)],
        env=server.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PAGE_SECONDS,
    )
    stdout, stderr = split(result.stdout), split(result.stderr)
    outcomes = []
    for number, block in enumerate(runnable):
        out, code = stdout.get(number, ("", None))
        if number in stdout and code is None:
            code = result.returncode  # the block that ended the script
        outcomes.append(Outcome(block, code, out, stderr.get(number, ("", None))[0]))
    return outcomes


@pytest.fixture(scope="session")
def runner(server) -> PageRunner:
    return PageRunner(server)


@pytest.mark.parametrize("page", pages())
def test_page_examples_run_against_a_live_server(runner, page):
    # given: the page's shell examples, on the server the earlier pages used
    # when
    outcomes = runner.outcomes(page)

    # then: each ran, exited as it says, and printed what it promises
    for outcome in outcomes:
        block = outcome.block
        context = f"{block.where}\n{block.text}\nstdout: {outcome.stdout[-2000:]}\nstderr: {outcome.stderr[-2000:]}"
        assert outcome.exit_code is not None, f"not reached (an earlier example failed): {context}"
        assert outcome.exit_code == block.exit_code, f"exit {outcome.exit_code}, expected {block.exit_code}: {context}"
        for fragment in block.expect:
            assert squeezed(fragment) in squeezed(outcome.stdout), f"output lacks {fragment!r}: {context}"


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def test_every_fenced_block_says_what_it_holds():
    # given / when
    unnamed = [f"{block.where} ({block.language or 'none'})" for block in all_blocks() if block.language not in KNOWN]

    # then: no command hides in a block the test would not run
    assert not unnamed, f"fenced blocks must say sh/bash (run) or json/text (output): {unnamed}"


def test_examples_left_out_are_few_and_say_why():
    # given
    shell = [block for block in all_blocks() if block.language in SHELL]
    not_run = [block for block in shell if block.not_run is not None]

    # then
    assert len(shell) - len(not_run) >= 40, "the docs should teach by running examples"
    assert len(not_run) <= MAX_NOT_RUN, [block.where for block in not_run]
    for block in not_run:
        assert len(block.not_run) > 10, f"{block.where}: say why it is not run"
        assert not block.expect and not block.exit_code, f"{block.where}: a block not run checks nothing"


def test_shown_output_holds_what_the_examples_check():
    # given: examples whose answer the page shows in a json/text block right after them
    shown = [block for block in all_blocks() if block.shown_output is not None and block.expect]

    # then: the page shows what the server is checked to answer
    assert shown
    for block in shown:
        for fragment in block.expect:
            assert squeezed(fragment) in squeezed(block.shown_output), (
                f"{block.where}: shown output lacks {fragment!r}"
            )


def test_every_page_is_in_the_site_and_the_readme_is_a_front_page():
    # given
    in_nav = {page for page in pages() if page.startswith("docs/")}
    on_disk = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    readme = (ROOT / "README.md").read_text()

    # then
    assert on_disk == in_nav
    assert len(readme.splitlines()) <= 250
    for page in in_nav:
        assert (ROOT / page).is_file()
    linked = {part.split(")")[0] for part in readme.split("](")[1:] if part.startswith("docs/")}
    assert linked and all((ROOT / link.split("#")[0]).is_file() for link in linked), linked


def test_a_failing_example_is_reported_and_stops_its_page(tmp_path):
    # given: a page whose third example fails, then one more
    page = tmp_path / "page.md"
    page.write_text(
        '```sh\nGREETING=hello\necho "$GREETING from $TOKEN"\n```\n\n'
        "<!-- example: exit 3 (refused) -->\n```sh\necho refused; exit 3\n```\n\n"
        '```sh\necho "still $GREETING"\nfalse\necho never\n```\n\n'
        "```sh\necho unreachable\n```\n"
    )
    fake = Server(
        DOCS_URL, DOCS_MLFLOW_URL, DOCS_INFERENCE_URL, "t0k3n", {"PATH": os.environ["PATH"], "TOKEN": "t0k3n"}, page
    )

    # when
    outcomes = run_page(str(page), fake)

    # then: variables carry over, an expected failure is recorded, a failure ends the page
    assert [outcome.exit_code for outcome in outcomes] == [0, 3, 1, None]
    assert outcomes[0].stdout.strip() == "hello from t0k3n"
    assert outcomes[2].stdout.strip() == "still hello"
