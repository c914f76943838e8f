"""Command line: `ssh-access-exporter` serves metrics; subcommands are other views of the same host model.

Flags follow Prometheus exporter conventions (`--web.listen-address`, `--path.rootfs`,
`--collector.NAME` / `--no-collector.NAME`). Bad flags or config exit 2 with a message naming the key.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__, diagnose, replay
from exporter.config import ConfigError, load_config
from exporter.logsetup import LEVELS, setup_logging
from exporter.registry import Collector, Context, registrations
from exporter.scrape import ScrapeCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.held_files import raise_file_limit
from exporter.web.app import make_app, make_http_server, parse_listen_address
from exporter.web.config import TLSContextSource, WebConfig, WebConfigMiddleware, load_web_config

log = logging.getLogger("exporter")

EXIT_USAGE = 2
# From SIGTERM to exit at most: systemd's default stop timeout is 90 s; this is well inside it.
SHUTDOWN_DEADLINE = 3.0


def flag(args: argparse.Namespace, name: str) -> object:
    """The value of a dotted flag (`flag(args, "collector.sshd.binary")`)."""
    return getattr(args, name.replace("-", "_"))


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return seconds


def add_host_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every view that reads the host: paths, config file, logging, collectors."""
    parser.add_argument("--path.rootfs", default="/", help="host root filesystem mount point (default /)")
    parser.add_argument("--path.procfs", default="/proc", help="procfs mount point (default /proc)")
    parser.add_argument("--config.file", default=None, help="YAML file with the watchlist and log sources")
    parser.add_argument("--log.level", default="info", choices=LEVELS, help="minimum level logged")
    parser.add_argument("--log.format", default="logfmt", choices=("logfmt", "json"), help="log line format")
    collectors = parser.add_argument_group("collectors")
    for reg in registrations():
        default = "enabled" if reg.enabled else "disabled"
        collectors.add_argument(
            f"--collector.{reg.name}",
            action=argparse.BooleanOptionalAction,
            default=reg.enabled,
            help=f"{reg.help} (default: {default})",
        )
        if reg.add_flags is not None:
            reg.add_flags(collectors)


def build_context(args: argparse.Namespace) -> Context:
    """Validate paths and the config file into what collectors are built from."""
    paths = HostPaths(Path(str(flag(args, "path.rootfs"))), Path(str(flag(args, "path.procfs"))))
    for name, path in (("path.rootfs", paths.rootfs), ("path.procfs", paths.procfs)):
        if not path.is_dir():
            raise ConfigError(f"{name}: {path} is not a directory")
    config_file = flag(args, "config.file")
    config = load_config(Path(str(config_file)) if config_file else None)
    return Context(paths=paths, args=args, config=config)


def build_collectors(context: Context) -> dict[str, Collector]:
    return {
        reg.name: reg.factory(context)
        for reg in registrations()
        if flag(context.args, f"collector.{reg.name}")
    }


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssh-access-exporter",
        description="Prometheus exporter: who is kept out of sshd, by which layer, and is sshd near its "
        "limits. Subcommands: " + ", ".join(SUBCOMMANDS) + " (see SUBCOMMAND --help).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"ssh-access-exporter {__version__}")
    parser.add_argument("--web.listen-address", default=":9822", help="address to listen on (default :9822)")
    parser.add_argument(
        "--web.telemetry-path", default="/metrics", help="path of the metrics (default /metrics)"
    )
    parser.add_argument(
        "--web.config.file",
        default=None,
        help="exporter-toolkit web config (YAML): TLS, client certificates, basic auth, extra headers",
    )
    parser.add_argument(
        "--scrape.timeout",
        type=_positive_seconds,
        default=8.0,
        help="seconds one collector may take before it is reported failed (default 8)",
    )
    add_host_flags(parser)
    return parser


def serve(argv: Sequence[str]) -> int:
    """Serves until SIGTERM or SIGINT, then ends the process itself (see _exit_after): only a start-up
    error returns."""
    parser = serve_parser()
    args = parser.parse_args(argv)
    setup_logging(str(flag(args, "log.level")), str(flag(args, "log.format")))
    raise_file_limit()
    try:
        listen = str(flag(args, "web.listen-address"))
        parse_listen_address(listen)
        telemetry_path = str(flag(args, "web.telemetry-path"))
        if not telemetry_path.startswith("/") or telemetry_path == "/":
            raise ConfigError(f"web.telemetry-path: {telemetry_path!r} must start with / and not be /")
        web_config_file = flag(args, "web.config.file")
        web_config = load_web_config(Path(str(web_config_file))) if web_config_file else WebConfig()
        tls = TLSContextSource(web_config.tls) if web_config.tls else None
        context = build_context(args)
        collectors = build_collectors(context)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))

    scraper = ScrapeCollector(collectors, timeout=float(str(flag(args, "scrape.timeout"))))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    try:
        app = WebConfigMiddleware(make_app(registry, scraper, telemetry_path), web_config)
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
    _exit_now(0)


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


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"replay": replay.main, "diagnose": diagnose.main}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
