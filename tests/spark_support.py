"""A Spark session in local mode for the catalog tests (the `spark` fixture, which
tests/conftest.py imports): one per pytest process (a JVM starts in ~8-12 s; under xdist
each worker that runs a Spark test starts its own), UTC, two cores,
nothing written outside pytest's tmp dir (warehouse, metastore, scratch, logs), quiet logs.

pyspark (the `dev` extra) needs Java 17+. Without either, a test that asks for `spark` fails
under CI (env CI set) saying what to install, and is skipped elsewhere with the same words.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JVM_ROOT = Path("/usr/lib/jvm")
LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""
"""Spark's log4j2 settings: errors only, from the first line the JVM logs."""


def missing(what: str) -> NoReturn:
    """Fail under CI, skip elsewhere; either way say what to install."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI must install it; without it the Spark proof of the catalog "
                    "DDL (issue 11) is untested")
    pytest.skip(f"{what} (CI installs it and fails without it)")


def java_home() -> str | None:
    """JAVA_HOME for pyspark: the environment's, else a JDK 17 under /usr/lib/jvm (the version
    pyspark 4 is tested on), else None (the `java` on PATH, if any, is used)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    if JVM_ROOT.is_dir():
        for jdk in sorted(JVM_ROOT.iterdir()):
            if "17" in jdk.name and (jdk / "bin" / "java").is_file():
                return str(jdk)
    return None


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A local[2] SparkSession, session time zone UTC, 2 shuffle partitions, no UI, the
    in-memory catalog (the DDL under test needs no Hive metastore; Derby's home is set to the
    tmp dir anyway, so nothing lands in the working directory)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        missing("pyspark is missing: `pip install 'pyspark>=4,<5'` (in the `dev` extra)")
    home = java_home()
    if home is None and shutil.which("java") is None:
        missing("Java 17+ is missing (pyspark needs it): `apt-get install "
                "openjdk-17-jre-headless`, or set JAVA_HOME")
    base = tmp_path_factory.mktemp("spark")
    log4j = base / "log4j2.properties"
    log4j.write_text(LOG4J)
    java_options = (f"-Dlog4j.configurationFile=file:{log4j} -Dderby.system.home={base / 'derby'}"
                    " -Duser.timezone=UTC -XX:TieredStopAtLevel=1")
    with pytest.MonkeyPatch.context() as env:  # read by the JVM that getOrCreate launches
        if home is not None:
            env.setenv("JAVA_HOME", home)
        env.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        env.setenv("TZ", "UTC")
        session = (SparkSession.builder.master("local[2]").appName("eventlake-tests")
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.default.parallelism", "2")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.catalogImplementation", "in-memory")
                   .config("spark.sql.warehouse.dir", str(base / "warehouse"))
                   .config("spark.local.dir", str(base / "scratch"))
                   .config("spark.driver.extraJavaOptions", java_options)
                   .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                           f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true")
                   .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
