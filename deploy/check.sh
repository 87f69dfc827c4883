#!/usr/bin/env bash
# Checks what deploy/ ships with promtool: the Prometheus configuration, the alert rules
# and their unit tests, and every query of the Grafana dashboard (parsed as recording
# rules, with the dashboard's variables filled in). Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")"
promtool check config prometheus/prometheus.yml
promtool check rules prometheus/alerts.yml
(cd prometheus && promtool test rules alerts.test.yml)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 - grafana/namaskah.json > "$scratch/dashboard.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
print("groups:\n  - name: dashboard\n    rules:")
for i, expr in enumerate(exprs):
    expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
    print(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}")
PY
promtool check rules "$scratch/dashboard.yml"
