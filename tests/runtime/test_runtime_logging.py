"""One JSON object per line, context merged, secrets never written."""

from __future__ import annotations

import datetime
import io
import logging

import structlog
from runtime_helpers import LogCapture

from onexen.runtime.logging import REDACTED, configure_logging, get_logger, redact_secrets


def test_one_json_object_per_line_with_timestamp_level_and_context(logs: LogCapture) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1", method="/onexen.v1.ExecutorService/Deploy")
    get_logger("test").info("deployed", host="xen1", vm_id=7)
    get_logger("test").debug("detail")
    (deployed, detail) = logs.events()
    assert deployed["event"] == "deployed"
    assert (deployed["level"], detail["level"]) == ("info", "debug")
    assert (deployed["request_id"], deployed["method"], deployed["host"], deployed["vm_id"]) == (
        "r-1",
        "/onexen.v1.ExecutorService/Deploy",
        "xen1",
        7,
    )
    stamp = datetime.datetime.fromisoformat(deployed["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert list(deployed)[:3] == ["timestamp", "level", "event"]


def test_secrets_are_redacted_at_any_depth(logs: LogCapture) -> None:
    get_logger("test").info(
        "connecting",
        host="xen1",
        password="hunter2",
        ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----",
        options={"user": "oneadmin", "passwd": "hunter2", "nested": [{"TOKEN": "t0k3n"}]},
    )
    (event,) = logs.events()
    assert "hunter2" not in logs.stream.getvalue() and "t0k3n" not in logs.stream.getvalue()
    assert event["password"] == REDACTED and event["ssh_private_key"] == REDACTED
    assert event["options"] == {"user": "oneadmin", "passwd": REDACTED, "nested": [{"TOKEN": REDACTED}]}
    assert event["host"] == "xen1"


def test_redaction_leaves_harmless_names_alone() -> None:
    event = redact_secrets(
        None, "info", {"event": "x", "monkey": 1, "keys_seen": 2, "api_key": "k", "key": "k"}
    )
    assert event == {"event": "x", "monkey": 1, "keys_seen": 2, "api_key": REDACTED, "key": REDACTED}


def test_standard_library_records_become_json_too(logs: LogCapture) -> None:
    logging.getLogger("paramiko.transport").warning("host key for %s changed", "xen1")
    (event,) = logs.events()
    assert (event["event"], event["level"], event["logger"]) == (
        "host key for xen1 changed",
        "warning",
        "paramiko.transport",
    )


def test_levels_below_the_configured_one_are_dropped(logs: LogCapture) -> None:
    configure_logging("warning", "json", stream=logs.stream)
    get_logger("test").info("quiet")
    get_logger("test").warning("loud")
    assert [e["event"] for e in logs.events()] == ["loud"]


def test_console_format_is_for_humans(logs: LogCapture) -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    get_logger("test").info("serving", port=50051, password="hunter2")
    line = stream.getvalue()
    assert "serving" in line and "port=50051" in line and "hunter2" not in line
    assert not line.lstrip().startswith("{")
