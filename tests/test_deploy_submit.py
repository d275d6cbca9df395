"""`deploy/spark-submit.sh` builds a submission that can find the configuration (spark-submit stubbed out)."""

from __future__ import annotations

import os
import stat
import subprocess
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$STUB_OUT/args"
printf '%s\\n' "${RECSYS_CONF_DIR:-}" > "$STUB_OUT/conf_dir"
for a in "$@"; do case "$a" in *recsys-conf.zip*) cp "${a%%#*}" "$STUB_OUT/conf.zip";; esac; done
"""


def submit(tmp_path: Path, master: str) -> tuple[list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "spark-submit"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k not in ("RECSYS_CONF_DIR", "DEPLOY_MODE")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", STUB_OUT=str(tmp_path), SPARK_MASTER=master,
               RECSYS_LAKEHOUSE="s3a://bucket/lakehouse")
    subprocess.run(["bash", str(REPO / "deploy" / "spark-submit.sh"), "etl", "--source", "movielens",
                    "--input", "s3a://raw/ml-25m"], check=True, env=env, cwd=tmp_path)
    return (tmp_path / "args").read_text().splitlines(), (tmp_path / "conf_dir").read_text().strip()


def value_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_yarn_cluster_mode_ships_the_config_tree(tmp_path: Path) -> None:
    args, _ = submit(tmp_path, "yarn")
    assert value_after(args, "--deploy-mode") == "cluster"
    assert value_after(args, "--archives").endswith("recsys-conf.zip#recsys-conf")
    assert "spark.yarn.appMasterEnv.RECSYS_CONF_DIR=recsys-conf" in args
    names = set(zipfile.ZipFile(tmp_path / "conf.zip").namelist())
    for path in REPO.glob("conf/*/*.yaml"):  # every file, under its own folder (base/ and the overlays)
        assert path.relative_to(REPO / "conf").as_posix() in names
    entry = args.index(str(REPO / "jobs" / "etl.py"))
    assert args[entry + 1:] == ["--env", "cluster", "--lakehouse", "s3a://bucket/lakehouse", "--source", "movielens",
                                "--input", "s3a://raw/ml-25m"]


def test_standalone_runs_the_driver_here_with_the_repo_config(tmp_path: Path) -> None:
    args, conf_dir = submit(tmp_path, "spark://master:7077")
    assert value_after(args, "--deploy-mode") == "client"
    assert "--archives" not in args
    assert conf_dir == str(REPO / "conf")
    assert value_after(args, "--env") == "cluster"


def submit_etl(tmp_path: Path, *args: str, key: str | None = None,
               conf_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "spark-submit"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k not in ("RECSYS_CONF_DIR", "DEPLOY_MODE", "RECSYS_PSEUDONYM_KEY")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", STUB_OUT=str(tmp_path), SPARK_MASTER="yarn",
               RECSYS_LAKEHOUSE="s3a://bucket/lakehouse", **({"RECSYS_PSEUDONYM_KEY": key} if key else {}),
               **({"RECSYS_CONF_DIR": str(conf_dir)} if conf_dir else {}))
    return subprocess.run(["bash", str(REPO / "deploy" / "submit_etl.sh"), "--input", "s3a://raw/ml-25m", *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True)


def test_submit_etl_takes_the_key_from_the_environment_or_a_secret_file(tmp_path: Path) -> None:
    refused = submit_etl(tmp_path)
    assert refused.returncode == 2 and "RECSYS_PSEUDONYM_KEY" in refused.stderr
    assert not (tmp_path / "args").exists()
    assert submit_etl(tmp_path, key="k3y").returncode == 0
    (tmp_path / "args").unlink()
    by_file = submit_etl(tmp_path, "--set", "etl.pseudonym_key_file=/mnt/secrets/recsys/key")
    assert by_file.returncode == 0, by_file.stderr
    assert "etl.pseudonym_key_file=/mnt/secrets/recsys/key" in (tmp_path / "args").read_text().splitlines()
    (tmp_path / "args").unlink()
    overlay = tmp_path / "conf" / "cluster" / "etl.yaml"
    overlay.parent.mkdir(parents=True)
    overlay.write_text('etl:\n  pseudonym_key_file: ""\n')  # empty: names no file
    assert submit_etl(tmp_path, conf_dir=tmp_path / "conf").returncode == 2
    overlay.write_text("etl:\n  pseudonym_key_file: /mnt/secrets/recsys/key  # mounted secret\n")
    assert submit_etl(tmp_path, conf_dir=tmp_path / "conf").returncode == 0
