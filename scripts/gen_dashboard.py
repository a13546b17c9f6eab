#!/usr/bin/env python3
"""Writes grafana/dashboards/yeastar-pbx.json. Edit here, run, commit both.

Every panel carries a description; every query filters on the dashboard's $job and $instance
variables and keeps `instance` (the PBX: the exporter in single-target mode, the probed target in
multi-target mode), so choosing several PBXes never merges them into one line. CI runs each query
against a real Prometheus in both modes and checks that each returns every PBX, none merged
(tests/e2e_prometheus.rs). The request panels read the recording rules of
deploy/prometheus/recording.yml.

The exporter row reads the exporter's own series (yeastar_exporter_*, process_*): one line per
exporter (its `exporter` label, which the shipped scrape configs set on every series), for the
exporters behind the picked PBXes. Counters are shown as rates or increases, never raw; a ratio
whose denominator can be 0 (an idle trunk) is left out rather than shown as NaN.
"""
import json
import pathlib

SEL = 'job=~"$job",instance=~"$instance"'
# The exporters behind the picked PBXes; exporter panels keep their series `and on (exporter)` it.
EXPORTERS = f'group by (exporter) (yeastar_up{{{SEL}}})'
EXP = 'exporter!=""'


def of_exporters(expr):
    return f"{expr} and on (exporter) {EXPORTERS}"
DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
next_id = 1
y = 0


def row(title):
    global next_id, y
    panels.append({"type": "row", "title": title, "id": next_id, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    next_id += 1
    y += 1


def panel(kind, title, desc, targets, w=8, h=8, x=0, unit=None, extra=None, newline=False):
    global next_id, y
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "id": next_id,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [
            dict({"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": lf}, **opts)
            for i, (e, lf, opts) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if extra:
        for k, v in extra.items():
            if k == "defaults":
                p["fieldConfig"]["defaults"].update(v)
            else:
                p[k] = v
    panels.append(p)
    next_id += 1
    if newline:
        y += h


def t(expr, legend="", **opts):
    return (expr, legend, opts)


stacked = {"defaults": {"custom": {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}}}

row("Health")
panel("stat", "PBX up", "yeastar_up: 1 when the last scrape's call queries (call/query inbound and outbound) both succeeded. 0 means live call state is unknown; the exporter's log names the cause.",
      [t(f"yeastar_up{{{SEL}}}", "{{instance}}")], w=4, x=0,
      extra={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}],
                          "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}},
             "options": {"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("timeseries", "Scrape duration", "yeastar_scrape_duration_seconds: wall time of each scrape's PBX work. It grows with the number of calls and the PBX's load; it must stay below the scrape timeout.",
      [t(f"yeastar_scrape_duration_seconds{{{SEL}}}", "{{instance}}")], w=5, x=4, unit="s")
panel("timeseries", "PBX request errors", "yeastar_pbx_requests_total: rate of requests to each PBX that did not succeed over 5 minutes, by endpoint and outcome (api_error, token_expired, http_error, timeout, connect_error, decode_error). From the recording rule instance_endpoint_outcome:yeastar_pbx_requests:rate5m (deploy/prometheus/recording.yml).",
      [t(f'instance_endpoint_outcome:yeastar_pbx_requests:rate5m{{{SEL},outcome!="success"}}', "{{instance}} {{endpoint}} {{outcome}}")], w=5, x=9, unit="reqps")
panel("timeseries", "PBX request failure ratio", "Share of each PBX's requests that failed over 5 minutes (yeastar_pbx_requests_total, outcome other than success; recording rule instance:yeastar_pbx_request_failures:ratio_rate5m). The exporter's /metrics has the fleet-wide latency histogram (yeastar_exporter_pbx_request_duration_seconds).",
      [t(f'instance:yeastar_pbx_request_failures:ratio_rate5m{{{SEL}}}', "{{instance}}")], w=5, x=14, unit="percentunit")
panel("stat", "Logins suspended", "yeastar_login_suspended: 1 while the exporter pauses logins to a PBX after a rejected login (wrong credentials or host locked out), so that it never locks itself out.",
      [t(f'max by (instance) (yeastar_login_suspended{{{SEL}}})', "{{instance}}")], w=5, x=19, newline=True,
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}},
             "options": {"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("table", "Collectors", "yeastar_collector_success by collector: 0 marks a collector whose PBX requests failed this scrape (its series are missing); the others still report.",
      [t(f"yeastar_collector_success{{{SEL}}}", "", instant=True, format="table")], w=12, h=6,
      extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}}]})

panel("timeseries", "Collector duration", "yeastar_collector_duration_seconds: when each collector's last answer came, counted from the start of the scrape's PBX work (a collector still out at the scrape's deadline shows the time waited). The slowest collector is what brings a scrape near its timeout.",
      [t(f"max by (instance, collector) (yeastar_collector_duration_seconds{{{SEL}}})", "{{instance}} {{collector}}")], w=12, h=6, x=12, unit="s", newline=True)

row("Calls now")
panel("stat", "Active calls", "yeastar_active_calls: distinct calls now, by direction. A call with an inbound member is inbound; else with an outbound member outbound; else internal.",
      [t(f"sum by (instance, direction) (yeastar_active_calls{{{SEL}}})", "{{instance}} {{direction}}")], w=8, x=0,
      extra={"options": {"reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("timeseries", "Active calls by direction", "yeastar_active_calls over time, by direction.",
      [t(f"sum by (instance, direction) (yeastar_active_calls{{{SEL}}})", "{{instance}} {{direction}}")], w=8, x=8, extra=stacked)
panel("timeseries", "Oldest call", "yeastar_call_max_age_seconds: age of the oldest active call by direction (from its callid). The 4-hour line is the YeastarCallTooLong alert.",
      [t(f"max by (instance, direction) (yeastar_call_max_age_seconds{{{SEL}}})", "{{instance}} {{direction}}")], w=8, x=16, unit="s", newline=True,
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 14400}]},
                          "custom": {"thresholdsStyle": {"mode": "line"}}}})

row("Trunks")
panel("timeseries", "Legs per trunk", "yeastar_trunk_active_calls: inbound and outbound call legs on each trunk.",
      [t(f"sum by (instance, trunk, direction) (yeastar_trunk_active_calls{{{SEL}}})", "{{instance}} {{trunk}} {{direction}}")], w=12, x=0, extra=stacked)
panel("table", "Trunk status", "yeastar_trunk_up (1 = can carry calls) and the PBX's own status word (yeastar_trunk_status) for each trunk.",
      [t(f"yeastar_trunk_up{{{SEL}}}", "", instant=True, format="table"),
       t(f"yeastar_trunk_status{{{SEL}}} == 1", "", instant=True, format="table")], w=12, x=12, newline=True,
      extra={"transformations": [{"id": "merge", "options": {}},
                                 {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "Value #B": True}, "renameByName": {"Value #A": "up"}}}]})

row("Call members")
panel("timeseries", "Members by status", "yeastar_call_members by status: alert (caller hearing ringback), ring (callee ringing), answered/answer (talking), hold, bye, other (undocumented states).",
      [t(f"sum by (instance, status) (yeastar_call_members{{{SEL}}})", "{{instance}} {{status}}")], w=12, x=0, extra=stacked)
panel("bargauge", "Members by kind and status", "yeastar_call_members now, by member kind (ext, inbound, outbound) and status.",
      [t(f"sum by (instance, member, status) (yeastar_call_members{{{SEL}}})", "{{instance}} {{member}} {{status}}", instant=True)], w=12, x=12, newline=True,
      extra={"options": {"orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}}})

row("Stuck calls")
panel("timeseries", "Longest ringing", "yeastar_member_status_max_age_seconds{status=\"ring\"}: how long the longest-ringing member has been ringing. The line at 2 minutes is the YeastarCallStuckRinging alert threshold.",
      [t(f'max by (instance) (yeastar_member_status_max_age_seconds{{{SEL},status="ring"}})', "{{instance}}")], w=12, x=0, unit="s",
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 120}]},
                          "custom": {"thresholdsStyle": {"mode": "line"}}}})
panel("timeseries", "Longest hold", "yeastar_member_status_max_age_seconds{status=\"hold\"}: how long the longest-held member has been on hold. The line at 30 minutes is the YeastarCallStuckOnHold alert threshold.",
      [t(f'max by (instance) (yeastar_member_status_max_age_seconds{{{SEL},status="hold"}})', "{{instance}}")], w=12, x=12, unit="s", newline=True,
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1800}]},
                          "custom": {"thresholdsStyle": {"mode": "line"}}}})

row("Call paths")
panel("timeseries", "Calls per IVR, queue, ring group", "yeastar_callpath_active_calls: distinct calls set up through each IVR, queue, ring group, paging group or conference (by its number).",
      [t(f"sum by (instance, callpath) (yeastar_callpath_active_calls{{{SEL}}})", "{{instance}} {{callpath}}")], w=24, newline=True, extra=stacked)

row("Extensions and PBX")
panel("timeseries", "Extensions by status", "yeastar_extensions: extensions by status (registered, unavailable, ringing, busy, hold, idle, malfunction, fxsnoport, other). A drop in registered with a rise in unavailable means phones fell off.",
      [t(f"sum by (instance, status) (yeastar_extensions{{{SEL}}})", "{{instance}} {{status}}")], w=12, x=0, extra=stacked)
panel("stat", "PBX uptime", "yeastar_pbx_uptime_seconds: time since the PBX last booted. A reset to near zero is a PBX restart.",
      [t(f"yeastar_pbx_uptime_seconds{{{SEL}}}", "{{instance}}")], w=4, x=12, unit="s",
      extra={"options": {"reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("table", "PBX", "yeastar_pbx_info: model, firmware and hardware version of each PBX.",
      [t(f"yeastar_pbx_info{{{SEL}}}", "", instant=True, format="table")], w=8, x=16, newline=True,
      extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "Value": True}}}]})

row("Call accounting (PBX events)")
panel("timeseries", "Finished calls per hour", "yeastar_calls_completed_total over the last hour (recording rule instance_direction_outcome:yeastar_calls_completed:increase1h), by direction and outcome: every call the PBX reported finished, however short. Needs events on for the PBX (README: Call accounting).",
      [t(f'instance_direction_outcome:yeastar_calls_completed:increase1h{{{SEL}}}', "{{instance}} {{direction}} {{outcome}}")], w=12, x=0, extra=stacked)
panel("timeseries", "Answer ratio per trunk", "Share of each trunk's finished calls that were answered over the last hour (yeastar_trunk_calls_completed_total): inbound calls on the trunk they came in on, outbound on the one they left by. A trunk that finished no call in the hour has no line (no ratio to show), rather than NaN or 0%. The YeastarTrunkAnswerRatioLow alert fires under 50% over 30 minutes.",
      [t(f'sum by (instance, trunk) (increase(yeastar_trunk_calls_completed_total{{{SEL},outcome="answered"}}[1h])) / (sum by (instance, trunk) (increase(yeastar_trunk_calls_completed_total{{{SEL}}}[1h])) > 0)', "{{instance}} {{trunk}}")], w=12, x=12, unit="percentunit", newline=True)
panel("heatmap", "Talk time", "yeastar_call_talk_seconds: how long answered calls lasted, as a heatmap over time (buckets 10 s to 2 h).",
      [t(f'sum by (instance, le) (increase(yeastar_call_talk_seconds_bucket{{{SEL}}}[$__rate_interval]))', "{{le}}", format="heatmap")], w=12, x=0,
      extra={"options": {"calculate": False, "yAxis": {"unit": "s"}}})
panel("timeseries", "Median talk and wait time", "Median talk time of answered calls (yeastar_call_talk_seconds) and median wait before answer or hang-up (yeastar_call_wait_seconds) over the last hour.",
      [t(f'histogram_quantile(0.5, sum by (instance, le) (rate(yeastar_call_talk_seconds_bucket{{{SEL}}}[1h])))', "{{instance}} talk"),
       t(f'histogram_quantile(0.5, sum by (instance, le) (rate(yeastar_call_wait_seconds_bucket{{{SEL}}}[1h])))', "{{instance}} wait")], w=12, x=12, unit="s", newline=True)
panel("timeseries", "Queue agents' missed calls", "Queue calls agents let ring out (yeastar_queue_agent_ring_timeouts_total) over the last hour, by queue; agents then get auto-paused (yeastar_queue_agent_auto_pauses_total).",
      [t(f'sum by (instance, queue) (increase(yeastar_queue_agent_ring_timeouts_total{{{SEL}}}[1h]))', "{{instance}} queue {{queue}}")], w=8, x=0)
panel("timeseries", "Failed call set-ups", "yeastar_calls_failed_total over the last hour by reason (CallFailed): line unreachable, congestion, SIP errors.",
      [t(f'sum by (instance, reason) (increase(yeastar_calls_failed_total{{{SEL}}}[1h]))', "{{instance}} {{reason}}")], w=8, x=8)
panel("timeseries", "Event reports", "Event reports received per second (yeastar_events_received_total), PBX boots reported over the last hour (yeastar_pbx_boots_total; the YeastarPBXRebooted alert fires on one), and reports addressed to the PBX but refused as not its own over the last hour, by reason (yeastar_events_refused_total: unknown_path, stale_path, wrong_source, wrong_sn; docs/security.md). No reports while calls are up fires YeastarEventsSilent; refusals that keep coming are another host posting as the PBX, or a NAT between them (--events.source-addresses).",
      [t(f'sum by (instance) (rate(yeastar_events_received_total{{{SEL}}}[$__rate_interval]))', "{{instance}} reports/s"),
       t(f'sum by (instance) (increase(yeastar_pbx_boots_total{{{SEL}}}[1h]))', "{{instance}} boots in the hour"),
       t(f'sum by (instance, reason) (increase(yeastar_events_refused_total{{{SEL}}}[1h]))', "{{instance}} refused {{reason}} in the hour")], w=8, x=16, newline=True)

row("Queues")
panel("timeseries", "Callers waiting", "yeastar_queue_waiting_calls: callers waiting in each queue (queues collector; off by default).",
      [t(f"sum by (instance, queue) (yeastar_queue_waiting_calls{{{SEL}}})", "{{instance}} {{queue}}")], w=12, x=0)
panel("timeseries", "Agents by status", "yeastar_queue_agents: agents of each queue by status (idle, in_use, busy, ringing, on_hold, paused, wrap_up, unavailable, ...). Callers waiting with no idle agent means the queue is understaffed.",
      [t(f"sum by (instance, queue, status) (yeastar_queue_agents{{{SEL}}}) > 0", "{{instance}} {{queue}} {{status}}")], w=12, x=12, newline=True, extra=stacked)

row("Exporter")
panel("timeseries", "Scrapes through the exporter", "Prometheus' own view of every scrape through each exporter (up: its /metrics and each /probe; answered or failed), and the PBXes it reads (yeastar_up). A failed scrape is the exporter unreachable or too slow (YeastarExporterDown); a PBX down with its scrape answered is the PBX (YeastarPBXUnreachable). Lines per exporter: the `exporter` label the shipped scrape configs set.",
      [t(of_exporters(f'sum by (exporter) (up{{{EXP}}})'), "{{exporter}} scrapes answered"),
       t(of_exporters(f'sum by (exporter) (1 - up{{{EXP}}})'), "{{exporter}} scrapes failed"),
       t(of_exporters(f'sum by (exporter) (yeastar_up{{{EXP}}})'), "{{exporter}} PBXes up"),
       t(of_exporters(f'sum by (exporter) (1 - yeastar_up{{{EXP}}})'), "{{exporter}} PBXes down")], w=8, x=0)
panel("timeseries", "PBX request errors (all PBXes)", "yeastar_exporter_pbx_requests_total: requests per second from each exporter to all its PBXes that did not succeed, by outcome (api_error, token_expired, http_error, timeout, connect_error, decode_error). The per-PBX detail is in the Health row.",
      [t(of_exporters(f'sum by (exporter, outcome) (rate(yeastar_exporter_pbx_requests_total{{{EXP},outcome!="success"}}[$__rate_interval]))'), "{{exporter}} {{outcome}}")], w=8, x=8, unit="reqps")
panel("timeseries", "PBX request latency", "yeastar_exporter_pbx_request_duration_seconds: median and 95th percentile of each exporter's requests to its PBXes (every endpoint, login included). A slow PBX or network shows here before scrapes time out.",
      [t(of_exporters(f'histogram_quantile(0.5, sum by (exporter, le) (rate(yeastar_exporter_pbx_request_duration_seconds_bucket{{{EXP}}}[$__rate_interval])))'), "{{exporter}} p50"),
       t(of_exporters(f'histogram_quantile(0.95, sum by (exporter, le) (rate(yeastar_exporter_pbx_request_duration_seconds_bucket{{{EXP}}}[$__rate_interval])))'), "{{exporter}} p95")], w=8, x=16, unit="s", newline=True)
panel("timeseries", "Logins", "yeastar_exporter_logins_total: logins to all PBXes over the last hour, by outcome (success, rejected, locked, error). Successful logins come when a token lapses (it lasts 30 minutes); a rejected or locked one suspends that PBX's logins for the back-off, and a steady stream of successes means something else logs the exporter's API account out.",
      [t(of_exporters(f'sum by (exporter, outcome) (increase(yeastar_exporter_logins_total{{{EXP}}}[1h]))'), "{{exporter}} {{outcome}}")], w=6, x=0)
panel("timeseries", "Suspended PBXes", "yeastar_exporter_login_suspended_targets: PBXes whose logins the exporter has suspended after a rejected login (YeastarLoginSuspended names them), against yeastar_exporter_targets, the PBXes it is configured for.",
      [t(of_exporters(f'max by (exporter) (yeastar_exporter_login_suspended_targets{{{EXP}}})'), "{{exporter}} suspended"),
       t(of_exporters(f'max by (exporter) (yeastar_exporter_targets{{{EXP}}})'), "{{exporter}} configured")], w=6, x=6)
panel("timeseries", "Exporter CPU", "process_cpu_seconds_total: CPU time each exporter process uses per second of wall time (1 = one core).",
      [t(of_exporters(f'sum by (exporter) (rate(process_cpu_seconds_total{{{EXP}}}[$__rate_interval]))'), "{{exporter}}")], w=6, x=12, unit="percentunit")
panel("timeseries", "Exporter memory", "process_resident_memory_bytes: resident memory of each exporter process (under 10 KiB per PBX beyond its base; docs/performance.md).",
      [t(of_exporters(f'max by (exporter) (process_resident_memory_bytes{{{EXP}}})'), "{{exporter}}")], w=6, x=18, unit="bytes", newline=True)

dashboard = {
    "uid": "yeastar-pbx",
    "title": "Yeastar PBX",
    "description": "Live calls, trunks, extensions and queues of Yeastar S-Series PBXes, from yeastar-exporter.",
    "tags": ["yeastar", "voip", "pbx"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "graphTooltip": 1,
    "annotations": {"list": []},
    "links": [],
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS, "query": {"query": "label_values(yeastar_up, job)", "refId": "job"},
         "definition": "label_values(yeastar_up, job)", "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+", "current": {}, "sort": 1, "hide": 0},
        {"name": "instance", "label": "PBX", "type": "query", "datasource": DS, "query": {"query": 'label_values(yeastar_up{job=~"$job"}, instance)', "refId": "instance"},
         "definition": 'label_values(yeastar_up{job=~"$job"}, instance)', "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+", "current": {}, "sort": 1, "hide": 0},
    ]},
    "panels": panels,
}

out = pathlib.Path(__file__).resolve().parent.parent / "grafana" / "dashboards" / "yeastar-pbx.json"
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out} ({len([p for p in panels if p['type'] != 'row'])} panels)")
