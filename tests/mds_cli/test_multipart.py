"""The upload's multipart body: what a server parses from it, and that the file never sits in memory whole."""

import io
import tracemalloc

from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser

from mds.client import upload_body


def parse(body: bytes, content_type: str):
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    return MultiPartParser(meta, io.BytesIO(body), upload_handlers=[MemoryFileUploadHandler()]).parse()


def test_django_reads_the_fields_and_the_file_back(tmp_path):
    # given
    path = tmp_path / 'we"ather.csv'
    content = b"timestamp,a,target\n" + b"2020-01-01,1,2\n" * 5000
    path.write_bytes(content)
    sent = []

    # when: read as urllib3 does, in fixed blocks
    with open(path, "rb") as file:
        body = upload_body(
            fields={"model_name": "m1", "n_estimators": "7"}, file=file, name=path.name, on_sent=sent.append
        )
        raw = b"".join(iter(lambda: body.read(16384), b""))
    fields, files = parse(raw, body.content_type)

    # then: the progress rose block by block to the whole body
    assert len(raw) == body.len == sent[-1]
    assert sent == sorted(sent) and max(b - a for a, b in zip([0, *sent], sent, strict=False)) <= 16384
    assert fields["model_name"] == "m1" and fields["n_estimators"] == "7"
    assert files["file"].name == "weather.csv"
    assert files["file"].read() == content


def test_a_large_file_is_read_block_by_block(tmp_path):
    # given: 20 MB on disk
    path = tmp_path / "big.csv"
    with open(path, "wb") as out:
        for _ in range(20):
            out.write(b"x" * (1 << 20))

    # when
    with open(path, "rb") as file:
        body = upload_body(fields={}, file=file, name=path.name, on_sent=lambda sent: None)
        tracemalloc.start()
        total = 0
        while block := body.read(65536):
            total += len(block)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    # then: the whole body went through, never more than a few blocks held at once
    assert total == body.len > 20 << 20
    assert peak < 1 << 20
