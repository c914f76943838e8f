// Recording rules (level:metric:operations). `instance:` series keep every target label (job, instance,
// cluster, ...): only the exporter's own labels are aggregated away. `fleet:` series are aggregated by
// _config.groupLabels. Alerts and dashboards reuse them.
{
  prometheusRules+:: {
    local c = $._config,
    local t = c.thresholds,
    local sel = c.exporterSelector,
    local fleet = std.join(', ', c.groupLabels),
    // The 5-minute rate of a family and its average over the baseline window, computed from the recorded
    // 5-minute rate (one series per host) rather than from a day of raw samples.
    local rateAndBaseline(name, expr) = [
      { record: 'instance:%s:rate5m' % name, expr: expr },
      {
        record: 'instance:%s:rate5m_avg%s' % [name, t.baselineWindow],
        expr: 'avg_over_time(instance:%s:rate5m[%s])' % [name, t.baselineWindow],
      },
    ],

    groups+: [
      {
        name: 'ssh-access-instance.rules',
        rules:
          // Failed authentications, each attempt once: `auth_failed` lines by method, without the `none`
          // probe every client sends first. invalid_user and pam_auth_failure describe the same attempts.
          rateAndBaseline(
            'ssh_access_sshd_auth_failures',
            'sum without (method) (rate(ssh_access_sshd_auth_failures_total{%s, method!="none"}[5m]))' % sel
          )
          + rateAndBaseline(
            'ssh_access_sshd_wrapper_refusals',
            'sum without (event) (rate(ssh_access_sshd_events_total{%s, event="wrapper_refused"}[5m]))' % sel
          )
          + rateAndBaseline(
            'ssh_access_sshd_penalty_dropped_connections',
            'rate(ssh_access_sshd_penalty_dropped_connections_total{%s}[5m])' % sel
          )
          + [
            {
              record: 'instance:ssh_access_sshd_maxstartups_dropped_connections:rate5m',
              expr: 'rate(ssh_access_sshd_maxstartups_dropped_connections_total{%s}[5m])' % sel,
            },
            {
              record: 'instance:ssh_access_authlog_lines_read:rate5m',
              expr: 'sum without (source) (rate(ssh_access_authlog_lines_read_total{%s}[5m]))' % sel,
            },
            {
              record: 'instance:ssh_access_authlog_lines_unmatched:ratio_rate5m',
              expr: |||
                sum without (source) (rate(ssh_access_authlog_lines_unmatched_total{%(sel)s}[5m]))
                /
                (instance:ssh_access_authlog_lines_read:rate5m > 0)
              ||| % { sel: sel },
            },
            {
              record: 'instance:ssh_access_authlog_lines_unmatched:ratio_rate5m_avg%s' % t.baselineWindow,
              expr: 'avg_over_time(instance:ssh_access_authlog_lines_unmatched:ratio_rate5m[%s])' % t.baselineWindow,
            },
            {
              // Log sources read now (files and the journal); 0 while none delivers sshd's lines.
              record: 'instance:ssh_access_authlog_sources_up:sum',
              expr: 'sum without (source) (ssh_access_authlog_source_up{%s})' % sel,
            },
            {
              // 1 when any listener (or, for sshd without listener titles, the host) is at MaxStartups
              // start: sshd drops new connections at random.
              record: 'instance:ssh_access_sshd_at_maxstartups_start:max',
              expr: |||
                max without (listener) (
                  ssh_access_sshd_listener_startups{%(sel)s}
                  >= bool
                  ssh_access_sshd_listener_maxstartups_start{%(sel)s}
                )
                or
                ssh_access_sshd_startups{%(sel)s} >= bool ssh_access_sshd_maxstartups_start{%(sel)s}
              ||| % { sel: sel },
            },
            {
              // Per host and watched address: 1 when any layer keeps it out.
              record: 'instance_address:ssh_access_watched_address_blocked:max',
              expr: 'max without (layer) (ssh_access_watched_address_blocked{%s})' % sel,
            },
          ],
      },
      {
        name: 'ssh-access-fleet.rules',
        rules: [
          {
            record: 'fleet:ssh_access_sshd_at_maxstartups_start:ratio',
            expr: 'avg by (%s) (instance:ssh_access_sshd_at_maxstartups_start:max)' % fleet,
          },
          {
            // On how many hosts each address is a top offender with enough failures in the last hour.
            record: 'fleet_address:ssh_access_sshd_top_offender_hosts:count',
            expr: 'count by (%s, address) (ssh_access_sshd_top_offender_failures{%s} >= %g)'
                  % [fleet, sel, t.distributedBruteForceMinFailures],
          },
          {
            record: 'fleet_address:ssh_access_watched_address_blocked_hosts:count',
            expr: 'count by (%s, address) (instance_address:ssh_access_watched_address_blocked:max == 1)' % fleet,
          },
        ],
      },
    ],
  },
}
