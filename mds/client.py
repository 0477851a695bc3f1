"""HTTP calls to the MDS API: start a training or a batch scoring from a file on disk, read a job, cancel it,
download a batch job's result.

Every error answer of the API has the same body, ``{"code", "message", "extra"}``; :class:`ApiError` carries it
to the command line, which prints it as it came.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import requests
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

DEFAULT_URL = "http://127.0.0.1:8000"
# A result is written 1 MiB at a time: few system calls, little memory, whatever the result's size.
DOWNLOAD_BLOCK = 1 << 20
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class ApiError(Exception):
    """The server refused the request (4xx/5xx), or could not be reached (``status`` 0)."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no answer"
        return f"{where} {self.code}: {self.message}"


class UploadInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``POST /train`` or ``POST /batch``: ``uploaded`` tells whether the whole body had been sent (the
    server may then have accepted the job, which goes on there) or not (nothing was stored)."""

    def __init__(self, *, uploaded: bool) -> None:
        super().__init__()
        self.uploaded = uploaded


class ApiClient:
    """One server and one token; ``timeout`` bounds each connect and each wait for an answer's first byte."""

    def __init__(self, *, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def training_start(
        self, *, path: Path, options: dict[str, str], on_sent: Callable[[int], None], wait: float = 0
    ) -> dict:
        """POST /train with the file streamed from disk; the job as the server answered (202, or 200 if done).

        ``on_sent`` is called with the bytes of the body sent so far. ``wait`` is the answer's time budget beyond
        ``timeout``: a server that trains in-process with background training off trains inside the request.
        Ctrl-C raises ``UploadInterrupted``, which says whether the upload was complete.
        """
        return self._upload("/train", path=path, options=options, on_sent=on_sent, wait=wait)

    def jobs_list(self, *, limit: int) -> list[dict]:
        """The newest ``limit`` jobs this token may see, newest first."""
        return self._send("GET", "/train", params={"limit": limit}).json()["results"]

    def job_get(self, *, job_id: int) -> dict:
        return self._send("GET", f"/train/{job_id}").json()

    def job_cancel(self, *, job_id: int) -> dict:
        try:
            return self._send("POST", f"/train/{job_id}/cancel").json()
        except ApiError as error:
            # The API's own 404 (no such job) has a JSON body; a bare 404/405 means the route itself is missing.
            if error.status in (404, 405) and error.code == "http_error":
                raise ApiError(error.status, "cancel_unsupported", f"{self.url} cannot cancel jobs") from error
            raise

    def batch_start(
        self, *, path: Path, options: dict[str, str], on_sent: Callable[[int], None], wait: float = 0
    ) -> dict:
        """POST /batch with the file streamed from disk (CSV, or Parquet by its name); the job as answered.

        As ``training_start``: ``wait`` is the answer's budget beyond ``timeout`` (a server that scores in-process
        may answer late), and Ctrl-C raises ``UploadInterrupted``.
        """
        return self._upload(
            "/batch", path=path, options=options, on_sent=on_sent, wait=wait, content_type=file_content_type(path)
        )

    def _upload(
        self,
        endpoint: str,
        *,
        path: Path,
        options: dict[str, str],
        on_sent: Callable[[int], None],
        wait: float,
        content_type: str = "text/csv",
    ) -> dict:
        with open(path, "rb") as file:
            body = upload_body(fields=options, file=file, name=path.name, on_sent=on_sent, content_type=content_type)
            try:
                response = self._send(
                    "POST",
                    endpoint,
                    data=body,
                    headers={"Content-Type": body.content_type},
                    # (connect, read): the read timeout runs from the end of the upload to the answer.
                    timeout=(self.timeout, self.timeout + wait),
                )
            except KeyboardInterrupt as interrupt:
                raise UploadInterrupted(uploaded=body.bytes_read >= body.len) from interrupt
        return response.json()

    def batch_list(self, *, limit: int) -> list[dict]:
        """The newest ``limit`` batch jobs this token may see, newest first."""
        return self._send("GET", "/batch", params={"limit": limit}).json()["results"]

    def batch_get(self, *, job_id: int) -> dict:
        return self._send("GET", f"/batch/{job_id}").json()

    def batch_cancel(self, *, job_id: int) -> dict:
        return self._send("POST", f"/batch/{job_id}/cancel").json()

    def batch_download(
        self, *, job_id: int, what: str, path: Path, on_received: Callable[[int, int | None], None]
    ) -> int:
        """GET /batch/<id>/<what> (``result`` or ``errors``) streamed to ``path``; returns the bytes written.

        The body goes to ``path.part`` block by block and is renamed to ``path`` once whole, so ``path`` never
        holds half a result; Ctrl-C or a broken connection removes the part file. ``on_received`` is called with
        the bytes received so far and the body's length (None when the server does not say).
        """
        response = self._send("GET", f"/batch/{job_id}/{what}", stream=True)
        total = response.headers.get("Content-Length")
        length = int(total) if total and total.isdigit() else None
        partial = path.with_name(path.name + ".part")
        received = 0
        try:
            with response, open(partial, "wb") as out:
                on_received(0, length)
                for block in response.iter_content(DOWNLOAD_BLOCK):
                    out.write(block)
                    received += len(block)
                    on_received(received, length)
            if length is not None and received != length:
                raise ApiError(0, "incomplete", f"{what} of batch job {job_id}: {received} of {length} bytes came")
            os.replace(partial, path)
        except requests.RequestException as error:
            partial.unlink(missing_ok=True)
            raise ApiError(
                0, "incomplete", f"{what} of batch job {job_id}: the download broke off: {error}"
            ) from error
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return received

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, f"{self.url}{path}", **kwargs)
        except requests.ConnectionError as error:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {error}") from error
        except requests.Timeout as error:
            raise ApiError(0, "timeout", f"{self.url} did not answer in time: {error}") from error
        if response.status_code >= 400:
            raise _api_error(response, f"{method} {path}")
        return response


def upload_body(
    *,
    fields: dict[str, str],
    file: BinaryIO,
    name: str,
    on_sent: Callable[[int], None],
    content_type: str = "text/csv",
) -> MultipartEncoderMonitor:
    """A ``multipart/form-data`` body of ``fields`` and then ``file`` as the ``file`` field, read block by block as
    it is sent: ``requests`` alone would build the whole body in memory. Its known length makes ``requests`` send a
    ``Content-Length`` (servers behind WSGI ignore chunked bodies); ``on_sent`` follows the bytes read so far.
    """
    # urllib3 would send a quote in the name as %22, which the server would keep.
    encoder = MultipartEncoder({**fields, "file": (name.replace('"', ""), file, content_type)})
    return MultipartEncoderMonitor(encoder, lambda monitor: on_sent(monitor.bytes_read))


def file_format(path: Path) -> str:
    """``parquet`` for a ``.parquet``/``.pq`` name, ``csv`` for any other."""
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def file_content_type(path: Path) -> str:
    return "application/vnd.apache.parquet" if file_format(path) == "parquet" else "text/csv"


def _api_error(response: requests.Response, request: str) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        return ApiError(response.status_code, str(body.get("code", "error")), body["message"], body.get("extra") or {})
    # Not the API's error body (a proxy's page, a server too old for the route): name the request and the status.
    return ApiError(response.status_code, "http_error", f"{request}: {response.reason or 'no JSON error body'}")
