"""sshd, the layer every other one stands in front of: its effective config, its binary, its listener
and connection processes, the sockets of its ports; `reader.SshdReader` puts them into one snapshot."""
