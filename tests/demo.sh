#!/usr/bin/env bash
# A walk through the Tasky API with curl: sign up, log in, then create, list, read, update and delete a task,
# see the 401s for a missing API key and a missing token, refresh the tokens, and log out. Every step checks the status it gets and the
# script stops with exit status 1 at the first surprise.
#
#   tests/demo.sh [BASE_URL]          (default http://127.0.0.1:8000)
#
# Env: API_KEY (123456), DEMO_USER (a fresh random name), DEMO_PASSWORD.
set -euo pipefail

BASE="${1:-http://127.0.0.1:8000}"
BASE="${BASE%/}"
API_KEY="${API_KEY:-123456}"
USERNAME="${DEMO_USER:-demo_${RANDOM}${RANDOM}}"
PASSWORD="${DEMO_PASSWORD:-demo-pass-123}"

command -v curl >/dev/null || { echo "demo.sh: curl is required" >&2; exit 1; }
BODY="$(mktemp)"
HEADERS="$(mktemp)"
trap 'rm -f "$BODY" "$HEADERS"' EXIT

# call EXPECTED_STATUS DESCRIPTION curl-args... : runs one request, shows it, and checks its status.
call() {
  local expected="$1" what="$2"
  shift 2
  local status
  status="$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' "$@")" || {
    echo "FAIL  $what: curl could not reach $BASE" >&2
    exit 1
  }
  if [[ "$status" != "$expected" ]]; then
    echo "FAIL  $what: expected HTTP $expected, got $status: $(cat "$BODY")" >&2
    exit 1
  fi
  printf 'ok    %-46s %s %s\n' "$what" "$status" "$(head -c 160 "$BODY")"
}

# field NAME : a top-level string or number member of the last JSON body.
field() {
  sed -nE "s/.*\"$1\":(\"([^\"]*)\"|([0-9]+)).*/\2\3/p" "$BODY" | head -n 1
}

# header NAME : a header of the last answer.
header() {
  tr -d '\r' <"$HEADERS" | sed -nE "s/^$1: *(.*)$/\1/Ip" | head -n 1
}

# expect WHAT ACTUAL WANTED : checks a value pulled out of an answer.
expect() {
  if [[ "$2" != "$3" ]]; then
    echo "FAIL  $1: expected '$3', got '$2'" >&2
    exit 1
  fi
}

echo "Tasky demo against $BASE as user '$USERNAME'"

call 200 "GET /healthz" "$BASE/healthz"

# 1. Sign up: JSON body, answer 201 with the new user (never the password hash).
call 201 "POST /signup" -X POST "$BASE/signup" \
  -H 'Content-Type: application/json' \
  -d "{\"username\":\"$USERNAME\",\"password\":\"$PASSWORD\"}"

# 2. Log in: the OAuth2 password flow takes a form and answers a bearer token.
call 200 "POST /token" -X POST "$BASE/token" \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD"
TOKEN="$(field access_token)"
REFRESH="$(field refresh_token)"
[[ -n "$TOKEN" ]] || { echo "FAIL  POST /token: no access_token in the answer" >&2; exit 1; }
[[ -n "$REFRESH" ]] || { echo "FAIL  POST /token: no refresh_token in the answer" >&2; exit 1; }

# Every task route needs both the bearer token and the API key.
AUTH=(-H "Authorization: Bearer $TOKEN" -H "X-API-Key: $API_KEY")

call 200 "GET /users/me" "${AUTH[@]}" "$BASE/users/me"
expect "GET /users/me username" "$(field username)" "$USERNAME"

# 3. Create a task: 201, the task, and its Location.
call 201 "POST /tasks" -X POST "$BASE/tasks" "${AUTH[@]}" \
  -H 'Content-Type: application/json' \
  -d '{"title":"Write report","description":"Quarterly numbers"}'
TASK_ID="$(field id)"
expect "POST /tasks Location" "$(header location)" "/tasks/$TASK_ID"
expect "POST /tasks status" "$(field status)" "pending"

# 4. List: newest first, with the number of matching tasks in X-Total-Count.
call 200 "GET /tasks" "${AUTH[@]}" "$BASE/tasks?status=pending&limit=10"
expect "GET /tasks X-Total-Count" "$(header x-total-count)" "1"

# 5. Read it back.
call 200 "GET /tasks/$TASK_ID" "${AUTH[@]}" "$BASE/tasks/$TASK_ID"
expect "GET /tasks/$TASK_ID title" "$(field title)" "Write report"

# 6. Update: only the fields sent change.
call 200 "PUT /tasks/$TASK_ID" -X PUT "$BASE/tasks/$TASK_ID" "${AUTH[@]}" \
  -H 'Content-Type: application/json' -d '{"status":"completed"}'
expect "PUT /tasks/$TASK_ID status" "$(field status)" "completed"
expect "PUT /tasks/$TASK_ID title" "$(field title)" "Write report"

# 7. Delete: 204, and then it is gone.
call 204 "DELETE /tasks/$TASK_ID" -X DELETE "$BASE/tasks/$TASK_ID" "${AUTH[@]}"
call 404 "GET /tasks/$TASK_ID after delete" "${AUTH[@]}" "$BASE/tasks/$TASK_ID"

# 8. Without the API key, or without the token: 401.
call 401 "GET /tasks without X-API-Key" -H "Authorization: Bearer $TOKEN" "$BASE/tasks"
expect "missing key detail" "$(field detail)" "Invalid or missing API key"
call 401 "GET /tasks without a token" -H "X-API-Key: $API_KEY" "$BASE/tasks"
expect "missing token detail" "$(field detail)" "Could not validate credentials"
expect "missing token challenge" "$(header www-authenticate)" "Bearer"

# 9. Refresh: the refresh token buys a new pair, and is spent.
call 200 "POST /token (refresh grant)" -X POST "$BASE/token" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$REFRESH"
TOKEN="$(field access_token)"
REFRESH="$(field refresh_token)"
AUTH=(-H "Authorization: Bearer $TOKEN" -H "X-API-Key: $API_KEY")
call 200 "GET /users/me with the new token" "${AUTH[@]}" "$BASE/users/me"

# 10. Log out: the session ends, its access and refresh tokens with it.
call 204 "POST /logout" -X POST "$BASE/logout" "${AUTH[@]}"
call 401 "GET /users/me after logout" "${AUTH[@]}" "$BASE/users/me"
expect "after logout detail" "$(field detail)" "Could not validate credentials"
call 401 "POST /token (refresh) after logout" -X POST "$BASE/token" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$REFRESH"
expect "refresh after logout detail" "$(field detail)" "Invalid refresh token"

echo "demo: all steps answered as expected"
