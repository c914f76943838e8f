// Alerting rules. severity: critical = someone is locked out of sshd now; warning = a lockout is coming
// or a protection is broken; info = what the defences do every day, against the host's own baseline.
// Every alert keeps the target's labels (job, instance, cluster, ...) and the exporter label naming the
// thing to fix (listener, source, jail, collector, address, layer).
{
  local c = $._config,
  local t = c.thresholds,
  local sel = c.exporterSelector,
  local fleet = std.join(', ', c.groupLabels),
  local oneLine(text) = std.strReplace(std.rstripChars(text, '\n'), '\n', ' '),
  local alert(name, severity, duration, expr, summary, description) = {
    alert: name,
    expr: expr,
    'for': duration,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: oneLine(description),
      runbook_url: '%s#%s' % [c.runbookURL, std.asciiLower(name)],
    },
  },
  // "sshd (listener /etc/ssh/sshd_config) on host-a:9822"
  local sshdOn = 'sshd{{ with $labels.listener }} (listener {{ . }}){{ end }} on {{ $labels.instance }}',

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ssh-access-sshd',
        rules: [
          alert(
            'SshAccessSshdDown', 'critical', '2m',
            |||
              ssh_access_sshd_listeners{%(sel)s} == 0
              unless
              ssh_access_sshd_socket_activated{%(sel)s} == 1
            ||| % { sel: sel },
            'sshd is not running: every SSH connection is refused.',
            |||
              No sshd listener process has been running on {{ $labels.instance }} for 2 minutes, and no
              systemd socket unit (ssh.socket) listens on sshd's port in its place.
            |||
          ),
          alert(
            'SshAccessMaxStartupsFull', 'critical', '1m',
            |||
              (
                ssh_access_sshd_listener_startups{%(sel)s}
                >= ssh_access_sshd_listener_maxstartups_full{%(sel)s}
              )
              or
              (
                ssh_access_sshd_startups{%(sel)s} >= ssh_access_sshd_maxstartups_full{%(sel)s}
                unless ignoring (listener)
                ssh_access_sshd_listener_maxstartups_full{%(sel)s}
              )
            ||| % { sel: sel },
            'sshd is at MaxStartups full: every new SSH connection is refused.',
            |||
              %s holds {{ $value }} unauthenticated connections, its MaxStartups full value: every new
              connection is closed before the banner ("kex_exchange_identification: read: Connection reset
              by peer").
            ||| % sshdOn
          ),
          alert(
            'SshAccessMaxStartupsNearStart', 'warning', '2m',
            |||
              (
                ssh_access_sshd_listener_startups{%(sel)s}
                >= ssh_access_sshd_listener_maxstartups_start{%(sel)s}
              )
              or
              (
                ssh_access_sshd_startups{%(sel)s} >= ssh_access_sshd_maxstartups_start{%(sel)s}
                unless ignoring (listener)
                ssh_access_sshd_listener_maxstartups_start{%(sel)s}
              )
            ||| % { sel: sel },
            'sshd is at MaxStartups start: new SSH connections are dropped at random.',
            |||
              %s has held {{ $value }} unauthenticated connections, at or above its MaxStartups start
              value, for 2 minutes.
            ||| % sshdOn
          ),
          alert(
            'SshAccessMaxStartupsDropping', 'warning', '10m',
            'instance:ssh_access_sshd_maxstartups_dropped_connections:rate5m > 0',
            'sshd keeps refusing connections for MaxStartups.',
            |||
              sshd on {{ $labels.instance }} has refused connections for MaxStartups or
              PerSourceMaxStartups for 10 minutes: {{ printf "%.2f" $value }} per second over the last
              5 minutes.
            |||
          ),
          // `sshd -t` decides where the exporter can run it; elsewhere (a fixture rootfs, not root) the
          // exporter's own reading of the files counts the lines sshd would refuse.
          alert(
            'SshAccessSshdConfigInvalid', 'warning', '5m',
            |||
              ssh_access_sshd_config_valid{%(sel)s} == 0
              or
              (
                ssh_access_sshd_config_errors{%(sel)s} > 0
                unless
                ssh_access_sshd_config_valid{%(sel)s}
              )
            ||| % { sel: sel },
            'sshd would refuse its config: the next sshd restart will fail.',
            |||
              The sshd configuration on {{ $labels.instance }} has been rejected for 5 minutes by `sshd -t`
              or, where the exporter cannot run it, by the exporter's own reading of sshd_config and its
              Includes (its log names each file, line and reason). The running sshd keeps working until
              its next restart or the next reboot.
            |||
          ),
          alert(
            'SshAccessSshdConfigReloadPending', 'warning', '15m',
            'ssh_access_sshd_config_reload_pending{%s} == 1' % sel,
            'sshd_config changed but sshd was not restarted: the change takes effect unobserved.',
            |||
              The config files of sshd listener {{ $labels.listener }} on {{ $labels.instance }} changed
              after it started, 15 minutes ago or more.
            |||
          ),
        ],
      },
      {
        name: 'ssh-access-tcpwrappers',
        rules: [
          alert(
            'SshAccessTcpWrappersDenyAll', 'critical', '1m',
            |||
              ssh_access_tcpwrappers_sshd_denies_everyone{%(sel)s} == 1
              and
              ssh_access_tcpwrappers_sshd_honoured{%(sel)s} == 1
            ||| % { sel: sel },
            'hosts.allow and hosts.deny deny every SSH client, and sshd applies them.',
            |||
              On {{ $labels.instance }} no client address can pass /etc/hosts.allow and /etc/hosts.deny
              for sshd, and sshd is linked with libwrap: every new SSH connection is closed before the
              banner.
            |||
          ),
        ],
      },
      {
        name: 'ssh-access-authlog',
        rules: [
          alert(
            'SshAccessAuthLogSilent', 'warning', '15m',
            |||
              label_replace(
                instance:ssh_access_authlog_sources_up:sum == 0
                and
                (ssh_access_sshd_listeners{%(sel)s} > 0 or ssh_access_sshd_socket_activated{%(sel)s} == 1),
                "reason", "no_source", "", ""
              )
              or
              label_replace(
                (
                  instance:ssh_access_authlog_lines_unmatched:ratio_rate5m
                  > %(jump)g + instance:ssh_access_authlog_lines_unmatched:ratio_rate5m_avg%(window)s
                )
                and
                instance:ssh_access_authlog_lines_read:rate5m > %(minLines)g,
                "reason", "unmatched_lines", "", ""
              )
            ||| % { sel: sel, jump: t.unmatchedShareJump, minLines: t.unmatchedMinLinesRate, window: t.baselineWindow },
            "sshd's log lines are not being read or not understood: every log-based alert is blind.",
            |||
              {{ if eq $labels.reason "no_source" -}}
              sshd runs on {{ $labels.instance }} but the exporter has read none of its log sources (auth
              log files or the journal) for 15 minutes.
              {{- else -}}
              {{ $value | humanizePercentage }} of sshd's log lines on {{ $labels.instance }} match no known
              pattern, far above this host's usual share, for 15 minutes: sshd's log wording changed.
              {{- end }}
            |||
          ),
          alert(
            'SshAccessAuthFailureSurge', 'info', '10m',
            |||
              instance:ssh_access_sshd_auth_failures:rate5m > %(min)g
              and
              instance:ssh_access_sshd_auth_failures:rate5m
              > %(factor)g * instance:ssh_access_sshd_auth_failures:rate5m_avg%(window)s
            ||| % { min: t.authFailuresMinRate, factor: t.surgeFactor, window: t.baselineWindow },
            "Failed SSH authentications surge far above this host's usual rate.",
            |||
              sshd on {{ $labels.instance }} logs {{ printf "%%.2f" $value }} failed authentications per
              second (the `none` probe left out), more than %(factor)g times its average of the last
              %(window)s, for 10 minutes.
            ||| % { factor: t.surgeFactor, window: t.baselineWindow }
          ),
          alert(
            'SshAccessWrapperRefusals', 'info', '10m',
            |||
              instance:ssh_access_sshd_wrapper_refusals:rate5m > %(min)g
              and
              instance:ssh_access_sshd_wrapper_refusals:rate5m
              > %(factor)g * instance:ssh_access_sshd_wrapper_refusals:rate5m_avg%(window)s
            ||| % { min: t.wrapperRefusalsMinRate, factor: t.surgeFactor, window: t.baselineWindow },
            'TCP wrappers (hosts.deny) refuse far more SSH connections than usual.',
            |||
              sshd on {{ $labels.instance }} logs {{ printf "%%.2f" $value }} "refused connect from"
              lines per second, more than %(factor)g times its average of the last %(window)s, for
              10 minutes.
            ||| % { factor: t.surgeFactor, window: t.baselineWindow }
          ),
          alert(
            'SshAccessPenaltyDrops', 'info', '10m',
            |||
              instance:ssh_access_sshd_penalty_dropped_connections:rate5m > %(min)g
              and
              instance:ssh_access_sshd_penalty_dropped_connections:rate5m
              > %(factor)g * instance:ssh_access_sshd_penalty_dropped_connections:rate5m_avg%(window)s
            ||| % { min: t.penaltyDropsMinRate, factor: t.surgeFactor, window: t.baselineWindow },
            'sshd PerSourcePenalties refuse far more connections than usual.',
            |||
              sshd on {{ $labels.instance }} refuses {{ printf "%%.2f" $value }} connections per second
              from penalised sources, more than %(factor)g times its average of the last %(window)s, for
              10 minutes.
            ||| % { factor: t.surgeFactor, window: t.baselineWindow }
          ),
        ],
      },
      {
        name: 'ssh-access-bans',
        rules: [
          alert(
            'SshAccessWatchedAddressBlocked', 'critical', '1m',
            'ssh_access_watched_address_blocked{%s} == 1' % sel,
            'A watched address, one that must always reach sshd, is locked out.',
            |||
              {{ $labels.address }} is on the watchlist and the {{ $labels.layer }} layer on
              {{ $labels.instance }} keeps it out of sshd.
            |||
          ),
          alert(
            'SshAccessUnenforcedBans', 'warning', '15m',
            'ssh_access_unenforced_bans{%s} > 0' % sel,
            'Bans of an intrusion prevention tool are not enforced by the firewall.',
            |||
              {{ $value }} address(es) banned by {{ $labels.source }} (jail or set {{ $labels.jail }}) on
              {{ $labels.instance }} have been blocked by no firewall rule for 15 minutes: they can still
              reach sshd.
            |||
          ),
          alert(
            'SshAccessNoBanToolGuardsSshd', 'warning', '30m',
            |||
              ssh_access_fail2ban_sshd_guarded{%(sel)s} == 0
              unless ignoring (source)
              ssh_access_ban_source_up{%(sel)s, source!="fail2ban"} == 1
            ||| % { sel: sel },
            'No intrusion prevention tool guards sshd against brute force.',
            |||
              fail2ban on {{ $labels.instance }} has no enabled jail that reads sshd's log, and no other
              ban tool (sshguard, CrowdSec, DenyHosts) is up, for 30 minutes.
            |||
          ),
          alert(
            'SshAccessFail2banJailMissesSshdPort', 'warning', '15m',
            'ssh_access_fail2ban_jail_covers_sshd_port{%s} == 0' % sel,
            "A fail2ban jail guards sshd but its ban action does not block sshd's port.",
            |||
              fail2ban jail {{ $labels.jail }} on {{ $labels.instance }} guards sshd, but its ban actions
              do not block every port sshd listens on: a banned address still reaches sshd.
            |||
          ),
          alert(
            'SshAccessFail2banJailLogMissing', 'warning', '10m',
            |||
              ssh_access_fail2ban_config_jail_log_missing{%(sel)s} == 1
              or
              ssh_access_fail2ban_jail_log_files_missing{%(sel)s} > 0
            ||| % { sel: sel },
            'A fail2ban jail has no log file to read: fail2ban cannot start or is blind.',
            |||
              fail2ban jail {{ $labels.jail }} on {{ $labels.instance }} reads {{ $value }} log file(s)
              that do not exist (1 from the config while fail2ban is down: it cannot start).
            |||
          ),
          alert(
            'SshAccessBanSourceDown', 'warning', '10m',
            'ssh_access_ban_source_up{%s} == 0' % sel,
            'An intrusion prevention tool does not answer the exporter.',
            |||
              {{ $labels.source }} on {{ $labels.instance }} has not answered for 10 minutes: its bans,
              and whether they lock someone out, are unknown.
            |||
          ),
        ],
      },
      {
        name: 'ssh-access-exporter',
        rules: [
          alert(
            'SshAccessCollectorFailed', 'warning', '10m',
            'ssh_access_collector_success{%s} == 0' % sel,
            'An ssh-access-exporter collector fails: alerts built on its metrics cannot fire.',
            |||
              The {{ $labels.collector }} collector of ssh-access-exporter on {{ $labels.instance }} has
              failed every scrape for 10 minutes.
            |||
          ),
          alert(
            'SshAccessExporterDown', 'warning', '5m',
            'up{%s} == 0' % sel,
            'ssh-access-exporter cannot be scraped: nothing tells whether sshd locks people out.',
            |||
              Prometheus has failed to scrape ssh-access-exporter on {{ $labels.instance }} for
              5 minutes.
            |||
          ),
        ],
      },
      {
        name: 'ssh-access-fleet',
        rules: [
          alert(
            'SshAccessDistributedBruteForce', 'warning', '15m',
            'fleet_address:ssh_access_sshd_top_offender_hosts:count >= %g' % t.distributedBruteForceHosts,
            'One address attacks sshd on many hosts of the fleet.',
            |||
              {{ $labels.address }} is a top offender (%(failures)g or more failed authentications in the
              last hour) on {{ $value }} hosts at once, for 15 minutes.
            ||| % { failures: t.distributedBruteForceMinFailures }
          ),
          alert(
            'SshAccessFleetMaxStartupsAtStart', 'warning', '5m',
            |||
              fleet:ssh_access_sshd_at_maxstartups_start:ratio >= %(share)g
              and
              sum by (%(fleet)s) (instance:ssh_access_sshd_at_maxstartups_start:max) >= %(hosts)g
            ||| % { share: t.fleetMaxStartupsShare, fleet: fleet, hosts: t.fleetMaxStartupsMinHosts },
            'Many hosts of the fleet are at MaxStartups start at once.',
            |||
              {{ $value | humanizePercentage }} of the hosts of this fleet have been at MaxStartups start
              at once for 5 minutes: a wave against the whole fleet, or automation opening too many
              connections.
            |||
          ),
          alert(
            'SshAccessWatchedAddressBlockedOnHosts', 'critical', '1m',
            'fleet_address:ssh_access_watched_address_blocked_hosts:count >= %g' % t.watchedAddressHosts,
            'A watched address is locked out of sshd on several hosts.',
            |||
              {{ $labels.address }} is on the watchlist and is kept out of sshd on {{ $value }} hosts
              at once (a shared blocklist such as CrowdSec's, or a ban replicated across hosts).
            |||
          ),
        ],
      },
    ],
  },
}
