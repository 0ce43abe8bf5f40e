#!/usr/bin/env bash
# Install nbops and its `runner` extra into a fresh virtual environment, exactly as locked.
#
# The one install recipe of the runner images: the Dockerfiles run it at build time and
# tests/images/test_runner_install.py runs it on the host, so what is tested is what ships.
#
#   usage: install.sh <project-dir> <venv-dir>
#
# Environment: UV     uv executable (default: `uv` on PATH)
#              PYTHON interpreter for the venv (default: python3.11)
#
# Every dependency comes from uv.lock with its sha256 (--require-hashes, --no-deps: nothing
# is resolved here), the project itself from a wheel built from <project-dir>. No dev
# tools and no Airflow end up in the venv. The venv is byte-compiled because stage pods
# run with a read-only root filesystem and PYTHONDONTWRITEBYTECODE=1.
set -euo pipefail

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

[ "$#" -eq 2 ] || die "usage: install.sh <project-dir> <venv-dir>"
project=$(cd "$1" && pwd) || die "project directory '$1' not found"
venv=$2
uv=${UV:-uv}
python=${PYTHON:-python3.11}

command -v "$uv" >/dev/null 2>&1 || die "uv not found (looked for '$uv'); put uv on PATH or set UV=/path/to/uv"
[ -f "$project/pyproject.toml" ] || die "$project/pyproject.toml not found"
[ -f "$project/uv.lock" ] || die "$project/uv.lock not found; the install only takes locked versions"

work=$(mktemp -d "${TMPDIR:-/tmp}/nbops-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "install.sh: exporting locked requirements (runner extra, hashes)" >&2
"$uv" export --project "$project" --frozen --no-dev --extra runner --no-emit-project \
    --no-header --format requirements-txt --output-file "$work/requirements.txt" --quiet

echo "install.sh: building the nbops wheel" >&2
"$uv" build --wheel --out-dir "$work/dist" --quiet "$project"
wheels=("$work"/dist/nbops-*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    die "expected one nbops wheel in $work/dist"
fi

echo "install.sh: creating $venv with $python" >&2
"$uv" venv --no-project --python "$python" --quiet "$venv"
venv=$(cd "$venv" && pwd)
vpython="$venv/bin/python"

echo "install.sh: installing locked dependencies" >&2
"$uv" pip install --python "$vpython" --require-hashes --no-deps --quiet -r "$work/requirements.txt"
"$uv" pip install --python "$vpython" --no-deps --quiet "${wheels[0]}"

# unchecked-hash: the .pyc files are used without stat-ing or hashing the sources, so
# they stay valid whatever mtimes an image layer gives the files.
echo "install.sh: byte-compiling" >&2
site=$("$vpython" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$vpython" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site" >/dev/null \
    || die "byte-compiling $site failed"

echo "install.sh: checking the result" >&2
"$venv/bin/nbops" --version >/dev/null || die "$venv/bin/nbops --version failed"
"$vpython" -c 'import ipykernel, papermill, mlflow' || die "the runner extra is not importable"
[ -f "$venv/share/jupyter/kernels/python3/kernel.json" ] \
    || die "no python3 kernelspec under $venv/share/jupyter/kernels"
echo "install.sh: installed $("$venv/bin/nbops" --version) into $venv" >&2
