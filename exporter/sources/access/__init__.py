"""Why is this address kept out of sshd? Every layer's verdict for one address or network."""

from exporter.sources.access.layers import HostFacts, verdicts
from exporter.sources.access.model import LAYERS, LayerVerdict, Network, label, parse_target
from exporter.sources.access.reader import AccessOptions, AccessReader

__all__ = [
    "LAYERS",
    "AccessOptions",
    "AccessReader",
    "HostFacts",
    "LayerVerdict",
    "Network",
    "label",
    "parse_target",
    "verdicts",
]
