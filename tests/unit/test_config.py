from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.web.config import load_web_config


def test_empty_config_is_defaults() -> None:
    assert parse_config("").watchlist == ()


def test_watchlist_accepts_addresses_and_networks() -> None:
    config = parse_config("watchlist:\n  - 192.0.2.10\n  - 198.51.100.0/24\n  - 2001:db8::/32\n")
    assert config.watchlist == (
        ipaddress.ip_network("192.0.2.10/32"),
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("watchlsit: []\n", "watchlsit"),
        ("watchlist: 192.0.2.1\n", "watchlist"),
        ("watchlist: [not-an-address]\n", "watchlist[0]"),
        ("- a\n- b\n", "top level"),
        ("watchlist: [\n", "not valid YAML"),
        ("watchlist: [192.0.2.1, 198.51.100.0/24, 192.0.2.1/32]\n", "watchlist[2]"),
        # a second list would silently replace the first: the first's addresses would go unwatched
        ("watchlist: [192.0.2.1]\nwatchlist: [198.51.100.0/24]\n", "watchlist: given twice"),
    ],
)
def test_bad_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text)


def _watchlist_text(count: int) -> tuple[list[str], str]:
    entries = [f"2001:db8:{i // 256:x}:{i % 256:x}::/64" for i in range(count)]
    return entries, "watchlist:\n" + "".join(f"  - {entry}\n" for entry in entries)


def _parse_cpu_seconds(text: str) -> float:
    started = time.process_time()  # CPU time: what other processes on the machine do does not count
    parse_config(text)
    return time.process_time() - started


def test_twenty_thousand_watchlist_entries_check_in_linear_time() -> None:
    """The duplicate check hashes: 20,000 entries took 34 s when each was compared with every other.
    Four times the entries cost about four times the CPU (sixteen, were the check quadratic)."""
    entries, text = _watchlist_text(20_000)
    assert len(parse_config(text).watchlist) == 20_000
    with pytest.raises(ConfigError, match=r"watchlist\[20000\]: .* repeats watchlist\[7\]"):
        parse_config(text + f"  - {entries[7].replace('::/64', ':0::/64')}\n")
    small = min(_parse_cpu_seconds(_watchlist_text(2_500)[1]) for _ in range(3))
    large = min(_parse_cpu_seconds(_watchlist_text(10_000)[1]) for _ in range(2))
    assert large < 8 * small, (small, large)


def test_a_config_file_that_is_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    """The exporter starts as root from a unit: a FIFO named by --config.file blocked start-up for ever."""
    fifo = tmp_path / "config.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("watchlist:\n  - 192.0.2.1\n    bad: [\n", "line 3, column 8: mapping values are not allowed here"),
        (
            'watchlist:\n  - "192.0.2.1\n',
            "line 3, column 1: found unexpected end of stream (while scanning a quoted scalar from line 2, "
            "column 5)",
        ),
        (
            "watchlist:\n\t- 192.0.2.1\n",
            "line 2, column 1: found character '\\t' that cannot start any token",
        ),
    ],
)
def test_a_yaml_syntax_error_is_one_line_naming_file_line_and_column(text: str, where: str) -> None:
    """PyYAML's own message spans four lines and calls the file `<unicode string>`."""
    with pytest.raises(ConfigError) as error:
        parse_config(text, origin="/etc/x.yml")
    assert str(error.value).startswith(f"/etc/x.yml: not valid YAML: {where}")
    assert "\n" not in str(error.value) and "<unicode string>" not in str(error.value)


def test_a_web_config_yaml_error_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: a\n   key_file: b\n")
    with pytest.raises(ConfigError, match=f"^{path}: not valid YAML: line 3, column 12: mapping values"):
        load_web_config(path)
