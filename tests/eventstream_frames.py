"""AWS's binary event-stream encoding, written out for tests: what InvokeEndpointWithResponseStream
sends, so a scripted server can speak it to real boto3 and to the benchmark's transport.

A message is a prelude (total length, headers length, CRC32 of those 8 bytes), the headers
(name length, name, type 7 = string, value length, value), the payload, and a CRC32 of all
that came before. test_deploy_sagemaker checks the result with botocore's own decoder.
"""

from __future__ import annotations

import binascii
import json
import struct

EVENT_STREAM = "application/vnd.amazon.eventstream"


def _crc(data: bytes) -> bytes:
    return struct.pack("!I", binascii.crc32(data) & 0xFFFFFFFF)


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + _crc(prelude) + encoded + payload
    return message + _crc(message)


def payload_part(data: bytes) -> bytes:
    """A PayloadPart event: bytes of the container's reply."""
    return frame({":message-type": "event", ":event-type": "PayloadPart",
                  ":content-type": "application/octet-stream"}, data)


def exception_frame(kind: str, message: str, error_code: str | None = None) -> bytes:
    """An exception message (ModelStreamError, InternalStreamFailure) with its JSON payload."""
    body = {"Message": message, **({"ErrorCode": error_code} if error_code else {})}
    return frame({":message-type": "exception", ":exception-type": kind,
                  ":content-type": "application/json"}, json.dumps(body).encode())


def stream_reply(*frames: bytes) -> tuple[int, dict[str, str], bytes]:
    """A scripted_http answer carrying these frames."""
    return 200, {"Content-Type": EVENT_STREAM, "X-Amzn-SageMaker-Content-Type": "text/event-stream"}, b"".join(frames)
