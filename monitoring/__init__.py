"""Response-time monitoring: per-route latency histograms, inference timing, metrics, alerts."""
