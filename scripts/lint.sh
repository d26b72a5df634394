#!/usr/bin/env bash
# Static checks, run by ./test.sh before the tests: ruff (pyproject.toml's rules) and import-linter
# (pyproject.toml's contracts: the layer order, no import cycles, the front ends only through
# pyrun.runtime.api).
#   scripts/lint.sh --all   also mypy (strict on the pure packages): configured in pyproject.toml,
#                           not yet clean, so not yet part of ./test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
case "$PY" in /*) ;; */*) PY=$ROOT/$PY ;; esac  # a relative path must still work after the cd into src
status=0
echo "==> ruff"
"$PY" -m ruff check --quiet src tests benchmarks scripts || status=1
echo "==> import-linter"
# from src, so the pyrun package found is this tree's; its report is shown when a contract is broken
report=$(cd src && "$PY" -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' \
    "$ROOT/pyproject.toml" --no-cache --no-logo 2>&1) || { echo "$report"; status=1; }
[ "${1:-}" = "--all" ] || exit $status
echo "==> mypy"
"$PY" -m mypy --no-error-summary || status=1
exit $status
