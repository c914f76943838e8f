"""The crowdsec collector against a real, offline CrowdSec (agent and local API) in a network namespace.

CrowdSec reads a temp auth.log fed with failed-password lines from a documentation address; its
ssh-bf scenario bans it. The exporter runs in the same namespace and asks the local API with a bouncer
key, or cscli (a wrapper pointing cscli at the test's config).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exposition import Samples, promtool_check, value
from tests.integration.harness import Crowdsec, Exporter, NetNs, require_root_and

SSH_BF = "crowdsecurity/ssh-bf"


@pytest.fixture(autouse=True)
def _needs_crowdsec() -> None:
    require_root_and("crowdsec", "cscli", "ip", "promtool")


@pytest.fixture
def crowdsec(tmp_path: Path) -> Iterator[Crowdsec]:
    with NetNs(tmp_path / "netns") as netns, Crowdsec(tmp_path / "crowdsec", netns) as server:
        yield server


def _banned(found: Samples, scenario: str) -> float | None:
    return value(found, "ssh_access_banned_addresses", source="crowdsec", jail=scenario)


def _up(found: Samples) -> float | None:
    return value(found, "ssh_access_ban_source_up", source="crowdsec")


def _exporter(crowdsec: Crowdsec, *flags: str) -> Exporter:
    return Exporter("--no-collector.sshd", "--no-collector.fail2ban", *flags, netns=crowdsec.netns)


def _unreachable(exporter: Exporter) -> list[str]:
    """The lines the exporter logged to say CrowdSec is unreachable, as a person reads them."""
    lines = exporter.log().splitlines()
    return [line for line in lines if 'msg="ban source unreachable"' in line and "source=crowdsec" in line]


def test_real_ssh_bruteforce_ban_through_the_local_api(crowdsec: Crowdsec) -> None:
    flag = f"--collector.crowdsec.bouncer-config={crowdsec.bouncer_config}"
    with _exporter(crowdsec, flag) as exporter:
        found = exporter.scrape()
        assert _up(found) == 1
        assert _banned(found, SSH_BF) is None
        crowdsec.attack("192.0.2.50")
        found = exporter.wait_until(lambda f: _banned(f, SSH_BF) == 1, timeout=30)
        assert _banned(found, SSH_BF) == 1, crowdsec.cscli("alerts", "list")
        decisions = "ssh_access_crowdsec_ssh_decisions"
        assert value(found, decisions, scenario=SSH_BF, origin="crowdsec", action="ban") == 1
        assert promtool_check(exporter.text()) is None
        crowdsec.stop()
        found = exporter.scrape()
        assert _up(found) == 0
        assert value(found, "ssh_access_collector_success", collector="crowdsec") == 1
        address = f"127.0.0.1:{crowdsec.port}"
        why = f"local API http://{address}: connect to {address}: Connection refused"
        assert [line.endswith(f'err="{why}"') for line in _unreachable(exporter)] == [True]


def test_a_wrong_bouncer_key_says_what_the_local_api_answered(crowdsec: Crowdsec, tmp_path: Path) -> None:
    config = tmp_path / "bouncer.yaml"
    config.write_text(f"api_url: {crowdsec.url}\napi_key: not-the-key\n")
    with _exporter(crowdsec, f"--collector.crowdsec.bouncer-config={config}") as exporter:
        assert _up(exporter.scrape()) == 0
        # before: "HTTP 403 Forbidden", the local API's reason (in its answer's body) left out
        why = f"local API {crowdsec.url.rstrip('/')}: HTTP 403 Forbidden: access forbidden"
        assert [line.endswith(f'err="{why}"') for line in _unreachable(exporter)] == [True]


def test_cscli_when_there_is_no_bouncer_key(crowdsec: Crowdsec, tmp_path: Path) -> None:
    wrapper = tmp_path / "cscli"
    wrapper.write_text(f'#!/bin/sh\nexec cscli -c {crowdsec.config} "$@"\n')
    wrapper.chmod(0o755)
    crowdsec.cscli("decisions", "add", "--ip", "198.51.100.20", "--reason", "sae manual ban")
    flags = ("--collector.crowdsec.bouncer-config=", f"--collector.crowdsec.cscli={wrapper}")
    with _exporter(crowdsec, *flags) as exporter:
        found = exporter.scrape()
        assert _up(found) == 1
        assert _banned(found, "sae manual ban") == 1
        assert value(found, "ssh_access_crowdsec_ssh_decisions", scenario="sae manual ban", origin="cscli",
                     action="ban") is None  # fmt: skip
        # its local API gone, cscli's whole chain of causes reaches the log, the cause at its end
        crowdsec.stop()
        assert _up(exporter.scrape()) == 0
        logged = _unreachable(exporter)
        assert len(logged) == 1, exporter.log()
        assert 'err="cscli: Unable to list decisions : performing request: Get ' in logged[0]
        assert "could not get jwt token: Post " in logged[0]  # before: the log line ended here
        assert logged[0].endswith(f'dial tcp 127.0.0.1:{crowdsec.port}: connect: connection refused"')
