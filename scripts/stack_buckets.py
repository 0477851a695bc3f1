"""Create the S3 buckets the stack needs if they are missing; exit 1 while the server is not answering yet.

    python scripts/stack_buckets.py BUCKET [BUCKET...]

Reads MDS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment.
"""

import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main(buckets: list[str]) -> int:
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["MDS_S3_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(
            s3={"addressing_style": "path"},
            # Some non-AWS S3 servers reject boto3's default request checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )
    try:
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
                print(f"created bucket {bucket}")
    except (BotoCoreError, ClientError) as exc:
        print(f"S3 not ready: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
