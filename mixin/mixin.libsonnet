// ssh-access-exporter monitoring mixin: alerts, recording rules and dashboards.
//   prometheusAlerts / prometheusRules: rule groups for Prometheus (deploy/prometheus/ssh-access-rules.yml
//   is their render: `make rules`); grafanaDashboards: the dashboards of grafana/dashboards/.
(import 'config.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'dashboards.libsonnet')
