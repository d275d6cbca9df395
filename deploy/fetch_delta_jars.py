"""Download delta-spark's JVM jars into pyspark/jars (image build time; needs Maven Central)."""

import os
import sys
import urllib.request

import pyspark

version = sys.argv[1] if len(sys.argv) > 1 else "4.0.0"
jars = os.path.join(os.path.dirname(pyspark.__file__), "jars")
base = "https://repo1.maven.org/maven2/io/delta"
for artifact, name in ((f"delta-spark_2.13/{version}", f"delta-spark_2.13-{version}.jar"),
                       (f"delta-storage/{version}", f"delta-storage-{version}.jar")):
    target = os.path.join(jars, name)
    urllib.request.urlretrieve(f"{base}/{artifact}/{name}", target)
    print("fetched", target)
