#!/usr/bin/env bash
# Static checks, run by ./test.sh before the tests: ruff (lint + import order), mypy (strict on the
# pure packages, see pyproject.toml) and import-linter (the layer order and no import cycles).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
status=0
echo "==> ruff"
"$PY" -m ruff check --quiet src tests benchmarks scripts || status=1
echo "==> mypy"
"$PY" -m mypy --no-error-summary || status=1
echo "==> import-linter"
(cd src && "$PY" -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' \
    --config ../pyproject.toml --no-cache) || status=1
exit $status
