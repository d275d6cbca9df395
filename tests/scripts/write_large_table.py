"""Run under spark-submit with a tiny spark.driver.maxResultSize: writes ~40 MB through the table layer,
then proves the limit is live by collecting the same data (which must fail). Prints WRITE_OK / COLLECT_BLOCKED.
"""

import sys

from pyspark.sql import functions as F

from recsys.config import load_config
from recsys.lakehouse import TableStore
from recsys.spark_session import get_spark, under_spark_submit

lakehouse = sys.argv[1]
assert under_spark_submit(), "expected to run under spark-submit"
spark = get_spark()
frame = spark.range(400_000, numPartitions=4).select(
    "id", F.sha2(F.col("id").cast("string"), 256).alias("h1"), F.sha2(F.col("id").cast("string"), 512).alias("h2")
)
store = TableStore(spark, load_config("test", lakehouse=lakehouse).storage)
store.write(frame, "big")
assert store.read("big").count() == 400_000
print("WRITE_OK", flush=True)
try:
    frame.collect()
except Exception as exc:  # Py4J wraps the SparkException
    if "maxResultSize" in str(exc) or "bigger than" in str(exc):
        print("COLLECT_BLOCKED", flush=True)
spark.stop()
