"""pyrun's Prometheus endpoint: cAdvisor's per-container series and pyrun's own operation metrics.

Modules: series (pure: a runtime Target -> label values and series values, the metric families),
collector (the prometheus_client Collector that asks pyrun.runtime.metrics_source at scrape time),
operations (pyrun_* latency histograms and error counters, observed by the CRI server),
server (the HTTP endpoint: `pyrun metrics serve` and `pyrun cri serve --metrics-listen`).
"""
