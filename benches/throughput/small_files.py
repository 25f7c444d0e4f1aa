"""The Python reference of `--small-files` (benches/throughput/small_files.rs): the loop a user
would write with boto3 and psycopg 3. One connection; per change file, in each table's commit
order: GetObject, gunzip, then one transaction with the staged SQL upsert (COPY into a temp table,
DISTINCT ON the key, DELETE the D keys, INSERT ... ON CONFLICT DO UPDATE the rest).

    python small_files.py JOB.json   # prints the seconds from the listing to the last commit
"""

import gzip
import json
import sys
import time

import boto3
import psycopg


def main() -> None:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    s3 = boto3.client(
        "s3",
        endpoint_url=job["endpoint"],
        aws_access_key_id=job["key_id"],
        aws_secret_access_key=job["secret"],
        region_name="us-east-1",
    )
    with psycopg.connect(job["dsn"]) as conn:
        started = time.perf_counter()
        listed = set()
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=job["bucket"], Prefix=job["prefix"]
        ):
            listed.update(o["Key"] for o in page.get("Contents", []))
        for table in job["tables"]:
            create, copy, upsert = table["sql"]
            for key in table["keys"]:
                if key not in listed:
                    raise SystemExit(f"{key} not listed")
                data = gzip.decompress(
                    s3.get_object(Bucket=job["bucket"], Key=key)["Body"].read()
                )
                with conn.transaction():
                    with conn.cursor() as cur:
                        cur.execute(create)
                        with cur.copy(copy) as cp:
                            cp.write(data)
                        cur.execute(upsert)
        print(f"{time.perf_counter() - started:.6f}")


if __name__ == "__main__":
    main()
