"""Batch scoring: files of any size scored on the workers, chunk by chunk, with /predict's own code path.

``sources`` reads an input's header and splits it (CSV: byte ranges of whole records; Parquet: row groups),
``chunks`` scores one chunk in bounded pieces, ``join`` makes the parts one result object, ``objects`` is the
storage seam (S3 or local files), ``services`` holds the job's state machine, leases and sweeper.
"""
