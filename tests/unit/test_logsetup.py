"""The two log formats, as a person or a log pipeline reads them."""

from __future__ import annotations

import json
import logging

from exporter.logsetup import JsonFormatter, LogfmtFormatter


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("exporter.test", logging.WARNING, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_logfmt_quotes_what_needs_it_and_keeps_text_as_written() -> None:
    line = LogfmtFormatter().format(_record("no auth log source — sshd's lines reach nothing", source="a b"))
    assert 'level=warn logger=exporter.test msg="no auth log source — sshd\'s lines reach nothing"' in line
    assert 'source="a b"' in line


def test_logfmt_escapes_control_characters_a_client_could_send() -> None:
    line = LogfmtFormatter().format(_record("user \x1b[31mroot\nlevel=error"))
    assert "\n" not in line and "\x1b" not in line
    assert r'msg="user \u001b[31mroot\nlevel=error"' in line


def test_json_is_one_object_per_line() -> None:
    line = JsonFormatter().format(_record("a\nb", address="192.0.2.7"))
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["msg"] == "a\nb" and fields["address"] == "192.0.2.7" and fields["level"] == "warn"
