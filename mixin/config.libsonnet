// Everything an installation may want to change, in one place. Override in your own jsonnet:
//   (import 'ssh-access-exporter/mixin/mixin.libsonnet') + { _config+:: { exporterSelector: 'job="ssh"' } }
{
  _config+:: {
    // Selects the exporter's series; every rule uses it (the job of deploy/prometheus/prometheus.yml).
    exporterSelector: 'job="ssh-access-exporter"',

    // Target labels that tell one fleet from another (fleet alerts aggregate by these): add `cluster`,
    // `region` or a team label when one Prometheus watches several fleets. Per-host alerts keep every
    // target label anyway: they aggregate away only the exporter's own labels.
    groupLabels: ['job'],

    // docs/runbook.md as your people can open it; each alert appends `#<its name, lower case>` (GitHub's
    // anchor of the alert's heading). Point it at your own copy or wiki when the default is not reachable.
    runbookURL: 'https://github.com/ssh-access-exporter/ssh-access-exporter/blob/main/docs/runbook.md',

    // Dashboard links in annotations are left out on purpose: the dashboards have fixed uids
    // (ssh-access-fleet, ssh-access-host) under whatever Grafana URL you use.

    thresholds: {
      // info alerts compare the last 5 minutes with the host's own average of the last day.
      baselineWindow: '1d',
      surgeFactor: 4,  // a rate this many times the baseline ...
      authFailuresMinRate: 0.5,  // ... and at least this many failed authentications per second
      wrapperRefusalsMinRate: 0.1,  // hosts.allow / hosts.deny refusals per second
      penaltyDropsMinRate: 0.1,  // PerSourcePenalties refusals per second
      // SshAccessAuthLogSilent: unmatched share of sshd's lines this far above its baseline (0..1) ...
      unmatchedShareJump: 0.2,
      unmatchedMinLinesRate: 0.01,  // ... while at least this many lines per second are read
      // Fleet alerts.
      distributedBruteForceHosts: 3,  // the same top offender on this many hosts of one fleet ...
      distributedBruteForceMinFailures: 10,  // ... each with this many failures in its last hour
      fleetMaxStartupsShare: 0.25,  // this share of a fleet's hosts at MaxStartups start at once ...
      fleetMaxStartupsMinHosts: 2,  // ... and at least this many hosts
      watchedAddressHosts: 2,  // one watched address blocked on this many hosts
    },
  },
}
