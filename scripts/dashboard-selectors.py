#!/usr/bin/env python3
"""Lists the series selectors a Grafana dashboard queries: each metric name
with the label matchers its queries put on it (the dashboard's own
variables, instance and job, left out), one per line, sorted.

Usage: scripts/dashboard-selectors.py DASHBOARD.json > SELECTORS

tests/fixtures/dashboard/node-exporter-full.selectors was made with it from
"Node Exporter Full" (Grafana.com dashboard 1860); the dashboard file itself
is not kept here. tests/integration/dashboard.py checks that nodelua gives
every selector that node_exporter gives on the same machine.
"""
import json
import re
import sys

SELECTOR = re.compile(r"\b((?:node|process)_[a-zA-Z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def panels(items):
    for p in items:
        if p.get("type") == "row":
            yield from panels(p.get("panels", []))
        else:
            yield p


def main():
    with open(sys.argv[1]) as f:
        board = json.load(f)
    found = set()
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            for m in SELECTOR.finditer(target.get("expr", "")):
                matchers = [f'{k}{op}"{v}"' for k, op, v in MATCHER.findall(m.group(2) or "")
                            if k not in ("instance", "job") and "$" not in v]
                found.add(f'{m.group(1)}{{{",".join(matchers)}}}')
    print("# The series selectors of Grafana dashboard 1860, Node Exporter Full")
    print("# (scripts/dashboard-selectors.py), one per line.")
    for s in sorted(found):
        print(s)


if __name__ == "__main__":
    main()
