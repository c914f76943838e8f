// The dashboards are generated from Python (`make dashboards`, grafana/generate.py) into
// grafana/dashboards/*.json; the mixin serves those files as they are (uids ssh-access-fleet and
// ssh-access-host; datasource, job, instance and cluster are dashboard variables, so _config does not
// change them). tests/unit/test_mixin.py fails when a file there is missing here.
{
  grafanaDashboards+:: {
    'ssh-access-fleet.json': (import '../grafana/dashboards/ssh-access-fleet.json'),
    'ssh-access-host.json': (import '../grafana/dashboards/ssh-access-host.json'),
  },
}
