"""`popsel sim` run by a benchmark script (benches/soak.py, benches/fleet.py): started on a port
the kernel picks, driven through its API and control API, stopped."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Requests safe to send again when the emulator closed the connection under them.
IDEMPOTENT = {"GET", "PUT", "DELETE"}


class Sim:
    def __init__(self, popsel, workdir, token, own_session=False):
        """`own_session`: the emulator in a session (autogroup) of its own, so that many agents
        waking together do not starve it (benches/fleet.py)."""
        self.token = token
        self.log = open(os.path.join(workdir, "sim.log"), "w")
        self.proc = subprocess.Popen(
            [popsel, "sim", "--listen", "127.0.0.1:0"],
            env=dict(os.environ, POPSEL_API_TOKEN=token),
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            start_new_session=own_session,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            sys.exit(f"popsel sim did not start: {line!r}; see {workdir}/sim.log")
        self.url = m.group(1)

    def request(self, method, path, body=None, timeout=10, attempts=5):
        """An idempotent request is tried again when the emulator closed its connection (beyond
        256 connections it closes one for each new one); a create is sent once."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        tries = attempts if method in IDEMPOTENT else 1
        for attempt in range(tries):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    text = resp.read().decode()
                    return resp.status, json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                return e.code, None
            except (OSError, http.client.HTTPException):
                if attempt + 1 == tries:
                    raise
                time.sleep(0.2)

    def set_faults(self, fail_rate, throttle_rate=0.0):
        status, _ = self.request("PUT", "/_sim/faults", {
            "fail_rate": fail_rate, "throttle_rate": throttle_rate,
            "delay_ms": 0, "retry_after_secs": 1})
        if status not in (200, 204):
            sys.exit(f"PUT /_sim/faults answered {status}")

    def tunnels(self):
        """Every tunnel of the account, all pages."""
        out, page, pages = [], 1, 1
        while page <= pages:
            status, body = self.request("GET", f"/api/v1/tunnels?pageSize=100&pageNumber={page}")
            if status != 200:
                sys.exit(f"listing the tunnels (page {page}) answered {status}")
            out += body["data"]
            pages = body.get("totalPages") or 1
            page += 1
        return out

    def psk_matches(self, tunnel_id, psk):
        status, body = self.request("POST", f"/_sim/tunnels/{tunnel_id}/psk-check", {"psk": psk})
        return status == 200 and body.get("matches") is True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
