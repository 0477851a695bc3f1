"""The streamed multipart body: what a server parses from it, and that the file never sits in memory whole."""

import io
import tracemalloc

from django.http.multipartparser import MultiPartParser

from mds.multipart import StreamingMultipart


def parse(body: bytes, content_type: str):
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    return MultiPartParser(meta, io.BytesIO(body), upload_handlers=[_memory_handler()]).parse()


def _memory_handler():
    from django.core.files.uploadhandler import MemoryFileUploadHandler

    return MemoryFileUploadHandler()


def test_django_reads_the_fields_and_the_file_back(tmp_path):
    # given
    path = tmp_path / 'we"ather.csv'
    content = b"timestamp,a,target\n" + b"2020-01-01,1,2\n" * 5000
    path.write_bytes(content)
    sent = []
    body = StreamingMultipart(
        fields={"model_name": "m1", "n_estimators": "7"}, file_field="file", path=path, on_read=sent.append
    )

    # when: read as urllib3 does, in fixed blocks
    blocks = iter(lambda: body.read(16384), b"")
    raw = b"".join(blocks)
    fields, files = parse(raw, body.content_type)

    # then
    assert len(raw) == len(body) == sum(sent)
    assert max(sent) <= 16384
    assert fields["model_name"] == "m1" and fields["n_estimators"] == "7"
    assert files["file"].name == "weather.csv"
    assert files["file"].read() == content


def test_a_large_file_is_read_block_by_block(tmp_path):
    # given: 20 MB on disk
    path = tmp_path / "big.csv"
    with open(path, "wb") as out:
        for _ in range(20):
            out.write(b"x" * (1 << 20))
    body = StreamingMultipart(fields={}, file_field="file", path=path)

    # when
    tracemalloc.start()
    total = 0
    while block := body.read(65536):
        total += len(block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    # then: the whole body went through, never more than a few blocks held at once
    assert total == len(body) > 20 << 20
    assert peak < 1 << 20
