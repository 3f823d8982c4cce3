#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/seeds/<target>/<name>, from the project's own documents: the
sample catalogue, config/popsel.example.toml, config/demo-site.toml and the examples of the API
reference (../shared/atmos-api/, or the folder given as the first argument). Run it again when
one of them changes; the bounded fuzz run of the test suite replays what it wrote.

Input layouts are those of src/fuzz.rs: config is TOML, NUL, environment value, NUL, PSK
file; api_response is one byte choosing the type, then the body; client_answer is one byte
choosing the call, two the status, a Retry-After line, then the body; retry_after is an
8-byte little-endian clock, then the header value.
"""
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
API = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "atmos-api")
TOKEN = "fuzz-token-8c1e5f"  # popsel::fuzz::TOKEN
PSK = "fuzz-psk-2b7d90aa"  # popsel::fuzz::PSK


def read(*path):
    with open(os.path.join(ROOT, *path), "rb") as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def doc_examples(name):
    """Every brace-balanced block of the API document that starts a line, as text."""
    path = os.path.join(API, name)
    if not os.path.exists(path):
        return []
    text = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(r"(?m)^\{", text):
        depth, i = 0, m.start()
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                out.append(text[i : j + 1])
                break
    pops = text.find('"ipSecLocations"')
    if pops >= 0:  # the document's own sample, broken as it is (no opening brace)
        out.append(text[pops : text.find("Response Codes", pops)].rstrip())
    return out


def main():
    sample = read("config", "catalog.sample.json")
    doc = json.loads(sample)
    small = {"ipSecLocations": [dict(c, locations=c["locations"][:2]) for c in doc["ipSecLocations"][:3]]}
    examples = doc_examples("tunnels-and-pops.md") + doc_examples("connectors.md")

    write("catalog", "sample", sample)
    write("catalog", "sample-small", json.dumps(small))
    for i, ex in enumerate(e for e in examples if "ipSecLocations" in e):
        write("catalog", f"api-doc-{i}", ex)
        write("catalog", f"api-doc-{i}-braced", "{" + ex + "}")

    example_toml = read("config", "popsel.example.toml")
    demo = read("config", "demo-site.toml")
    write("config", "popsel.example", example_toml + b"\0" + b"env-psk-0123456789\0file-psk-0123456789")
    write("config", "demo-site", demo + b"\0" + b"demo-psk-0123456789")
    write("config", "demo-site-psk-file", demo.replace(b'psk_env = "DEMO_PSK"', b'psk_file = "psk"') + b"\0\0file-psk-0123456789\n")
    write("config", "demo-site-open-psk-file", demo.replace(b'psk_env = "DEMO_PSK"', b'psk_file = "psk-open"'))

    pop = lambda c, city, p: {"country": c, "city": city, "provider": p}
    choice = lambda c, city, p, fqdn, ip, score: {
        "pop": pop(c, city, p), "fqdn": fqdn, "ip": ip, "score": score, "rtt_ms": score,
        "since": "2024-01-01T00:00:00Z", "since_unix": 1704067200}
    chi = choice("US", "Chicago, Illinois", "GCP", "ipsec-us-chi-gcp-1.pops.popsel.test", "198.18.3.1", 3.0)
    tor = choice("CA", "Toronto, Ontario", "AWS", "ipsec-ca-tor-aws-1.pops.popsel.test", "198.18.10.1", 20.0)
    ev = lambda ch, wins: {"challenger": ch, "wins": wins, "improvement_ms": 12.5, "note": "challenger has won"}
    selection = {"version": 1, "locations": {
        "chicago": {"primary": {"choice": tor, "evidence": ev(pop("US", "Chicago, Illinois", "GCP"), 2)},
                    "secondary": {"choice": chi, "evidence": ev(None, 0)}},
        "frankfurt": {"primary": {"choice": None, "evidence": ev(None, 0)},
                      "secondary": {"choice": None, "evidence": ev(None, 0)}}}}
    write("selection_file", "two-locations", json.dumps(selection, indent=2))
    write("selection_file", "empty", '{"version":1,"locations":{}}')

    managed = {"version": 1, "tunnels": {
        "t-1": {"id": "t-1", "name": "Chicago IPSec1", "location": "chicago", "psk_fingerprint": "ab" * 32},
        "t-2": {"id": "t-2", "name": "Chicago IPSec2", "location": "chicago", "psk_fingerprint": "cd" * 32},
        "t-5": {"id": "t-5", "name": "Frankfurt IPSec1", "location": "frankfurt", "psk_fingerprint": "ef" * 32}}}
    write("managed_file", "three-tunnels", json.dumps(managed, indent=2))

    write("catalog_cache_file", "sample", json.dumps({"fetched_unix": 1700000000.25, "document": doc}))
    write("catalog_cache_file", "small", json.dumps({"fetched_unix": 1700000000.25, "document": small}))

    audit = [{"time": "2024-01-01T00:00:00Z", "action": a, "tunnel": "Chicago IPSec1", "id": i,
              "fields": f, "result": r} for a, i, f, r in [
        ("create", "t-1", ["name", "authentication_id", "psk", "location_id"], "ok"),
        ("update", "t-1", ["psk"], "ok"), ("delete", None, [], "API error: 500")]]
    write("audit_log", "three-lines", "\n".join(json.dumps(e) for e in audit) + "\n")

    # api_response: 0 Page<Tunnel>, 1 Page<Connector>, 2 Tunnel, 3 Connector, 4 TunnelStatus,
    # 5 ConnectorStatus, 6 InstallCommand, 7 PopDocument.
    for i, ex in enumerate(examples):
        kinds = ([7] if "ipSecLocations" in ex else [0, 1] if '"data"' in ex
                 else [6, 3] if '"command"' in ex else [5, 4] if '"status"' in ex else [2, 3])
        for k in kinds:
            write("api_response", f"api-doc-{i}-as-{k}", bytes([k]) + ex.encode())
    write("api_response", "tunnel-status-bare", b"\x04\"Connected\"")
    write("api_response", "pops-sample", b"\x07" + sample)

    # client_answer: call, status (200 + n % 400), Retry-After line, body.
    def answer(call, status, retry_after, body):
        return bytes([call]) + struct.pack(">H", status - 200) + retry_after.encode() + b"\n" + body.encode()
    calls = {"get-tunnel": 0, "list-tunnels": 1, "tunnel-status": 2, "get-connector": 3,
             "list-connectors": 4, "connector-status": 5, "regenerate": 6, "ipsec-pops": 7,
             "delete": 8, "create-tunnel": 9, "update-tunnel": 10}
    for i, ex in enumerate(examples[:12]):
        for name, call in calls.items():
            if (call == 7) == ("ipSecLocations" in ex):
                write("client_answer", f"api-doc-{i}-{name}", answer(call, 200, "", ex))
    write("client_answer", "ipsec-pops-sample", answer(7, 200, "", sample.decode()))
    write("client_answer", "bad-request-echoing-secrets",
          answer(9, 400, "", json.dumps({"message": f"bad psk {PSK} for token {TOKEN}"})))
    write("client_answer", "conflict-escaped-secret",
          answer(9, 409, "", '{"message":"exists: ' + PSK.replace("-", "\\u002d") + '"}'))
    write("client_answer", "throttled-seconds", answer(1, 429, "3", ""))
    write("client_answer", "throttled-date", answer(0, 429, "Wed, 21 Oct 2015 07:28:00 GMT", "slow down"))
    write("client_answer", "server-error-text", answer(10, 503, "", "<html>maintenance</html>"))
    write("client_answer", "not-found", answer(8, 404, "", '{"error":"no such tunnel"}'))
    write("client_answer", "unauthorized", answer(3, 401, "", ""))

    clock = struct.pack("<Q", 1445412480)
    for name, value in [("seconds", "120"), ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                        ("fraction", "1.5"), ("past-date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                        ("asctime", "Sun Nov  6 08:49:37 1994")]:
        write("retry_after", name, clock + value.encode())


if __name__ == "__main__":
    main()
