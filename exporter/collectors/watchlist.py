"""The watchlist collector: would a layer keep out an address or network that must always get in?

# HELP ssh_access_watched_address_blocked 1 when that layer would keep the watched address out now.
# TYPE ssh_access_watched_address_blocked gauge
ssh_access_watched_address_blocked{address="192.0.2.10",layer="tcp_wrappers"} 1.0
ssh_access_watched_address_blocked{address="198.51.100.0/24",layer="fail2ban"} 0.0

`address` is the watchlist entry (`--config.file`, key `watchlist`): an address, or a network in CIDR
form (for a network a layer counts when it blocks any address in it). A layer not present on the host
has no series; one that could not be read (verdict unknown) reports 0. Read at scrape time through the
same model as `diagnose` (but fail2ban-server is asked only when its database cannot be read: the
database answers alike, and the server's answer costs it 0.1-0.3 s per scrape with 100,000 bans); nothing
is emitted when the watchlist is empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.registry import Context, register_collector
from exporter.sources.access import AccessReader, LayerVerdict, Network, label


def blocked_family(entries: Sequence[tuple[str, list[LayerVerdict]]]) -> GaugeMetricFamily:
    """One series per watchlist entry (named as written) and present layer."""
    family = GaugeMetricFamily(
        "ssh_access_watched_address_blocked",
        "1 when that layer would keep the watched address (or any address of the network) out now.",
        labels=["address", "layer"],
    )
    for name, found in entries:
        for verdict in found:
            family.add_metric([name, verdict.layer], 1.0 if verdict.blocks else 0.0)
    return family


class WatchlistCollector:
    def __init__(self, reader: AccessReader, watchlist: Sequence[Network], names: Sequence[str] = ()) -> None:
        self.reader = reader
        self.watchlist = tuple(watchlist)
        self.names = tuple(names) if len(names) == len(self.watchlist) else tuple(map(label, self.watchlist))

    def collect(self) -> Iterator[Metric]:
        if self.watchlist:
            results = self.reader.check(self.watchlist)
            yield blocked_family(
                [(name, results[n]) for name, n in zip(self.names, self.watchlist, strict=True)]
            )


def _factory(context: Context) -> WatchlistCollector:
    options = dataclasses.replace(context.options.access(), fail2ban_ask_server=False)
    reader = context.access(options)
    return WatchlistCollector(reader, context.config.watchlist, context.config.watchlist_entries)


register_collector(
    "watchlist",
    _factory,
    enabled=True,
    help="whether each layer would keep the --config.file watchlist's addresses out",
)
