"""ops/api-check's driver: logs in as each kind of caller, runs a client generated from the
served /openapi.json through a platform's day (client_test.py), then lets schemathesis send
every operation generated requests as each caller, failing on any server error, undocumented
status, wrong content type, response that does not match its schema, or missing header.

Environment: BASE_URL, DEMO_OUT (what `voucherd demo` printed), ADMIN_USER, ADMIN_PASS, WORK
(a scratch directory), MAX_EXAMPLES (per operation and caller)."""

import json
import os
import re
import subprocess
import sys
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
BASE = os.environ["BASE_URL"]
WORK = os.environ["WORK"]
DEMO = open(os.environ["DEMO_OUT"], encoding="utf-8").read()


def demo(pattern):
    match = re.search(pattern, DEMO, re.M)
    if not match:
        sys.exit(f"ops/api-check: `voucherd demo` printed nothing like {pattern!r}")
    return match.groups()


def login(path, body):
    reply = httpx.post(BASE + path, json=body, timeout=30)
    if reply.status_code != 200:
        sys.exit(f"ops/api-check: login at {path} answered {reply.status_code}: {reply.text}")
    return reply.json()["token"]


def run(what, argv, env=None, quiet=False):
    """Runs a step; a quiet step's output is shown only when it fails."""
    print(f"==> {what}", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        argv,
        env={**os.environ, **(env or {})},
        capture_output=quiet,
        text=True,
    )
    if quiet and result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n", flush=True)
    print(f"    {what}: exit {result.returncode} after {time.monotonic() - started:.0f} s", flush=True)
    return result.returncode


def main():
    platform_id, platform_key = demo(r"^  platform .*: id ([0-9a-f-]{36}), API key (\S+)$")
    firm_uscc, firm_password = demo(r"^  firm .*: USCC ([0-9A-Z]{18}), password (\S+) \(verified\)$")
    reviewer_user, reviewer_pass = demo(r"^  bureau reviewer: (\S+) / (\S+)$")
    firm = login("/api/portal/sessions", {"uscc": firm_uscc, "password": firm_password})
    reviewer = login("/api/bureau/sessions", {"username": reviewer_user, "password": reviewer_pass})
    # The admin's first login needs no second factor and enrols it; the session is what counts.
    admin = login(
        "/api/bureau/sessions",
        {"username": os.environ["ADMIN_USER"], "password": os.environ["ADMIN_PASS"]},
    )

    failed = []
    # 1. The generated client, before the fuzzing changes the program's parameters.
    schema = os.path.join(WORK, "openapi.json")
    with open(schema, "wb") as f:
        f.write(httpx.get(BASE + "/openapi.json", timeout=30).content)
    packages = os.path.join(WORK, "client")
    config = os.path.join(WORK, "client.yaml")
    with open(config, "w") as f:
        f.write("project_name_override: voucher-api-client\npackage_name_override: voucher_api_client\n")
    path_env = {"PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    steps = [
        (
            "openapi-python-client generate",
            [os.path.join(BIN, "openapi-python-client"), "generate", "--path", schema, "--meta", "none",
             "--config", config, "--output-path", os.path.join(packages, "voucher_api_client"), "--overwrite"],
            path_env,
        ),
        ("the generated client compiles", [sys.executable, "-m", "compileall", "-q", packages], None),
        (
            "the generated client claims, verifies, redeems and pages",
            [sys.executable, os.path.join(HERE, "client_test.py")],
            {"PYTHONPATH": packages, "FIRM_USCC": firm_uscc, "FIRM_PASSWORD": firm_password,
             "PLATFORM_ID": platform_id, "PLATFORM_KEY": platform_key},
        ),
    ]
    # The generator warns about what it cannot type (see the README); its output is kept for
    # when it fails.
    for what, argv, env in steps:
        if run(what, argv, env, quiet=what.startswith("openapi-python-client")) != 0:
            failed.append(what)
            break

    # 2. schemathesis, once per caller.
    callers = [
        ("public", r"^/(healthz|readyz|metrics|openapi\.json|\.well-known/jwks\.json)$", None),
        ("firm session", r"^/api/portal/", firm),
        ("reviewer session", r"^/api/(bureau|rules)/", reviewer),
        ("admin session", r"^/api/(bureau|rules)/", admin),
        ("platform key", r"^/v1/", platform_key),
    ]
    for name, paths, token in callers:
        argv = [
            os.path.join(BIN, "schemathesis"), "run", BASE + "/openapi.json",
            "--include-path-regex", paths,
            # Ending one's own session or changing one's password would log the rest of the run
            # out; the Rust tests cover those.
            "--exclude-path-regex", r"(sessions/current|/password)$",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_headers_conformance,response_schema_conformance",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", os.environ.get("MAX_EXAMPLES", "20"),
            "--seed", "20261202",
            "--generation-database", "none",
            "--workers", "1",
            "--no-color",
            "--report", "junit",
            "--report-dir", os.path.join(WORK, "schemathesis-" + name.replace(" ", "-")),
        ]
        if token:
            argv += ["--header", f"Authorization: Bearer {token}"]
        if run(f"schemathesis as {name}", argv) != 0:
            failed.append(f"schemathesis as {name}")
    if failed:
        sys.exit("ops/api-check failed: " + "; ".join(failed))
    print("==> ops/api-check: no failure")


if __name__ == "__main__":
    main()
