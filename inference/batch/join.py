"""Joining a batch job's parts into one result object, in input order.

CSV parts concatenate: on S3 as a multipart upload whose parts are server-side copies of the part objects
(UploadPartCopy: no byte passes through the worker; SeaweedFS, the stack's S3 server, supports it), as long as
every part but the last has S3's 5 MiB minimum, else streamed through the worker in 1 MiB blocks; on local files
appended. Parquet files cannot be byte-concatenated (each has its own footer): their row groups are streamed,
one at a time, from each part into a new file (bounded memory: one row group), which is then stored.
"""

import os
import tempfile

from ..models import BatchJob
from . import objects

ERRORS_HEADER = b"row,column,message\n"


def result_join(job: BatchJob, parts: list[str]) -> str:
    """Store the job's result from ``parts`` (in chunk order); returns its name."""
    target = f"batch/{job.key.hex}/result.{job.output_format}"
    if job.output_format == BatchJob.Format.PARQUET:
        _parquet_join(parts, target)
    else:
        objects.concatenate(parts, target)
    return target


def errors_join(job: BatchJob, parts: list[str]) -> str:
    """Store the rejected rows of ``parts`` under one header as the job's errors file; returns its name."""
    header = f"batch/{job.key.hex}/errors/header.csv"
    handle, path = tempfile.mkstemp(prefix="mds-batch-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(ERRORS_HEADER)
        objects.put_file(header, path)
    finally:
        os.unlink(path)
    target = f"batch/{job.key.hex}/errors.csv"
    objects.concatenate([header, *parts], target)
    objects.delete(header)
    return target


def _parquet_join(parts: list[str], target: str) -> None:
    import pyarrow.parquet as pq

    handle, path = tempfile.mkstemp(prefix="mds-batch-result-")
    os.close(handle)
    writer = None
    try:
        for part in parts:
            if objects.size(part) == 0:
                continue  # a chunk whose rows were all skipped
            local = objects.download(part)
            try:
                source = pq.ParquetFile(local)
                for group in range(source.num_row_groups):
                    table = source.read_row_group(group)
                    if writer is None:
                        writer = pq.ParquetWriter(path, table.schema)
                    writer.write_table(table)
            finally:
                os.unlink(local)
        if writer is None:
            import pyarrow as pa

            pq.write_table(pa.table({"prediction": pa.array([], pa.float64())}), path)
        else:
            writer.close()
        objects.put_file(target, path)
    finally:
        os.unlink(path)
