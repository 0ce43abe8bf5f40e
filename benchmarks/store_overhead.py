"""What an S3 artifact root costs a stage, measured against the hand-rolled alternative in
the same run.

    .venv/bin/python benchmarks/store_overhead.py [--repeats 5] [--mib 8]

An S3-compatible server (moto) runs on 127.0.0.1 inside this process. The notebook writes
``--mib`` MiB of output. Interleaved, median of N runs each:

- ``nbops exec-stage`` with ``NBOPS_ARTIFACT_ROOT=s3://...`` (claim, run, upload with
  retries, manifest, MLflow record with artifacts in S3);
- the same with a local root;
- the reference: ``papermill`` then a boto3 upload of the executed notebook and the output
  file (what a team writes without nbops: no claim, no manifest, no record).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from common import one_stage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.s3server import BUCKET, S3Server

UPLOAD = """
import sys, boto3
s3 = boto3.client("s3")
for name in sys.argv[1:]:
    s3.upload_file(name, "{bucket}", "reference/" + name)
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mib", type=int, default=8, help="size of the stage's output file")
    args = parser.parse_args()
    server = S3Server()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="nbops-bench-store-") as tmp:
            work = Path(tmp)
            nb = nbformat.v4.new_notebook()
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            source = f"import os, nbops\n(nbops.output_dir() / 'blob.bin').write_bytes(os.urandom({args.mib} << 20))"
            nb.cells.append(nbformat.v4.new_code_cell(source))
            nbformat.write(nb, work / "stage.ipynb")
            stage, papermill = one_stage(work, "stage.ipynb", "s")
            base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
            env_s3 = {
                **base,
                **server.env(),
                "NBOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/bench",
                "NBOPS_CACHE_DIR": str(work / "cache"),
            }
            env_local = {  # its own MLflow store: an experiment keeps the artifact location it was created with
                **base,
                "NBOPS_ARTIFACT_ROOT": str(work / "local-root"),
                "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'local-mlflow.db'}",
            }
            env_ref = {**base, **server.env()}  # outside a pipeline run, output_dir() is .nbops/scratch/outputs
            reference = [
                papermill,
                [sys.executable, "-c", UPLOAD.format(bucket=BUCKET), "out.ipynb", ".nbops/scratch/outputs/blob.bin"],
            ]
            run([*stage, "warmup"], work, env_s3)  # MLflow schema and experiment, once
            run([*stage, "warmup"], work, env_local)
            s3_times, local_times, ref_times = [], [], []
            for i in range(args.repeats):
                s3_times.append(run([*stage, f"r{i}"], work, env_s3))
                local_times.append(run([*stage, f"r{i}"], work, env_local))
                ref_times.append(sum(run(cmd, work, env_ref) for cmd in reference))
            uploaded = server.keys("bench/runs/bench/r0/s/attempt-1/")
            assert any(k.endswith("outputs/blob.bin") for k in uploaded), uploaded
    finally:
        server.stop()
    s3_med, local_med, ref_med = (statistics.median(t) for t in (s3_times, local_times, ref_times))
    print(f"stage writing {args.mib} MiB, median of {args.repeats} interleaved runs each")
    for label, times, med in (
        ("nbops exec-stage, s3:// root", s3_times, s3_med),
        ("nbops exec-stage, local root", local_times, local_med),
        ("papermill + boto3 upload", ref_times, ref_med),
    ):
        print(f"    {label:30s} {med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"    ratio s3 root / papermill+upload = {s3_med / ref_med:.2f}")
    print(f"    ratio s3 root / local root       = {s3_med / local_med:.2f}")


if __name__ == "__main__":
    main()
