"""SageMaker sticky sessions: the one implementation of opening and closing one, for `invoke
--session` (deploy.sagemaker_invoke) and for `bench --sessions` (EndpointSessions below).

An InvokeEndpoint with SessionId=NEW_SESSION and the container's open request opens a
session; its id comes back in the NewSessionId header (`<id>; Expires=<time>`). Requests that
carry the id (the X-Amzn-SageMaker-Session-Id header, SessionId in boto3) go to the same
instance, whose KV cache still holds the earlier turns. The runtime API has no CloseSession
operation: an InvokeEndpoint carrying the id and the container's close request closes it,
confirmed by ClosedSessionId. The bodies are those of SageMaker's hosting standard, which
vLLM's /invocations implements when the container has SAGEMAKER_ENABLE_STATEFUL_SESSIONS=true
(a recipe's `deploy: {sessions: true}` sets it).

The calls go through `call(operation, **params)`: deploy passes its AwsClients (permission
errors named), the benchmark a plain sagemaker-runtime client (tests: under botocore's Stubber).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from ..errors import SessionError

NEW_SESSION = "NEW_SESSION"
# SageMaker's hosting standard's session requests; a container with its own session handling
# may want others (open_body / close_body).
DEFAULT_OPEN_BODY: dict[str, Any] = {"requestType": "NEW_SESSION"}
DEFAULT_CLOSE_BODY: dict[str, Any] = {"requestType": "CLOSE"}

Call = Callable[..., dict]  # call("InvokeEndpoint", **params) -> the parsed response


def _session_call(call: Call, endpoint_name: str, body: dict[str, Any], session_id: str,
                  inference_component: str | None) -> dict:
    """One InvokeEndpoint of the session protocol (open or close) with its JSON body."""
    component = {"InferenceComponentName": inference_component} if inference_component else {}
    return call("InvokeEndpoint", EndpointName=endpoint_name, Body=json.dumps(body), ContentType="application/json",
                Accept="application/json", SessionId=session_id, **component)


def open_session(call: Call, endpoint_name: str, inference_component: str | None = None,
                 open_body: dict[str, Any] | None = None) -> str:
    """Open a session; returns the id from NewSessionId. A reply without one is a SessionError."""
    resp = _session_call(call, endpoint_name, open_body or DEFAULT_OPEN_BODY, NEW_SESSION, inference_component)
    opened = resp.get("NewSessionId")
    if not opened:
        raise SessionError("the endpoint's container opened no session (its reply has no NewSessionId): sticky "
                           "sessions need a container that creates them (vLLM's /invocations does with "
                           "SAGEMAKER_ENABLE_STATEFUL_SESSIONS=true: deploy the recipe with deploy: {sessions: true})")
    return opened.split(";")[0].strip()


def close_session(call: Call, endpoint_name: str, session_id: str, inference_component: str | None = None,
                  close_body: dict[str, Any] | None = None) -> str:
    """Close a session; returns the closed id from ClosedSessionId. A reply without it is a
    SessionError (the container did not close the session)."""
    if not session_id or session_id == NEW_SESSION:
        raise SessionError("close_session needs the id of an open session (the session_id an invoke returned)")
    resp = _session_call(call, endpoint_name, close_body or DEFAULT_CLOSE_BODY, session_id, inference_component)
    closed = resp.get("ClosedSessionId")
    if not closed:
        raise SessionError(f"the endpoint did not close session {session_id} (no ClosedSessionId in its reply); "
                           f"its container may expect another close request: pass close_body")
    return closed.split(";")[0].strip()


def client_call(client: Any) -> Call:
    """`call` over a plain boto3 client: the operation's API name to its method."""
    from botocore import xform_name

    return lambda operation, **params: getattr(client, xform_name(operation))(**params)


class EndpointSessions:
    """The benchmark's sessions on one endpoint: `open()` before a conversation's first turn,
    `close(id)` after its last, both blocking (a benchmark runs them on a worker thread), and
    counts of what happened, which a sweep reads before and after each level. One runtime
    client serves every thread (boto3 allows it)."""

    COUNTS = ("opened", "closed", "open_failed", "close_failed")

    def __init__(self, client: Any, endpoint_name: str, inference_component: str | None = None,
                 open_body: dict[str, Any] | None = None, close_body: dict[str, Any] | None = None) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.inference_component = inference_component
        self.open_body, self.close_body = open_body, close_body
        self._counts = dict.fromkeys(self.COUNTS, 0)
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def open(self) -> str:
        try:
            sid = open_session(client_call(self.client), self.endpoint_name, self.inference_component, self.open_body)
        except Exception:
            self._count("open_failed")
            raise
        self._count("opened")
        return sid

    def close(self, session_id: str) -> str:
        try:
            closed = close_session(client_call(self.client), self.endpoint_name, session_id,
                                   self.inference_component, self.close_body)
        except Exception:
            self._count("close_failed")
            raise
        self._count("closed")
        return closed


def level_sessions(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """What a level's conversations did with sessions: {used: True, opened, closed, open_failed,
    close_failed} (the counts between the two snapshots)."""
    return {"used": True, **{k: after[k] - before[k] for k in EndpointSessions.COUNTS}}


def merged_sessions(levels: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The sessions of several repeats of one level, added up (None when none used them)."""
    used = [s for s in levels if s]
    if not used:
        return None
    return {"used": True, **{k: sum(s.get(k, 0) for s in used) for k in EndpointSessions.COUNTS}}
