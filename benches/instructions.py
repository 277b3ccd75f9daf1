#!/usr/bin/env python3
"""Instructions per request under callgrind: a count that does not move with the machine's load, for comparing
two builds where wall-clock benchmarks are too noisy to resolve a few percent.

    benches/instructions.py BINARY SCENARIO N     (SCENARIO: list, get or create)

Starts BINARY under `valgrind --tool=callgrind` on a fresh SQLite file, signs a user up, creates 50 tasks, sends
N requests of SCENARIO on one keep-alive connection, stops it with SIGTERM and prints callgrind's total. Run it
with N=0 and N=400 for each build: (total(400) - total(0)) / 400 is the cost of one request.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

binary, scenario, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = tempfile.mkdtemp()
out = os.path.join(work, "callgrind.out")
env = dict(os.environ, HOST="127.0.0.1", PORT="18777", DATABASE_PATH=os.path.join(work, "tasky.db"),
           JWT_SECRET="instructions-benchmark-secret-0123456789", RUST_LOG="warn", LOGIN_RATE_LIMIT="0")
server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(600):  # valgrind starts slowly: wait for the first answer
    try:
        probe = http.client.HTTPConnection("127.0.0.1", 18777, timeout=60)
        probe.request("GET", "/healthz")
        probe.getresponse().read()
        break
    except OSError:
        time.sleep(0.1)
conn = http.client.HTTPConnection("127.0.0.1", 18777, timeout=60)
form = {"Content-Type": "application/x-www-form-urlencoded"}
conn.request("POST", "/signup", json.dumps({"username": "counter", "password": "counted-password"}),
             {"Content-Type": "application/json"})
conn.getresponse().read()
conn.request("POST", "/token", "username=counter&password=counted-password", form)
token = json.loads(conn.getresponse().read())["access_token"]
headers = {"Authorization": f"Bearer {token}", "X-API-Key": "123456", "Content-Type": "application/json"}
for i in range(50):
    conn.request("POST", "/tasks", json.dumps({"title": f"task {i}"}), headers)
    conn.getresponse().read()
for i in range(n):
    if scenario == "list":
        conn.request("GET", "/tasks?limit=20", headers=headers)
    elif scenario == "get":
        conn.request("GET", "/tasks/7", headers=headers)
    else:
        conn.request("POST", "/tasks", json.dumps({"title": f"more {i}"}), headers)
    answer = conn.getresponse()
    answer.read()
    assert answer.status in (200, 201), answer.status
conn.close()
server.send_signal(signal.SIGTERM)
server.wait()
total = next(line.split()[1] for line in open(out) if line.startswith("summary:"))
print(f"{binary} {scenario} {n} {total}")
