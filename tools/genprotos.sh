#!/bin/sh
# Generate Python, gRPC and mypy stubs for protos/onexen/v1 into OUT (default: the repo).
# Used by `make protos` (OUT=.) and `make check-protos` (OUT=a scratch dir, then diffed).
set -eu
cd "$(dirname "$0")/.."
out=${1:-.}
py=${PYTHON:-.venv/bin/python}
PATH="$(cd "$(dirname "$py")" && pwd):$PATH"; export PATH
mkdir -p "$out/onexen/v1"
"$py" -m grpc_tools.protoc -I protos \
    --python_out="$out" --grpc_python_out="$out" \
    --mypy_out="$out" --mypy_grpc_out="$out" \
    protos/onexen/v1/*.proto
[ -f "$out/onexen/v1/__init__.py" ] || : > "$out/onexen/v1/__init__.py"
