"""The packet filter as sshd sees it: legacy iptables, nftables (native and iptables-nft) and ipsets.

`model` holds the typed rules, chains and sets; `iptables`, `nft` and `ipset` parse each tool's output;
`enforcement` walks the input path to find what blocks traffic to sshd's ports; `reader` runs the tools.
"""
