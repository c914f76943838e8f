"""TCP wrappers (hosts_access(5)): the access control files, their verdicts, and whether sshd uses them.

`syntax` parses the files, `evaluate` decides for a client as libwrap does (never resolving a name),
`libwrap` tells whether sshd links libwrap, `reader` puts them together for the collector and `diagnose`.
"""

from exporter.sources.tcpwrappers.evaluate import AccessRules, ClientInfo, Verdict, evaluate
from exporter.sources.tcpwrappers.syntax import Rule, Table, parse_table

__all__ = ["AccessRules", "ClientInfo", "Rule", "Table", "Verdict", "evaluate", "parse_table"]
