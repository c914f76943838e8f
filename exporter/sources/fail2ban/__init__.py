"""fail2ban: its socket protocol (restricted unpickling), its sqlite database, and the model of its jails."""
