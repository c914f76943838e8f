"""sshd's log lines as typed events: framing, classification, counters, and the tailers that feed them."""
