"""Analysts' side of MoviEmotion: scene timelines, named review queries, reports and Grafana dashboards."""
