"""No credential in anything a run writes (issue 14's fault list). With fake but realistic
AWS credentials in the environment (an AKIA key id, a 40-character secret, a session token),
representative work runs as a user would run it: a benchmark against the schedule stand-in
(its JSON), the HTML report of it, the stand-in's log and the commands' output, a SageMaker
deploy --dry-run, an optimization job --dry-run, an autoscaling attach against moto (signed
requests with those credentials), and an executed notebook that uses the magics. Then every
file written and every captured stream is scanned (tests/credential_scan.py). The scanner is
proven able to fail first: it finds the same credentials planted in a dumped environment.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from aws_fixtures import REGION, running_moto
from conftest import ROOT, wait_until
from credential_scan import PATTERNS, describe, files_under, scan_paths, scan_text
from jupyter_ext.deploy.aws import REDACTED, redact

pytestmark = pytest.mark.timeout(600)


def fake_credentials(seed: int = 14) -> dict[str, str]:
    """Shaped like real ones (so the generic patterns would catch them), random so no real
    key is ever named in a test."""
    rng = random.Random(seed)
    upper = string.ascii_uppercase + string.digits
    b64 = string.ascii_letters + string.digits + "+/"
    return {"AWS_ACCESS_KEY_ID": "AKIA" + "".join(rng.choices(upper, k=16)),
            "AWS_SECRET_ACCESS_KEY": "".join(rng.choices(b64, k=40)),
            "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjE" + "".join(rng.choices(b64, k=300)) + "=="}


@pytest.fixture
def creds(monkeypatch, tmp_path) -> dict[str, str]:
    """The fake credentials in this process's environment (so every subprocess and the
    notebook's kernel inherit them); no profile or config file of the machine is read, and
    the toolkit's cache is the test's own folder, so whatever it writes is scanned too."""
    c = fake_credentials()
    for k, v in c.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("JUPYTER_OPTIMIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return c


def test_the_scanner_finds_planted_credentials(creds, tmp_path):
    """The negative check: an environment dumped into a result, a log line with a signed
    header, and a key of someone else's are all found; a redacted value and a mere mention
    of the variable's name are not."""
    res = tmp_path / "res"
    res.mkdir()
    (res / "leaky.json").write_text(json.dumps({"levels": [], "machine": {"env": dict(os.environ)}}))
    # what the toolkit's own redaction leaves of the same environment is clean
    clean = redact({"env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")}})
    assert clean["env"]["AWS_SECRET_ACCESS_KEY"] == REDACTED
    clean["hint"] = "set AWS_SECRET_ACCESS_KEY or run aws configure"
    (res / "clean.json").write_text(json.dumps(clean))
    known = list(creds.values())
    found = scan_paths([res], known)
    assert {f.where for f in found} == {str(res / "leaky.json")}
    assert {"known value #1", "known value #2", "known value #3", "access key id"} <= {f.what for f in found}
    assert all(v not in str(f) for f in found for v in known)  # the report itself leaks nothing
    other = "x-amz-security-token: FwoGZXIvYXdzEJr//////////wEaDM3 " \
            "Authorization: AWS4-HMAC-SHA256 Credential=ASIAQWERTYUIOPASDFGH/20261203/us-east-1/s3/aws4_request"
    assert {f.what for f in scan_text(other, "log")} == {"x-amz-security-token with a value", "access key id",
                                                          "SigV4 credential scope"}
    assert {f.what for f in scan_text("aws_secret_access_key = " + "k" * 40, "ini")} == {
        "aws_secret_access_key with a value"}
    assert set(PATTERNS) >= {"access key id", "aws_secret_access_key with a value", "x-amz-security-token with a value"}


def _cli(args: list[str], logs: Path, name: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI as a user would; its stdout and stderr are kept as logs (and so scanned)."""
    proc = subprocess.run([sys.executable, "-m", "jupyter_ext.faces.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    (logs / f"{name}.stdout").write_text(proc.stdout)
    (logs / f"{name}.stderr").write_text(proc.stderr)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stderr[-2000:]}"
    return proc


def _notebook(path: Path, url: str, results: Path) -> None:
    """A tiny notebook that uses the magics: a benchmark shown as its object, a dry run."""
    cells = ["%load_ext jupyter_ext",
             f"%optimize bench --url {url} --concurrency 1,2 --prompts 2 --max-tokens 4 --warmup 0 "
             f"--input-scale 0.1 --results-dir {results} --no-chart -o res",
             "res",
             "%optimize deploy ngram --target sagemaker --dry-run --instance-type ml.g5.2xlarge "
             f"--region {REGION}",
             "import os; print(sorted(k for k in os.environ if k.startswith('AWS_')))"]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)


def _start_standin(logs: Path) -> tuple[subprocess.Popen, str]:
    from jupyter_ext.engine import free_port
    from jupyter_ext.engine.server import http_ok

    port = free_port()
    log = open(logs / "standin-server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(port),
                             "--ttft-ms", "5", "--itl-ms", "1", "--prefix-hit-rate", "0"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(url + "/health") or proc.poll() is not None, 30, "the stand-in server")
    assert proc.poll() is None, (logs / "standin-server.log").read_text()
    return proc, url


def test_no_credential_in_results_logs_reports_dry_runs_or_notebooks(creds, tmp_path):
    res, logs = tmp_path / "results", tmp_path / "logs"
    res.mkdir()
    logs.mkdir()
    proc, url = _start_standin(logs)
    try:
        _cli(["bench", "--url", url, "--concurrency", "1,4", "--prompts", "4", "--max-tokens", "6", "--warmup", "1",
              "--input-scale", "0.1", "--slo", "ttft_p99=2s", "--results-dir", str(res),
              "--chart", str(res / "chart.png")], logs, "bench")
        saved = sorted(res.glob("*.json"))
        assert saved, "the benchmark saved no result"
        _cli(["report", *map(str, saved), "-o", str(res / "report.html")], logs, "report")
        dry = _cli(["deploy", "ngram", "--target", "sagemaker", "--dry-run", "--instance-type", "ml.g5.2xlarge",
                    "--region", REGION], logs, "deploy-dry-run")
        assert '"operation": "CreateEndpoint"' in dry.stdout
        job = _cli(["optimize", "awq", "--target", "sagemaker", "--dry-run", "--instance-type", "ml.g5.2xlarge",
                    "--region", REGION, "--job-name", "jo-scan"], logs, "optimize-dry-run")
        assert "CreateOptimizationJob" in job.stdout
        with running_moto() as moto:  # requests signed with the fake credentials
            _cli(["autoscale", "attach", "ep-scan", "--min", "1", "--max", "2", "--target-value", "4",
                  "--region", REGION, "--endpoint-url", moto], logs, "autoscale-attach")
        nb_path, nb_res = tmp_path / "scan.ipynb", tmp_path / "nb-results"
        _notebook(nb_path, url, nb_res)
        nb = nbformat.read(nb_path, as_version=4)
        NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
        nbformat.write(nb, tmp_path / "scan.executed.ipynb")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # the run really did the work whose output is scanned
    assert (res / "report.html").stat().st_size > 1000 and (res / "chart.png").exists()
    assert list(nb_res.glob("*.json")), "the notebook's benchmark saved nothing"
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "'AWS_SECRET_ACCESS_KEY'" in printed  # the kernel did have the credentials
    written = files_under([tmp_path])
    assert {p.suffix for p in written} >= {".json", ".html", ".ipynb", ".log", ".stdout", ".stderr"}
    findings = scan_paths([tmp_path], known=list(creds.values()))
    assert not findings, describe(findings)
