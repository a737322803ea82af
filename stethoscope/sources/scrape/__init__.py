"""`steth scrape`: Prometheus text and OpenMetrics endpoints into OTLP metrics."""
