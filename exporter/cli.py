"""`ssh-access-exporter` without a subcommand: serve metrics (exporter.__main__ dispatches the others).

Flags follow Prometheus exporter conventions (`--web.listen-address`, `--path.rootfs`,
`--collector.NAME` / `--no-collector.NAME`); the ones every view shares are exporter.options'. Bad
flags or config exit 2 with a message naming the key.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__
from exporter.allocator import Trimmer, limit_arenas
from exporter.config import ConfigError
from exporter.diagnose import diagnosis, to_json
from exporter.flagparse import FlagParser
from exporter.logsetup import setup_logging
from exporter.options import CollectorSwitch, LogOptions, Options, add_host_flags, add_scrape_timeout_flag
from exporter.registry import Context, build_collectors, registrations
from exporter.scrape import ScrapeCollector
from exporter.sources.access import parse_target
from exporter.sources.sshd.held_files import raise_file_limit
from exporter.web.app import make_app, make_http_server
from exporter.web.config import load_web_config
from exporter.web.diagnose import DiagnoseApp, OneAtATime
from exporter.web.middleware import WebConfigMiddleware
from exporter.web.server import parse_listen_address
from exporter.web.settings import WebConfig
from exporter.web.tls import TLSContextSource

log = logging.getLogger("exporter")

# From SIGTERM to exit at most: systemd's default stop timeout is 90 s; this is well inside it.
SHUTDOWN_DEADLINE = 3.0


def _listen_address(value: str) -> str:
    """--web.listen-address, checked when the flags are parsed: before anything is read or bound."""
    try:
        parse_listen_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def serve_parser(
    collectors: Iterable[CollectorSwitch], subcommands: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The server's flags: its own (web, scrape) and the shared ones; `subcommands` (exporter.__main__'s)
    are named in the description."""
    description = "Prometheus exporter: who is kept out of sshd, by which layer, and is sshd near its limits."
    if subcommands:
        description += f" Subcommands: {', '.join(subcommands)} (see SUBCOMMAND --help)."
    parser = FlagParser(prog="ssh-access-exporter", description=description, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"ssh-access-exporter {__version__}")
    parser.add_argument(
        "--web.listen-address",
        type=_listen_address,
        default=":9822",
        help="HOST:PORT to listen on; HOST is an IPv4 address, an [IPv6] address, localhost, or nothing for "
        "every address (names are not looked up; default :9822)",
    )
    parser.add_argument(
        "--web.telemetry-path", default="/metrics", help="path of the metrics (default /metrics)"
    )
    parser.add_argument(
        "--web.config.file",
        default=None,
        help="exporter-toolkit web config (YAML): TLS, client certificates, basic auth, extra headers",
    )
    parser.add_argument(
        "--web.enable-diagnose",
        action="store_true",
        help="answer GET /diagnose?address=ADDRESS with `diagnose ADDRESS --json` (one at a time, cached "
        "for 5 s; behind the web config's TLS and basic auth), for `diagnose --fleet`; off by default",
    )
    add_scrape_timeout_flag(parser)
    add_host_flags(parser, collectors)
    return parser


def serve(argv: Sequence[str], subcommands: Sequence[str] = ()) -> int:
    """Serves until SIGTERM or SIGINT, then ends the process itself (see _exit_after): only a start-up
    error returns."""
    limit_arenas()  # before any thread starts (exporter.allocator)
    switches = registrations()
    parser = serve_parser(switches, subcommands)
    args = parser.parse_args(argv)
    logging_options = LogOptions.from_namespace(args)
    setup_logging(logging_options.level, logging_options.format)
    raise_file_limit()
    try:
        listen = str(getattr(args, "web.listen_address"))
        telemetry_path = str(getattr(args, "web.telemetry_path"))
        if not telemetry_path.startswith("/") or telemetry_path == "/":
            raise ConfigError(f"web.telemetry-path: {telemetry_path!r} must start with / and not be /")
        web_config_file = getattr(args, "web.config.file")
        web_config = load_web_config(Path(str(web_config_file))) if web_config_file else WebConfig()
        tls = TLSContextSource(web_config.tls) if web_config.tls else None
        context = Context(Options.from_namespace(args, switches))
        collectors = build_collectors(context)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))

    scraper = ScrapeCollector(collectors, timeout=float(getattr(args, "scrape.timeout")), trimmer=Trimmer())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    diagnose_app = _diagnose_app(context) if getattr(args, "web.enable_diagnose") else None
    try:
        app = WebConfigMiddleware(make_app(registry, scraper, telemetry_path, diagnose_app), web_config)
        server = make_http_server(listen, app, tls)
    except OSError as exc:
        log.error("cannot listen", extra={"address": listen, "err": str(exc)})
        return 1

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        _exit_after(SHUTDOWN_DEADLINE)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "listening",
        extra={
            "address": listen,
            "version": __version__,
            "collectors": ",".join(collectors) or "none",
            "tls": tls is not None,
            "basic_auth": bool(web_config.basic_auth_users),
        },
    )
    try:
        server.serve_forever()
    finally:
        _exit_after(SHUTDOWN_DEADLINE)
        server.server_close()
        scraper.close()
        for collector in collectors.values():
            close = getattr(collector, "close", None)
            if callable(close):
                close()
        context.close()
    _exit_now(0)


def _diagnose_app(context: Context) -> DiagnoseApp:
    """/diagnose through the server's own Context: its one SshdReader and its options."""
    return DiagnoseApp(OneAtATime(lambda address: to_json(diagnosis(context, address))), parse_target)


def _exit_after(seconds: float) -> None:
    """Ends the process `seconds` from now, whatever its threads are doing.

    A collector thread stuck in a read (a dead peer's socket, say) can be neither interrupted nor joined,
    and Python joins every pool thread at exit: without this the exporter logs "shutting down" and never
    ends, and systemd has to kill it. Armed when the signal arrives, so a clean-up step that blocks is
    bounded too.
    """
    timer = threading.Timer(seconds, _exit_now, args=(0, "clean-up overran; exiting without waiting"))
    timer.daemon = True
    timer.start()


def _exit_now(code: int, why: str = "") -> NoReturn:
    """Log what is pending, then leave without joining threads (see _exit_after)."""
    if why:
        log.warning(why, extra={"seconds": SHUTDOWN_DEADLINE})
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
