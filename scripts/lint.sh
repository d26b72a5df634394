#!/usr/bin/env bash
# Static checks, run by ./test.sh before the tests: ruff (pyproject.toml's rules) and mypy (strict on
# the pure packages, [tool.mypy] in pyproject.toml).
#   scripts/lint.sh --all   also import-linter (the layer order, no import cycles): configured in
#                           pyproject.toml, not yet clean, so not yet part of ./test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
status=0
echo "==> ruff"
"$PY" -m ruff check --quiet src tests benchmarks scripts || status=1
echo "==> mypy"
"$PY" -m mypy --no-error-summary || status=1
[ "${1:-}" = "--all" ] || exit $status
echo "==> import-linter"
(cd src && "$PY" -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' \
    --config ../pyproject.toml --no-cache) || status=1
exit $status
