"""`DryRun`: the exact AWS requests a deploy or an autoscaling attach would make, unsent.

The core returns it (`deploy.sagemaker.dry_run`, `autoscale.policy.dry_run`) and every face
shows it as it is: JSON text for the CLI, an ordered list with the parameters for notebooks
and panels. A deploy's DryRun keeps the plan it came from, so deploying it makes exactly the
reviewed requests.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class DryRun:
    """The requests a --dry-run would have sent, as JSON (secret-looking environment values
    redacted; building a plan involves no credentials, so none can appear). `plan` is the
    DeploymentPlan of a deploy dry run (None for autoscaling): pass the DryRun back to
    `%optimize deploy @name` to make exactly these requests."""

    title: str
    requests_json: str
    plan: Any = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        return json.loads(self.requests_json)["requests"]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, **json.loads(self.requests_json)}

    def __str__(self) -> str:
        return f"{self.title}\n{self.requests_json}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = self.plan._repr_html_() if self.plan is not None else f"<b>{html.escape(self.title)}</b>"
        steps = "".join(f"<li><code>{html.escape(r['service'])}.{html.escape(r['operation'])}</code>"
                        f" {html.escape(r.get('purpose') or '')}</li>" for r in self.requests)
        return (f"{head}<p>Nothing was sent. The requests, in order:</p><ol>{steps}</ol>"
                f"<details><summary>exact parameters (JSON)</summary>"
                f"<pre>{html.escape(self.requests_json)}</pre></details>")
