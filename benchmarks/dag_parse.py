"""DAG file parse cost: the DAG ``nbops promote`` generates versus a hand-written DAG of the
same KubernetesPodOperator tasks, for the example pipeline and a synthetic 200-stage one.

    .venv/bin/python benchmarks/dag_parse.py [--repeats 7]

Each sample is a fresh Python process (as a DAG processor would parse a changed file)
that first imports what any such DAG file imports (the Airflow SDK, the Kubernetes pod
operator, croniter), then times ``runpy.run_path`` of the DAG file alone. For the
generated file that time includes importing ``nbops.airflow``, reading the lock (plain
JSON, validated when it was written) and building every pod argument. Samples of the two
files are interleaved; medians and the ratio generated / hand-written are printed (target
<= 1.2). The whole process's wall time is printed too, for scale. The nbops package is
byte-compiled first, as it is when installed from a wheel.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import runpy, sys, time
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s
import croniter
start = time.perf_counter()
namespace = runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - start
dags = [v for v in namespace.values() if isinstance(v, DAG)]
assert len(dags) == 1 and len(dags[0].tasks) == int(sys.argv[2]), (len(dags), sys.argv[2])
print(elapsed)
"""

# The hand-written equivalent: what an engineer would write without nbops, one
# KubernetesPodOperator per stage with the same pod settings, stages as literal data.
HAND_WRITTEN = """
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Param
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

STAGES = {stages}
PARAMS = {params}

with DAG(
    dag_id="{name}",
    schedule={schedule!r},
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["hand-written"],
    params={{key: Param(**kwargs) for key, kwargs in PARAMS.items()}},
) as dag:
    tasks = {{}}
    for name, stage in STAGES.items():
        task = KubernetesPodOperator(
            task_id=name,
            name=f"{name}-{{name}}",
            namespace="nbops",
            image=stage["image"],
            image_pull_policy="IfNotPresent",
            cmds=["nbops"],
            arguments=["exec-stage", "--promoted", stage["lock"], "--stage", name, "--run-id", "{{{{ run_id }}}}",
                       "--params-json", stage["params_template"]],
            env_vars={{
                "MLFLOW_TRACKING_URI": "{{{{ var.value.get('mlflow_tracking_uri', '') }}}}",
                "NBOPS_ARTIFACT_ROOT": "/nbops/artifacts",
                "NBOPS_TRIGGER": "airflow",
                "NBOPS_AIRFLOW_DAG_ID": "{{{{ dag.dag_id }}}}",
                "NBOPS_AIRFLOW_RUN_ID": "{{{{ run_id }}}}",
                "NBOPS_AIRFLOW_TRY_NUMBER": "{{{{ ti.try_number }}}}",
                "HOME": "/home/nbops",
            }},
            container_resources=k8s.V1ResourceRequirements(
                requests={{"cpu": stage["cpu"], "memory": stage["memory"]}}, limits={{"memory": stage["memory"]}}
            ),
            service_account_name="nbops-stage",
            automount_service_account_token=False,
            labels={{"nbops.io/pipeline": "{name}", "nbops.io/stage": name}},
            annotations={{"nbops.io/notebook-sha256": stage["sha256"]}},
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=10001, run_as_group=10001, fs_group=10001,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            container_security_context=k8s.V1SecurityContext(
                run_as_non_root=True, allow_privilege_escalation=False, read_only_root_filesystem=True,
                capabilities=k8s.V1Capabilities(drop=["ALL"]),
            ),
            volumes=[
                k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
                k8s.V1Volume(name="home", empty_dir=k8s.V1EmptyDirVolumeSource()),
                k8s.V1Volume(name="artifacts", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name="nbops-artifacts")),
            ],
            volume_mounts=[
                k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
                k8s.V1VolumeMount(name="home", mount_path="/home/nbops"),
                k8s.V1VolumeMount(name="artifacts", mount_path="/nbops/artifacts"),
            ],
            get_logs=True,
            startup_timeout_seconds=600,
            on_finish_action="delete_succeeded_pod",
            retries=stage["retries"],
            retry_delay=timedelta(seconds=60),
            retry_exponential_backoff=2.0,
            max_retry_delay=timedelta(seconds=3600),
            execution_timeout=timedelta(seconds=stage["timeout"] + 720),
        )
        for upstream in stage["needs"]:
            tasks[upstream] >> task
        tasks[name] = task
"""


def synthetic(root: Path, stages: int) -> Path:
    """A pipeline of ``stages`` stages (a chain with a skip link) sharing one small notebook."""
    (root / "nb").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("rows: int = 10  # rows to read\nrate = 0.5  # learning rate\nname = 'x'")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nbformat.write(nb, root / "nb" / "step.ipynb")
    spec: dict[str, object] = {"name": "synthetic", "schedule": "@daily", "stages": {}}
    for i in range(stages):
        needs = [f"s{i - 1}"] + ([f"s{i - 3}"] if i >= 3 else []) if i else []
        spec["stages"][f"s{i}"] = {"notebook": "nb/step.ipynb", "needs": needs}  # type: ignore[index]
    (root / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root / "pipeline.yaml"


def example(root: Path) -> Path:
    shutil.copy(ROOT / "pipeline.yaml", root / "pipeline.yaml")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    return root / "pipeline.yaml"


def prepare(pipeline: Path) -> tuple[Path, Path, int]:
    """Promote ``pipeline`` and write the hand-written twin; return both files and the task count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    subprocess.run(
        [sys.executable, "-m", "nbops", "promote", str(pipeline), "--dags-dir", str(pipeline.parent / "dags")],
        check=True,
        capture_output=True,
        env=env,
    )
    from nbops.airflow.dag import stage_order
    from nbops.airflow.params import param_key, param_schema, params_argument, stage_defaults

    lock_file = next(p for p in (pipeline.parent / "dags").glob("*.lock.json"))
    raw = lock_file.read_bytes()
    lock, sha = json.loads(raw), hashlib.sha256(raw).hexdigest()
    stages = {}
    params = {}
    for name in stage_order(lock):
        locked = lock["stages"][name]
        stage = locked["settings"]
        stages[name] = {
            "image": stage["image"],
            "lock": sha,
            "params_template": params_argument(lock, name),
            "cpu": stage["resources"]["cpu"] or "1",
            "memory": stage["resources"]["memory"] or "1Gi",
            "sha256": locked["sha256"],
            "retries": stage["retries"],
            "timeout": stage["timeout"],
            "needs": stage["needs"],
        }
        defaults = stage_defaults(lock, name)
        for p in locked["parameters"]:
            params[param_key(name, p["name"])] = param_schema(p, defaults[p["name"]], name)
    hand = pipeline.parent / "hand" / "hand_written.py"
    hand.parent.mkdir()
    hand.write_text(
        HAND_WRITTEN.format(
            stages=json.dumps(stages, indent=1),
            params=json.dumps(params, indent=1),
            name=lock["spec"]["name"],
            schedule=lock["spec"]["schedule"],
        )
        .replace(": null", ": None")
        .replace(": true", ": True")
        .replace(": false", ": False")
    )
    generated = pipeline.parent / "dags" / f"{lock['spec']['name']}.py"  # the training DAG, not <name>_monitor.py
    return generated, hand, len(lock["stages"])


def sample(dag_file: Path, tasks: int, airflow_home: Path) -> tuple[float, float]:
    """(seconds to run the DAG file, seconds for the whole process)."""
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file), str(tasks)], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{dag_file} failed to parse:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    # Installed packages are byte-compiled (wheel installs, the images, `uv sync --compile-bytecode`);
    # the editable nbops checkout is not, and PYTHONDONTWRITEBYTECODE may be set: compile it as installed.
    compileall.compile_dir(ROOT / "nbops", quiet=1)
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        base = Path(tmp)
        home = base / "airflow-home"
        home.mkdir()
        cases = {
            "example (6 stages)": prepare(example(_mk(base / "example"))),
            "synthetic (200 stages)": prepare(synthetic(base / "synthetic", 200)),
        }
        print(f"dag_parse: {args.repeats} interleaved fresh-process samples per file, medians")
        print(f"{'pipeline':<24}{'generated s':>13}{'hand s':>10}{'ratio':>8}{'gen proc s':>12}{'hand proc s':>13}")
        for label, (generated, hand, tasks) in cases.items():
            gen: list[tuple[float, float]] = []
            ref: list[tuple[float, float]] = []
            for _ in range(args.repeats):
                gen.append(sample(generated, tasks, home))
                ref.append(sample(hand, tasks, home))
            g, h = statistics.median(x[0] for x in gen), statistics.median(x[0] for x in ref)
            gp, hp = statistics.median(x[1] for x in gen), statistics.median(x[1] for x in ref)
            print(f"{label:<24}{g:>13.3f}{h:>10.3f}{g / h:>8.2f}{gp:>12.2f}{hp:>13.2f}")


def _mk(path: Path) -> Path:
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
