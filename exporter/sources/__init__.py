"""Readers: turn host state (files, /proc, sockets, firewall, logs) into plain typed data."""
