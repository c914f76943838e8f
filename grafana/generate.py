"""The Grafana dashboards, built from code with grafana-foundation-sdk: `make dashboards` writes
grafana/dashboards/*.json, and tests/unit/test_dashboards.py fails when the committed JSON differs.

- `ssh-access-fleet`: one row per host, sortable, each host linking to its host dashboard.
- `ssh-access-host`: one host (or a few) in depth, a row per layer that can keep a client out.

Every query follows the datasource, job, cluster (optional: matches targets without the label) and
instance variables; no datasource UID is written anywhere, so the files import as they are.
"""

# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, TableSortByFieldState
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    TableCellDisplayMode,
    VisibilityMode,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards"
FLEET_UID = "ssh-access-fleet"
HOST_UID = "ssh-access-host"
TAGS = ["ssh", "sshd", "ssh-access-exporter", "security"]

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The target selector every query carries: the variables below, `cluster` matching targets without one.
SEL = 'job=~"$job", cluster=~"$cluster", instance=~"$instance"'
HOST = "job, instance"  # the labels that name one host (a target) in the fleet table

# The builders used here, all of one shape.
Panel = TypeVar("Panel", timeseries.Panel, stat.Panel, table.Panel, statetimeline.Panel)


# --- building blocks --------------------------------------------------------------------------------


def query(expr: str, legend: str = "", *, ref: str = "", instant: bool = False) -> Dataquery:
    q = Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if ref:
        q = q.ref_id(ref)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


GREEN_RED = _thresholds((None, "green"), (1, "red"))  # a count of something wrong: red from 1
RED_GREEN = _thresholds((None, "red"), (1, "green"))  # a count of something needed: red at 0
NEUTRAL = _thresholds((None, "blue"))


def _boolean(zero: tuple[str, str], one: tuple[str, str]) -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text=zero[0], color=zero[1], index=0),
                "1": model.ValueMappingResult(text=one[0], color=one[1], index=1),
            }
        )
    ]


def _common(panel: Panel, title: str, description: str, unit: str, w: int, h: int) -> Panel:
    return panel.title(title).description(description).unit(unit).datasource(DATASOURCE).span(w).height(h)


def right_axis(unit: str) -> list[model.DynamicConfigValue]:
    """Overrides that draw one query against a right axis in its own unit (counts beside times, say)."""
    return [
        model.DynamicConfigValue(id_val="unit", value=unit),
        model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
    ]


def graph(
    title: str, description: str, unit: str, targets: Sequence[Dataquery], *, w: int = 12, h: int = 8
) -> timeseries.Panel:
    panel = timeseries.Panel().fill_opacity(10).min(0)
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    return _common(panel, title, description, unit, w, h)


def single(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Dataquery],
    *,
    w: int = 6,
    h: int = 4,
    thresholds: db.ThresholdsConfig = NEUTRAL,
    mappings: list[model.ValueMapping] | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .thresholds(thresholds)
        .color_mode(BigValueColorMode.BACKGROUND)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if mappings:
        panel = panel.mappings(mappings)
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    return _common(panel, title, description, unit, w, h)


def timeline(
    title: str,
    description: str,
    targets: Sequence[Dataquery],
    mappings: list[model.ValueMapping],
    *,
    neutral: Sequence[str] = (),
    w: int = 12,
    h: int = 6,
) -> statetimeline.Panel:
    """A 0/1 status over time: when did it change, and for how long. The queries of `neutral` (ref ids)
    are facts, neither good nor bad: both values in one colour."""
    panel = (
        statetimeline.Panel()
        .mappings(mappings)
        .thresholds(_thresholds((None, "text")))
        .show_value(VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
    )
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    facts = [mapping.to_json() for mapping in _boolean(("no", "blue"), ("yes", "blue"))]
    for ref in neutral:
        panel = panel.override_by_query(ref, [model.DynamicConfigValue(id_val="mappings", value=facts)])
    return _common(panel, title, description, "bool", w, h)


def grid(
    title: str,
    description: str,
    unit: str,
    columns: Sequence[tuple[str, str]],
    *,
    by: str,
    w: int = 12,
    h: int = 8,
) -> table.Panel:
    """A table of instant queries merged on their labels; `columns` are (header, expression)."""
    panel = table.Panel()
    rename: dict[str, str] = {}
    for index, (header, expr) in enumerate(columns):
        ref = chr(ord("A") + index)
        panel = panel.with_target(query(expr, ref=ref, instant=True))
        rename[f"Value #{ref}" if len(columns) > 1 else "Value"] = header
    keep = [label.strip() for label in by.split(",")]
    panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "indexByName": {name: i for i, name in enumerate([*keep, *rename.values()])},
                "renameByName": rename,
            },
        )
    )
    return _common(panel, title, description, unit, w, h)


def _datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _label_variable(name: str, label: str, source: str, *, optional: bool = False) -> db.QueryVariable:
    variable = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": f"label_values({source}, {name})", "refId": f"{name}-values", "qryType": 1})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*" if optional else ".+")
    )
    if optional:
        variable = variable.description(
            "Optional: a `cluster` target label. All (.*) also matches targets without one."
        )
    return variable


def _variables(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_variable(_datasource_variable())
        .with_variable(_label_variable("job", "Job", 'ssh_access_build_info{job!=""}'))
        .with_variable(
            _label_variable("cluster", "Cluster", 'ssh_access_build_info{job=~"$job"}', optional=True)
        )
        .with_variable(
            _label_variable("instance", "Instance", 'ssh_access_build_info{job=~"$job", cluster=~"$cluster"}')
        )
    )


def _board(title: str, uid: str, description: str) -> db.Dashboard:
    board = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .timezone("browser")
        .refresh("1m")
        .link(
            db.DashboardLink("SSH access")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["ssh-access-exporter"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    alerts = (
        db.AnnotationQuery()
        .name("Alerts firing")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(f'ALERTS{{alertstate="firing", {SEL}}}')
    )
    return _variables(board.annotation(alerts))


# --- fleet overview ---------------------------------------------------------------------------------

# (header, unit, thresholds, expression) per column of the fleet table: one row per host (job, instance).
FLEET_COLUMNS: list[tuple[str, str, db.ThresholdsConfig, str]] = [
    (
        "exporter up",
        "bool",
        RED_GREEN,
        f"max by ({HOST}) (up{{{SEL}}})",
    ),
    (
        "sshd up",
        "bool",
        RED_GREEN,
        # A listener process, or systemd's ssh.socket listening for a socket-activated sshd (older exporters
        # without ssh_access_sshd_socket_activated count as 0 there).
        f"clamp_max(max by ({HOST}) (ssh_access_sshd_listeners{{{SEL}}}) + (max by ({HOST}) "
        f"(ssh_access_sshd_socket_activated{{{SEL}}}) or max by ({HOST}) (ssh_access_sshd_listeners{{{SEL}}}) * 0)"
        ", 1)",
    ),
    (
        "startups / start",
        "percentunit",
        _thresholds((None, "green"), (0.8, "yellow"), (1, "orange")),
        f"max by ({HOST}) (ssh_access_sshd_startups{{{SEL}}}) / max by ({HOST}) "
        f"(ssh_access_sshd_maxstartups_start{{{SEL}}})",
    ),
    (
        "startups / full",
        "percentunit",
        _thresholds((None, "green"), (0.8, "orange"), (1, "red")),
        f"max by ({HOST}) (ssh_access_sshd_startups{{{SEL}}}) / max by ({HOST}) "
        f"(ssh_access_sshd_maxstartups_full{{{SEL}}})",
    ),
    (
        "MaxStartups drops",
        "short",
        GREEN_RED,
        f"round(sum by ({HOST}) (increase(ssh_access_sshd_maxstartups_dropped_connections_total{{{SEL}}}"
        "[$__range])))",
    ),
    (
        "penalty drops",
        "short",
        NEUTRAL,
        f"round(sum by ({HOST}) (increase(ssh_access_sshd_penalty_dropped_connections_total{{{SEL}}}[$__range])))",
    ),
    (
        "banned",
        "short",
        NEUTRAL,
        f"sum by ({HOST}) (ssh_access_banned_addresses{{{SEL}}})",
    ),
    (
        "unenforced bans",
        "short",
        GREEN_RED,
        f"sum by ({HOST}) (ssh_access_unenforced_bans{{{SEL}}})",
    ),
    (
        "wrappers deny all",
        "bool",
        GREEN_RED,
        f"max by ({HOST}) (ssh_access_tcpwrappers_sshd_denies_everyone{{{SEL}}}"
        f" * ssh_access_tcpwrappers_sshd_honoured{{{SEL}}})",
    ),
    (
        "watched blocked",
        "short",
        GREEN_RED,
        f"sum by ({HOST}) (max by ({HOST}, address) (ssh_access_watched_address_blocked{{{SEL}}}))",
    ),
    (
        "alerts firing",
        "short",
        GREEN_RED,
        f'count by ({HOST}) (ALERTS{{alertstate="firing", {SEL}}})'
        f" or 0 * max by ({HOST}) (ssh_access_build_info{{{SEL}}})",
    ),
]

HOST_LINK = (
    f"/d/{HOST_UID}/ssh-access-host?${{datasource:queryparam}}&var-job=${{__data.fields.job}}"
    "&${cluster:queryparam}&var-instance=${__data.fields.instance}&${__url_time_range}"
)


def fleet_table() -> table.Panel:
    description = (
        "One row per host (job, instance); click a column header to sort, a host to open its dashboard. "
        "exporter up: Prometheus scraped it. sshd up: a listener process runs or systemd's ssh.socket listens "
        "for it (socket activation). startups / start and / full: unauthenticated connections against "
        "MaxStartups start (from 1 sshd drops new connections at random) and full (at 1 it drops every one). Drops: connections sshd refused in the dashboard's time range "
        "for MaxStartups and for PerSourcePenalties. banned: addresses every ban tool bans now; unenforced: "
        "of those, addresses no firewall rule blocks. wrappers deny all: hosts.allow/hosts.deny deny every "
        "client and sshd honours them. watched blocked: watchlist entries some layer keeps out now. "
        "alerts firing: Prometheus alerts (ALERTS) of this target."
    )
    panel = grid(
        "Hosts at a glance",
        description,
        "short",
        [(header, expr) for header, _, _, expr in FLEET_COLUMNS],
        by=HOST,
        w=24,
        h=16,
    )
    panel = panel.sort_by([TableSortByFieldState().display_name("alerts firing").desc(True)]).filterable(True)
    panel = panel.override_by_name(
        "instance",
        [
            model.DynamicConfigValue(
                id_val="links",
                value=[{"title": "Host dashboard: ${__data.fields.instance}", "url": HOST_LINK}],
            )
        ],
    )
    for header, unit, thresholds, _ in FLEET_COLUMNS:
        panel = panel.override_by_name(
            header,
            [
                model.DynamicConfigValue(id_val="unit", value=unit),
                model.DynamicConfigValue(id_val="thresholds", value=thresholds.build().to_json()),
                model.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": TableCellDisplayMode.COLOR_BACKGROUND.value}
                ),
            ],
        )
    return panel


# One failed attempt, counted once (see the host dashboard's "Failed attempts vs logins").
ATTEMPTS = f'ssh_access_sshd_auth_failures_total{{method!="none", {SEL}}}'


def fleet() -> db.Dashboard:
    board = _board(
        "SSH access: fleet",
        FLEET_UID,
        "ssh-access-exporter across hosts: which sshd is down, full, dropping, banning without effect or "
        "keeping a watched address out. Each host links to the host dashboard.",
    )
    board = board.with_row(db.Row("Hosts")).with_panel(fleet_table())
    return (
        board.with_row(db.Row("Trends"))
        .with_panel(
            graph(
                "Startups against MaxStartups full, busiest hosts",
                "Unauthenticated connections / MaxStartups full for the 10 busiest hosts. At start/full sshd "
                "drops new connections at random, at 1 it drops every new one (clients print "
                "kex_exchange_identification).",
                "percentunit",
                [
                    query(
                        f"topk(10, max by ({HOST}) (ssh_access_sshd_startups{{{SEL}}}) / max by ({HOST}) "
                        f"(ssh_access_sshd_maxstartups_full{{{SEL}}}))",
                        "{{instance}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Failed attempts, busiest hosts",
                "Failed authentication attempts per second for the 10 hosts with the most, counted once "
                "per attempt: `Failed METHOD for ...` lines without method `none` (the probe a client "
                "sends to learn the methods).",
                "ops",
                [query(f"topk(10, sum by ({HOST}) (rate({ATTEMPTS}[$__rate_interval])))", "{{instance}}")],
            )
        )
        .with_panel(
            graph(
                "Connections refused by sshd",
                "Connections sshd refused per second across the selected hosts: MaxStartups / "
                "PerSourceMaxStartups drops and PerSourcePenalties drops.",
                "ops",
                [
                    query(
                        f"sum(rate(ssh_access_sshd_maxstartups_dropped_connections_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "MaxStartups",
                    ),
                    query(
                        f"sum(rate(ssh_access_sshd_penalty_dropped_connections_total{{{SEL}}}[$__rate_interval]))",
                        "PerSourcePenalties",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Banned addresses by tool",
                "Addresses banned now across the selected hosts, per tool (fail2ban, sshguard, DenyHosts, "
                "CrowdSec), and of those the ones no firewall rule blocks.",
                "short",
                [
                    query(f"sum by (source) (ssh_access_banned_addresses{{{SEL}}})", "{{source}}"),
                    query(f"sum by (source) (ssh_access_unenforced_bans{{{SEL}}})", "{{source}} unenforced"),
                ],
            )
        )
    )


# --- host dashboard ---------------------------------------------------------------------------------

UP_DOWN = _boolean(("down", "red"), ("up", "green"))
YES_NO_BAD = _boolean(("no", "green"), ("yes", "red"))  # 1 is the problem
YES_NO_GOOD = _boolean(("no", "red"), ("yes", "green"))  # 0 is the problem
BY = "instance"  # the host dashboard's series name the instance (and the layer's own labels)


def sshd_row(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_row(db.Row("Is sshd near its limits"))
        .with_panel(
            single(
                "sshd listeners",
                "sshd listener processes running. 0 with socket activation (sshd status below) is normal: "
                "systemd starts sshd at the first connection. 0 without it: every connection is refused.",
                "short",
                [query(f"max by ({BY}) (ssh_access_sshd_listeners{{{SEL}}})", "{{instance}}")],
                w=4,
                thresholds=RED_GREEN,
            )
        )
        .with_panel(
            single(
                "Unauthenticated connections",
                "Connections sshd holds before authentication: what MaxStartups counts.",
                "short",
                [query(f"sum by ({BY}) (ssh_access_sshd_startups{{{SEL}}})", "{{instance}}")],
                w=4,
            )
        )
        .with_panel(
            single(
                "MaxStartups start:rate:full",
                "Effective MaxStartups (from `sshd -T`): random early drop from start with probability rate, "
                "every new connection dropped at full.",
                "short",
                [
                    query(
                        f"max by ({BY}) (ssh_access_sshd_maxstartups_start{{{SEL}}})", "{{instance}} start"
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_maxstartups_rate{{{SEL}}}) * 100",
                        "{{instance}} rate %",
                    ),
                    query(f"max by ({BY}) (ssh_access_sshd_maxstartups_full{{{SEL}}})", "{{instance}} full"),
                ],
                w=8,
            )
        )
        .with_panel(
            single(
                "Config source",
                "Where the effective config came from: `sshd_t` (`sshd -T`, exact) or `file` (the exporter's "
                "own parser, when sshd -T cannot run), the problems that parser met, and how many lines of "
                "them sshd would refuse to start on (the exporter's log names file, line and reason).",
                "short",
                [
                    query(
                        f"max by ({BY}, source) (ssh_access_sshd_config_source{{{SEL}}}) == 1",
                        "{{instance}} {{source}}",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_config_parse_errors{{{SEL}}})",
                        "{{instance}} parse errors",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_config_errors{{{SEL}}})",
                        "{{instance}} lines sshd refuses",
                    ),
                ],
                w=8,
            )
        )
        .with_panel(
            timeline(
                "sshd status",
                "Over time: a listener runs (or systemd's ssh.socket listens for a socket-activated sshd), "
                "`sshd -t` accepts the config (a rejected config fails the next restart), a config reload is "
                "pending (config files changed after sshd started: reload or restart it).",
                [
                    query(
                        f"max by ({BY}) (ssh_access_sshd_listeners{{{SEL}}}) > bool 0",
                        "{{instance}} listener",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_socket_activated{{{SEL}}})",
                        "{{instance}} socket activated",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_config_valid{{{SEL}}})", "{{instance}} config valid"
                    ),
                    query(
                        f"1 - max by ({BY}) (ssh_access_sshd_config_reload_pending{{{SEL}}})",
                        "{{instance}} running config current",
                    ),
                ],
                YES_NO_GOOD,
                neutral=["B"],  # socket activation on or off: both are normal
                w=24,
                h=7,
            )
        )
        .with_panel(
            graph(
                "Unauthenticated connections vs MaxStartups",
                "Unauthenticated connections against the effective MaxStartups start (random early drop "
                "begins: clients see kex_exchange_identification) and full (every new connection refused).",
                "short",
                [
                    query(
                        f"sum by ({BY}) (ssh_access_sshd_startups{{{SEL}}})", "{{instance}} unauthenticated"
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_maxstartups_start{{{SEL}}})", "{{instance}} start"
                    ),
                    query(f"max by ({BY}) (ssh_access_sshd_maxstartups_full{{{SEL}}})", "{{instance}} full"),
                ],
            )
        )
        .with_panel(
            graph(
                "Load: startups / MaxStartups start",
                "Per listener, against the values the running sshd reports in its title (1 = at start: new "
                "connections are dropped at random). Hosts whose sshd has no such title: host-wide.",
                "percentunit",
                [
                    query(
                        f"max by ({BY}, listener) (ssh_access_sshd_listener_startups{{{SEL}}}) / on ({BY}, listener)"
                        f" max by ({BY}, listener) (ssh_access_sshd_listener_maxstartups_start{{{SEL}}})",
                        "{{instance}} {{listener}}",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_startups{{{SEL}}}) / on ({BY}) max by ({BY}) "
                        f"(ssh_access_sshd_maxstartups_start{{{SEL}}}) unless on ({BY}) "
                        f"ssh_access_sshd_listener_maxstartups_start{{{SEL}}}",
                        "{{instance}} (no listener title: host-wide)",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Unauthenticated connections by stage",
                "accepted: TCP accepted, no banner yet; preauth: key exchange; authenticating: user known, "
                "authentication in progress. Many `accepted`: clients or scanners that stall before the banner.",
                "short",
                [
                    query(
                        f"sum by (stage) (ssh_access_sshd_unauthenticated_connections{{{SEL}}})", "{{stage}}"
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "Authenticated sessions",
                "Connections past authentication.",
                "short",
                [query(f"sum by ({BY}) (ssh_access_sshd_sessions{{{SEL}}})", "{{instance}}")],
                w=8,
            )
        )
        .with_panel(
            graph(
                "TCP connections on sshd ports by state",
                "As the kernel sees them. Many syn_recv: SYN flood or a full accept queue; many established "
                "with few startups and sessions: connections sshd has not accepted yet.",
                "short",
                [query(f"sum by (state) (ssh_access_sshd_tcp_connections{{{SEL}}}) > 0", "{{state}}")],
                w=8,
            )
        )
        .with_panel(
            grid(
                "Per listener",
                "One row per running listener (the config file it was started with). start/full are what the "
                "running process uses: they differ from the file while a reload is pending. from title 0: an "
                "sshd older than 8.2, startups counted from its pre-auth children.",
                "short",
                [
                    ("startups", f"max by ({BY}, listener) (ssh_access_sshd_listener_startups{{{SEL}}})"),
                    (
                        "start",
                        f"max by ({BY}, listener) (ssh_access_sshd_listener_maxstartups_start{{{SEL}}})",
                    ),
                    ("full", f"max by ({BY}, listener) (ssh_access_sshd_listener_maxstartups_full{{{SEL}}})"),
                    (
                        "reload pending",
                        f"max by ({BY}, listener) (ssh_access_sshd_config_reload_pending{{{SEL}}})",
                    ),
                    (
                        "from title",
                        f"max by ({BY}, listener) (ssh_access_sshd_listener_startups_from_title{{{SEL}}})",
                    ),
                    (
                        "uptime (s)",
                        f"time() - max by ({BY}, listener) (ssh_access_sshd_listener_start_time_seconds{{{SEL}}})",
                    ),
                ],
                by=f"{BY}, listener",
                w=14,
            )
        )
        .with_panel(
            grid(
                "Effective limits",
                "From `sshd -T` (or the config file parser). PerSourceMaxStartups +Inf: none. NetBlockSize: "
                "the prefix PerSource limits and penalties group addresses by. LoginGraceTime 0: no limit.",
                "short",
                [
                    (
                        "PerSourceMaxStartups",
                        f"max by ({BY}) (ssh_access_sshd_persource_maxstartups{{{SEL}}})",
                    ),
                    (
                        "NetBlockSize v4",
                        f'max by ({BY}) (ssh_access_sshd_persource_netblock_prefix_length{{family="ipv4", {SEL}}})',
                    ),
                    (
                        "NetBlockSize v6",
                        f'max by ({BY}) (ssh_access_sshd_persource_netblock_prefix_length{{family="ipv6", {SEL}}})',
                    ),
                    (
                        "LoginGraceTime (s)",
                        f"max by ({BY}) (ssh_access_sshd_login_grace_time_seconds{{{SEL}}})",
                    ),
                    ("MaxAuthTries", f"max by ({BY}) (ssh_access_sshd_max_auth_tries{{{SEL}}})"),
                    (
                        "PerSourcePenalties",
                        f"max by ({BY}) (ssh_access_sshd_persource_penalties_enabled{{{SEL}}})",
                    ),
                ],
                by=BY,
                w=10,
            )
        )
    )


def kept_out_row(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_row(db.Row("Who is kept out"))
        .with_panel(
            graph(
                "sshd log events",
                "Classified auth log events per second, one event per line. Not a count of attempts: one "
                "attempt can write several lines (see Failed attempts vs logins). wrapper_refused: hosts.deny; "
                "maxstartups_drop / penalty_drop: refused by sshd itself; banner_error / preauth_disconnect: "
                "clients that hung up early.",
                "ops",
                [
                    query(
                        f"sum by (event) (rate(ssh_access_sshd_events_total{{{SEL}}}[$__rate_interval])) > 0",
                        "{{event}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Failed attempts vs logins",
                "Failed authentication attempts against accepted logins, each counted once: a `Failed METHOD "
                "for [invalid user] USER` line is written once per rejected attempt, whether the user exists "
                "or not. invalid_user and pam_auth_failure events are left out because they describe the same "
                "attempts again (an unknown user's password try writes invalid_user, Failed password and a PAM "
                "line); method `none` is left out because it is the client asking which methods exist, not an "
                "attempt. A locked-out user shows as failures with no accepted logins.",
                "ops",
                [
                    query(f"sum(rate({ATTEMPTS}[$__rate_interval]))", "failed attempts"),
                    query(
                        f'sum(rate(ssh_access_sshd_events_total{{event="auth_accepted", {SEL}}}[$__rate_interval]))',
                        "accepted logins",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Failed authentications by method",
                "`Failed METHOD for ...` lines per second by method (none: the client's probe for the "
                "methods the server offers).",
                "ops",
                [
                    query(
                        f"sum by (method) (rate(ssh_access_sshd_auth_failures_total{{{SEL}}}[$__rate_interval]))",
                        "{{method}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "MaxStartups drops",
                "Connections sshd refused for MaxStartups / PerSourceMaxStartups per interval (clients read "
                '"Exceeded MaxStartups" and print kex_exchange_identification), and whether a throttling '
                "episode is open (1).",
                "short",
                [
                    query(
                        f"sum by ({BY}) (increase(ssh_access_sshd_maxstartups_dropped_connections_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "{{instance}} dropped",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_sshd_maxstartups_throttling{{{SEL}}})",
                        "{{instance}} throttling",
                    ),
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "PerSourcePenalties",
                "Penalties put in force per interval, by reason (OpenSSH 9.8+), and connections refused while "
                "a penalty runs.",
                "short",
                [
                    query(
                        f"sum by (reason) (increase(ssh_access_sshd_penalties_total{{{SEL}}}[$__rate_interval]))",
                        "{{reason}}",
                    ),
                    query(
                        f"sum(increase(ssh_access_sshd_penalty_dropped_connections_total{{{SEL}}}[$__rate_interval]))",
                        "connections refused",
                    ),
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "TCP wrapper refusals (hosts.deny)",
                "`refused connect from ...` per interval: hosts.allow / hosts.deny keep these clients out (they "
                'see "Connection reset by peer").',
                "short",
                [
                    query(
                        f'sum by ({BY}) (increase(ssh_access_sshd_events_total{{event="wrapper_refused", {SEL}}}'
                        "[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            grid(
                "Top offenders",
                "Addresses with the most failure events in the exporter's last hour (bounded top-N).",
                "short",
                [
                    (
                        "failures",
                        f"topk(20, max by ({BY}, address) (ssh_access_sshd_top_offender_failures{{{SEL}}}))",
                    )
                ],
                by=f"{BY}, address",
                w=16,
            )
        )
    )


def bans_row(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_row(db.Row("Ban tools"))
        .with_panel(
            graph(
                "Banned addresses by tool and jail",
                "Addresses banned now per tool (fail2ban, sshguard, DenyHosts, CrowdSec) and jail / set / "
                "scenario, and those no firewall rule or set blocks (unenforced: the ban does not work).",
                "short",
                [
                    query(
                        f"sum by (source, jail) (ssh_access_banned_addresses{{{SEL}}})", "{{source}} {{jail}}"
                    ),
                    query(
                        f"sum by (source, jail) (ssh_access_unenforced_bans{{{SEL}}}) > 0",
                        "{{source}} {{jail}} unenforced",
                    ),
                ],
            )
        )
        .with_panel(
            timeline(
                "Ban tools reachable",
                "1: the exporter reached the ban tool (fail2ban's socket or database, sshguard's blocker and "
                "sets, DenyHosts' files, CrowdSec's API or cscli). 0: down or unreadable, its bans unknown.",
                [
                    query(
                        f"max by ({BY}, source) (ssh_access_ban_source_up{{{SEL}}})",
                        "{{instance}} {{source}}",
                    )
                ],
                UP_DOWN,
            )
        )
        .with_panel(
            grid(
                "Watched addresses blocked",
                "Watchlist entries (must always get in) and each layer's verdict now: 1 = that layer keeps "
                "the address out; run `ssh-access-exporter diagnose ADDRESS` on the host.",
                "bool",
                [("blocked", f"max by ({BY}, address, layer) (ssh_access_watched_address_blocked{{{SEL}}})")],
                by=f"{BY}, address, layer",
            )
        )
        .with_panel(
            timeline(
                "fail2ban status",
                "sshd guarded: an enabled jail guards sshd. config valid / no jail missing its log: read with "
                "`fail2ban-client -d` while the server is unreachable (a jail without a log file keeps "
                "fail2ban-server from starting: Debian 12 without rsyslog). data from socket: 0 means the "
                "jails come from the database (server down).",
                [
                    query(
                        f"max by ({BY}) (ssh_access_fail2ban_sshd_guarded{{{SEL}}})",
                        "{{instance}} sshd guarded",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_fail2ban_config_valid{{{SEL}}})",
                        "{{instance}} config valid",
                    ),
                    query(
                        f"1 - max by ({BY}) (ssh_access_fail2ban_config_jail_log_missing{{{SEL}}})",
                        "{{instance}} no jail missing its log",
                    ),
                    query(
                        f'max by ({BY}) (ssh_access_fail2ban_data_source{{source="socket", {SEL}}})',
                        "{{instance}} data from socket",
                    ),
                ],
                YES_NO_GOOD,
            )
        )
        .with_panel(
            grid(
                "fail2ban jails",
                "Per jail: guards sshd (its filter or journal match selects sshd), covers sshd's port (its ban "
                "actions block every port sshd listens on: 0 = bans that do not keep anyone out), log files "
                "missing (the jail sees nothing from them), bans now, addresses failing (within findtime, not "
                "banned yet), permanent bans (database only), bantime, findtime, maxretry.",
                "short",
                [
                    ("guards sshd", f"max by ({BY}, jail) (ssh_access_fail2ban_jail_guards_sshd{{{SEL}}})"),
                    (
                        "covers sshd port",
                        f"max by ({BY}, jail) (ssh_access_fail2ban_jail_covers_sshd_port{{{SEL}}})",
                    ),
                    (
                        "logs missing",
                        f"max by ({BY}, jail) (ssh_access_fail2ban_jail_log_files_missing{{{SEL}}})",
                    ),
                    (
                        "banned",
                        f'max by ({BY}, jail) (ssh_access_banned_addresses{{source="fail2ban", {SEL}}})',
                    ),
                    ("failing", f"max by ({BY}, jail) (ssh_access_fail2ban_jail_failing_addresses{{{SEL}}})"),
                    ("permanent", f"max by ({BY}, jail) (ssh_access_fail2ban_permanent_bans{{{SEL}}})"),
                    (
                        "bantime (s)",
                        f"max by ({BY}, jail) (ssh_access_fail2ban_jail_bantime_seconds{{{SEL}}})",
                    ),
                    (
                        "findtime (s)",
                        f"max by ({BY}, jail) (ssh_access_fail2ban_jail_findtime_seconds{{{SEL}}})",
                    ),
                    ("maxretry", f"max by ({BY}, jail) (ssh_access_fail2ban_jail_maxretry{{{SEL}}})"),
                ],
                by=f"{BY}, jail",
                w=24,
            )
        )
        .with_panel(
            graph(
                "fail2ban bans and failures",
                "Per jail, per interval: bans and failures fail2ban's filter matched (its own counters, reset "
                "when fail2ban-server restarts; socket only).",
                "short",
                [
                    query(
                        f"sum by (jail) (increase(ssh_access_fail2ban_jail_bans_total{{{SEL}}}[$__rate_interval]))",
                        "{{jail}} bans",
                    ),
                    query(
                        f"sum by (jail) (increase(ssh_access_fail2ban_jail_failures_total{{{SEL}}}[$__rate_interval]))",
                        "{{jail}} failures",
                    ),
                ],
            )
        )
        .with_panel(
            grid(
                "fail2ban server",
                "fail2ban-server's version, when it started (its per-jail totals count from there) and what "
                "each jail reads (backend, log paths, journal match).",
                "short",
                [
                    ("version", f"max by ({BY}, version) (ssh_access_fail2ban_version_info{{{SEL}}})"),
                    (
                        "uptime (s)",
                        f"time() - max by ({BY}) (ssh_access_fail2ban_server_start_time_seconds{{{SEL}}})",
                    ),
                ],
                by=f"{BY}, version",
            )
        )
        .with_panel(
            grid(
                "fail2ban jail inputs",
                "What each jail reads: backend (file or systemd), log paths, journal match.",
                "short",
                [
                    (
                        "jail",
                        f"max by ({BY}, jail, backend, logpath, journalmatch) (ssh_access_fail2ban_jail_info{{{SEL}}})",
                    )
                ],
                by=f"{BY}, jail, backend, logpath, journalmatch",
                w=24,
                h=6,
            )
        )
        .with_panel(
            grid(
                "CrowdSec decisions",
                "Active decisions of scenarios whose name mentions ssh, by scenario, origin (crowdsec: this "
                "host's detection; CAPI / lists: community blocklists) and action.",
                "short",
                [
                    (
                        "decisions",
                        f"sum by ({BY}, scenario, origin, action) (ssh_access_crowdsec_ssh_decisions{{{SEL}}})",
                    )
                ],
                by=f"{BY}, scenario, origin, action",
            )
        )
        .with_panel(
            graph(
                "DenyHosts",
                "Addresses DenyHosts has recorded failures for, by kind (its work directory), and the hours "
                "since its newest hosts.deny entry (right axis). Its entries block with the daemon stopped; 0 daemon "
                "running is normal when it runs from cron.",
                "short",
                [
                    query(
                        f"sum by (kind) (ssh_access_denyhosts_tracked_addresses{{{SEL}}})", "tracked {{kind}}"
                    ),
                    query(
                        f"(time() - max by ({BY}) (ssh_access_denyhosts_last_ban_timestamp_seconds{{{SEL}}})) / 3600",
                        "{{instance}} hours since last ban",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_denyhosts_daemon_running{{{SEL}}})",
                        "{{instance}} daemon running",
                    ),
                ],
                w=12,
            ).override_by_query("B", right_axis("h"))
        )
        .with_panel(
            graph(
                "sshguard",
                "Addresses sshguard blocks now, per backend: its nft sets, ipsets or the hosts.allow block.",
                "short",
                [
                    query(
                        f'sum by (jail) (ssh_access_banned_addresses{{source="sshguard", {SEL}}})',
                        "{{jail}}",
                    )
                ],
                w=24,
                h=6,
            )
        )
    )


def firewall_row(board: db.Dashboard) -> db.Dashboard:
    chain = "backend, family, table, chain"
    return (
        board.with_row(db.Row("Firewall"))
        .with_panel(
            graph(
                "Packets dropped on the way to sshd",
                "Packets per second (and bits per second, right axis) that drop/reject rules reachable by "
                "traffic to sshd's ports dropped, per chain: the firewall keeping clients (banned or not) out.",
                "pps",
                [
                    query(
                        f"sum by ({chain}) (rate(ssh_access_firewall_sshd_blocked_packets_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "{{backend}} {{table}} {{chain}}",
                    ),
                    query(
                        f"sum by ({chain}) (rate(ssh_access_firewall_sshd_blocked_bytes_total{{{SEL}}}"
                        "[$__rate_interval])) * 8",
                        "{{backend}} {{table}} {{chain}} bits/s",
                    ),
                ],
            ).override_by_query("B", right_axis("bps"))
        )
        .with_panel(
            graph(
                "Address set entries",
                "Entries (addresses, prefixes, ranges) per nft set or ipset, by owner (fail2ban, sshguard, "
                "crowdsec, or empty).",
                "short",
                [
                    query(
                        f"sum by (backend, table, set, owner) (ssh_access_firewall_set_entries{{{SEL}}})",
                        "{{backend}} {{table}} {{set}} {{owner}}",
                    )
                ],
            )
        )
        .with_panel(
            grid(
                "Firewall chains",
                "Per chain: rules, drop/reject rules traffic to sshd's ports can reach, source addresses its "
                "drop/reject rules name one by one (fail2ban's f2b-JAIL chains), and the policy of base chains "
                "on the input path (1 on drop: only what is accepted gets in).",
                "short",
                [
                    ("rules", f"sum by ({BY}, {chain}) (ssh_access_firewall_chain_rules{{{SEL}}})"),
                    (
                        "blocking sshd",
                        f"max by ({BY}, {chain}) (ssh_access_firewall_sshd_blocking_rules{{{SEL}}})",
                    ),
                    (
                        "addresses",
                        f"max by ({BY}, {chain}) (ssh_access_firewall_chain_blocked_addresses{{{SEL}}})",
                    ),
                    (
                        "policy drop",
                        f'max by ({BY}, {chain}) (ssh_access_firewall_input_policy{{policy="drop", {SEL}}})',
                    ),
                ],
                by=f"{BY}, {chain}",
                w=24,
            )
        )
        .with_panel(
            grid(
                "Sets blocking sshd",
                "1: a drop/reject rule that traffic to sshd's ports reaches matches sources against the set. "
                "0 for a ban tool's set: its bans are not enforced.",
                "bool",
                [
                    (
                        "blocking",
                        f"max by ({BY}, backend, family, table, set) (ssh_access_firewall_set_blocking{{{SEL}}})",
                    )
                ],
                by=f"{BY}, backend, family, table, set",
                w=16,
            )
        )
        .with_panel(
            single(
                "Legacy iptables tables",
                "Legacy (non-nft) iptables tables present; 0 on nft-only hosts. Rules in both worlds at once "
                "are easy to miss.",
                "short",
                [query(f"max by ({BY}) (ssh_access_firewall_legacy_tables{{{SEL}}})", "{{instance}}")],
                w=8,
                h=8,
            )
        )
    )


def tcpwrappers_row(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_row(db.Row("TCP wrappers"))
        .with_panel(
            timeline(
                "TCP wrappers status",
                "deny everyone: hosts.allow/hosts.deny leave no client a way in (e.g. `sshd: ALL` in "
                "hosts.deny with nothing for sshd in hosts.allow). honoured: sshd is linked with libwrap "
                "(Debian, Ubuntu) and applies the files at all.",
                [
                    query(
                        f"max by ({BY}) (ssh_access_tcpwrappers_sshd_denies_everyone{{{SEL}}})",
                        "{{instance}} deny everyone",
                    ),
                    query(
                        f"max by ({BY}) (ssh_access_tcpwrappers_sshd_honoured{{{SEL}}})",
                        "{{instance}} honoured",
                    ),
                ],
                YES_NO_BAD,
                neutral=["B"],  # sshd applying the files says whether the rest matters
            )
        )
        .with_panel(
            grid(
                "hosts.allow / hosts.deny",
                "Per file: rules for sshd by verdict, rules that depend on a name, ident or netgroup lookup "
                "(libwrap resolves for them: slow or wrong DNS changes who gets in), lines libwrap skips, "
                "rejects or stops at, and the age of the file (empty: missing, read as empty).",
                "short",
                [
                    (
                        "allow rules",
                        f'max by ({BY}, file) (ssh_access_tcpwrappers_rules{{verdict="allow", {SEL}}})',
                    ),
                    (
                        "deny rules",
                        f'max by ({BY}, file) (ssh_access_tcpwrappers_rules{{verdict="deny", {SEL}}})',
                    ),
                    (
                        "DNS dependent",
                        f"max by ({BY}, file) (ssh_access_tcpwrappers_dns_dependent_rules{{{SEL}}})",
                    ),
                    ("parse errors", f"max by ({BY}, file) (ssh_access_tcpwrappers_parse_errors{{{SEL}}})"),
                    (
                        "age (s)",
                        f"time() - max by ({BY}, file) (ssh_access_tcpwrappers_file_modification_timestamp_seconds"
                        f"{{{SEL}}})",
                    ),
                ],
                by=f"{BY}, file",
            )
        )
        .with_panel(
            grid(
                "sshd binaries and libwrap",
                "1: that sshd binary (sshd, and sshd-session of OpenSSH 9.8+) is linked with libwrap.",
                "bool",
                [("libwrap", f"max by ({BY}, binary) (ssh_access_tcpwrappers_sshd_binary_libwrap{{{SEL}}})")],
                by=f"{BY}, binary",
                w=24,
                h=6,
            )
        )
    )


def health_row(board: db.Dashboard) -> db.Dashboard:
    return (
        board.with_row(db.Row("Exporter health"))
        .with_panel(
            timeline(
                "Collectors",
                "1: the collector's last scrape worked; 0: it failed and its metrics are missing (the reason is "
                "in the exporter's log).",
                [query(f"max by (collector) (ssh_access_collector_success{{{SEL}}})", "{{collector}}")],
                _boolean(("failed", "red"), ("ok", "green")),
            )
        )
        .with_panel(
            timeline(
                "Auth log sources",
                "1: the authlog collector reads that source (a file or the journal) now. Every log-based "
                "panel above goes quiet when none does.",
                [query(f"max by (source) (ssh_access_authlog_source_up{{{SEL}}})", "{{source}}")],
                UP_DOWN,
            )
        )
        .with_panel(
            graph(
                "Collector duration",
                "Time each collector took in the last scrape.",
                "s",
                [
                    query(
                        f"max by (collector) (ssh_access_collector_duration_seconds{{{SEL}}})",
                        "{{collector}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "Auth log lines read",
                "Lines read per second per source, and sshd lines no known wording matched (a new OpenSSH "
                "wording: the event counters miss those).",
                "ops",
                [
                    query(
                        f"sum by (source) (rate(ssh_access_authlog_lines_read_total{{{SEL}}}[$__rate_interval]))",
                        "{{source}} read",
                    ),
                    query(
                        f"sum by (source) (rate(ssh_access_authlog_lines_unmatched_total{{{SEL}}}[$__rate_interval]))",
                        "{{source}} unmatched",
                    ),
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "Age of the last sshd log event",
                "Seconds since the newest sshd event of each source, and log rotations followed in the last "
                "hour (right axis). An age growing without end on a busy host: the tailer lost its source.",
                "s",
                [
                    query(
                        f"time() - max by (source) (ssh_access_authlog_last_event_timestamp_seconds{{{SEL}}})",
                        "{{source}}",
                    ),
                    query(
                        f"sum by (source) (increase(ssh_access_authlog_rotations_total{{{SEL}}}[1h]))",
                        "{{source}} rotations (1h)",
                    ),
                ],
                w=8,
            ).override_by_query("B", right_axis("short"))
        )
        .with_panel(
            grid(
                "Versions",
                "Exporter and sshd versions per host.",
                "short",
                [
                    ("exporter", f"max by ({BY}, version) (ssh_access_build_info{{{SEL}}})"),
                    ("sshd", f"max by ({BY}, release) (ssh_access_sshd_version_info{{{SEL}}})"),
                ],
                by=f"{BY}, version, release",
                w=24,
                h=5,
            )
        )
    )


def host() -> db.Dashboard:
    board = _board(
        "SSH access: host",
        HOST_UID,
        "ssh-access-exporter on one host: is sshd near its limits, who is kept out and by which layer "
        "(sshd itself, ban tools, firewall, TCP wrappers), and is the exporter itself healthy.",
    )
    for row in (sshd_row, kept_out_row, bans_row, firewall_row, tcpwrappers_row, health_row):
        board = row(board)
    return board


# --- output -----------------------------------------------------------------------------------------

DASHBOARDS = {"ssh-access-fleet.json": fleet, "ssh-access-host.json": host}


def render() -> dict[str, str]:
    """File name -> the JSON text `make dashboards` writes."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    rendered = {}
    for name, build in DASHBOARDS.items():
        board = build().build()
        for number, panel in enumerate(board.panels or (), start=1):
            panel.id_val = number  # Grafana wants them unique; the SDK leaves them unset
        rendered[name] = encoder.encode(board) + "\n"
    return rendered


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
