#!/usr/bin/env bash
# The README's typed Python client, for real: generate it with openapi-python-client from a running service's
# /openapi.json, pip install it, log in, create a task and list it. This catches a document that the generator
# can't turn into a working client, and README steps that have rotted.
#
#   tests/python-client.sh BASE_URL USERNAME PASSWORD API_KEY     (the user must exist already)
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 BASE_URL USERNAME PASSWORD API_KEY" >&2; exit 2; }
BASE="${1%/}"

# The version the README's steps were checked with: bump both together.
OPC_VERSION=0.29.1
# Keyed by version so that reruns skip the ~10 s install and a bump starts clean. The marker is written last,
# so an install that was cut short is redone rather than trusted.
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/tasky-ci/python-client/openapi-python-client-$OPC_VERSION"
if [[ ! -f "$VENV/.complete" ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openapi-python-client==$OPC_VERSION"
  touch "$VENV/.complete"
fi
# On PATH because the generator formats its output with the venv's ruff, and warns without it.
export PATH="$VENV/bin:$PATH"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# --fail-on-warning: a route or schema the generator had to skip is a failure, not a quietly smaller client.
# --meta poetry, as in the README: a package that pip can install (the default changes between versions).
openapi-python-client generate --url "$BASE/openapi.json" --meta poetry --fail-on-warning >generate.log 2>&1 \
  || { cat generate.log >&2; echo "python-client: generation failed" >&2; exit 1; }
# Installed afresh each run (pip always reinstalls a directory): the client must come from this server's document.
pip install --quiet --disable-pip-version-check ./tasky-client

python - "$BASE" "$2" "$3" "$4" "$OPC_VERSION" <<'EOF'
import sys, uuid
from tasky_client import AuthenticatedClient, Client
from tasky_client.api.users import log_in
from tasky_client.api.tasks import create_task, list_tasks
from tasky_client.models import AccessToken, LoginForm, NewTaskRequest, Task

base, username, password, api_key, version = sys.argv[1:]
# raise_on_unexpected_status: a status the document doesn't list is a contract break too.
login = log_in.sync(client=Client(base_url=base, raise_on_unexpected_status=True),
                    body=LoginForm(username=username, password=password))
assert isinstance(login, AccessToken), f"log_in: {login!r}"
client = AuthenticatedClient(base_url=base, token=login.access_token, headers={"X-API-Key": api_key},
                             raise_on_unexpected_status=True)
title = f"python client {uuid.uuid4().hex[:8]}"  # unique, so a rerun can't pass on an old task
task = create_task.sync(client=client, body=NewTaskRequest(title=title))
assert isinstance(task, Task) and task.title == title, f"create_task: {task!r}"
page = list_tasks.sync_detailed(client=client, limit=20)
total = int(page.headers.get("x-total-count", "0"))
assert page.status_code == 200 and total >= 1, f"list_tasks: {page.status_code} x-total-count={total}"
print(f"python-client: ok: openapi-python-client {version} client created task {task.id} and listed {total} task(s)")
EOF
