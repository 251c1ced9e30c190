"""Grafana dashboards of infra/grafana: load and structurally validate them, expand the ClickHouse plugin's
macros into plain SQL (to run panel queries against a real store), render named queries as panel SQL,
and push the datasource + dashboards to a Grafana with grafana-client.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from moviemotion.analytics.queries import NamedQuery

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "infra" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "clickhouse.yaml"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
PANEL_TYPES = {"timeseries", "heatmap", "table", "stat", "barchart", "text"}
FORMAT_TIME_SERIES, FORMAT_TABLE = 0, 1  # the plugin's query formats
STRING_VARIABLES = {"screening", "film"}  # named-query params that are strings in SQL

_TIME_FILTER = re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_ENV = re.compile(r"\$\{(\w+)\}")
_PARAM = re.compile(r"%\((\w+)\)s")


class DashboardError(ValueError):
    """A dashboard or provisioning file that Grafana would not load as intended (message lists the problems)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # naive = UTC
    end: datetime
    interval_s: int = 5

    def epoch(self, value: datetime) -> int:
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp())


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str  # panel title, or "annotation: <name>" / "variable: <name>"
    format: int
    sql: str


def load_dashboard(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DashboardError(f"{path}: cannot read dashboard JSON: {exc}") from None


def dashboard_paths(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    return sorted(Path(directory).glob("*.json"))


def load_datasource(path: Path = DATASOURCE_FILE) -> dict:
    """The (single) datasource entry of the provisioning file."""
    doc = yaml.safe_load(Path(path).read_text())
    sources = doc.get("datasources") or []
    if len(sources) != 1:
        raise DashboardError(f"{path}: expected exactly one datasource, found {len(sources)}")
    return sources[0]


def _env_value(name: str, env: Mapping[str, str]) -> str | None:
    """$NAME, else the contents of the file $NAME_FILE names (trailing newlines dropped), as
    infra/compose/env-from-files.sh gives Grafana its secrets and the venue CA; None when neither is set."""
    if name in env:
        return env[name]
    if env.get(name + "_FILE"):
        return Path(env[name + "_FILE"]).read_text().rstrip("\n")
    return None


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Grafana-style ${VAR} substitution through a provisioning structure (VAR or VAR_FILE); KeyError names a
    missing variable."""
    if isinstance(value, dict):
        return {key: expand_env(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, env) for item in value]
    if isinstance(value, str):
        values = {name: _env_value(name, env) for name in _ENV.findall(value)}
        missing = [name for name, found in values.items() if found is None]
        if missing:
            raise KeyError(f"environment variable(s) {', '.join(missing)} not set (used by the Grafana datasource; "
                           f"or give NAME_FILE)")
        return _ENV.sub(lambda m: values[m.group(1)], value)
    return value


def iter_queries(doc: dict) -> Iterator[PanelQuery]:
    """Every SQL of a dashboard: panel targets, annotation queries and query variables."""
    title = doc.get("title", "?")
    for panel in doc.get("panels", []):
        for target in panel.get("targets", []):
            yield PanelQuery(title, panel.get("title", "?"), target.get("format", FORMAT_TABLE), target.get("rawSql", ""))
    for annotation in doc.get("annotations", {}).get("list", []):
        target = annotation.get("target")
        if target:
            yield PanelQuery(title, f"annotation: {annotation.get('name')}", FORMAT_TABLE, target.get("rawSql", ""))
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            yield PanelQuery(title, f"variable: {variable.get('name')}", FORMAT_TABLE, query if isinstance(query, str) else query.get("rawSql", ""))


def _datasource_problems(where: str, datasource: Any, uid: str) -> list[str]:
    if not isinstance(datasource, dict) or datasource.get("uid") != uid or datasource.get("type") != DATASOURCE_TYPE:
        return [f"{where}: datasource {datasource!r} is not {{type: {DATASOURCE_TYPE}, uid: {uid}}}"]
    return []


def _overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def validate_dashboard(doc: dict, datasource_uid: str, refresh: str | None = None) -> list[str]:
    """Structural problems of a dashboard (empty list: fine). `refresh`, when given, must match doc['refresh']."""
    problems = [f"missing {key!r}" for key in ("uid", "title", "panels", "schemaVersion") if key not in doc]
    if refresh is not None and doc.get("refresh") != refresh:
        problems.append(f"refresh is {doc.get('refresh')!r}, expected {refresh!r}")
    ids = [panel.get("id") for panel in doc.get("panels", [])]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids must be unique integers: {ids}")
    boxes = []
    for panel in doc.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: unknown type {panel.get('type')!r}")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")) or grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: bad gridPos {grid}")
        else:
            problems += [f"{where}: overlaps panel {other_id}" for other_id, other in boxes if _overlaps(grid, other)]
            boxes.append((panel.get("id"), grid))
        if panel.get("type") == "text":
            continue
        problems += _datasource_problems(where, panel.get("datasource"), datasource_uid)
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no queries")
        ref_ids = [t.get("refId") for t in targets]
        if len(ref_ids) != len(set(ref_ids)):
            problems.append(f"{where}: refIds not unique {ref_ids}")
        for target in targets:
            problems += _datasource_problems(f"{where} target {target.get('refId')}", target.get("datasource"), datasource_uid)
            if not target.get("rawSql", "").strip():
                problems.append(f"{where} target {target.get('refId')}: empty rawSql")
    for annotation in doc.get("annotations", {}).get("list", []):
        if "target" in annotation:
            problems += _datasource_problems(f"annotation {annotation.get('name')!r}", annotation.get("datasource"), datasource_uid)
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            problems += _datasource_problems(f"variable {variable.get('name')!r}", variable.get("datasource"), datasource_uid)
    names = {variable.get("name") for variable in doc.get("templating", {}).get("list", [])}
    for query in iter_queries(doc):
        used = {a or c for a, _fmt, c in _VARIABLE.findall(query.sql) if not (a or c).startswith("__")}
        problems += [f"{query.panel}: uses undefined variable ${name}" for name in sorted(used - names)]
        unquoted = {a or c for a, fmt, c in _VARIABLE.findall(query.sql) if not (a or c).startswith("__") and fmt != "sqlstring"}
        problems += [f"{query.panel}: puts ${name} into SQL unquoted (write ${{{name}:sqlstring}}, cast if numeric)" for name in sorted(unquoted)]
    return problems


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand_macros(sql: str, time_range: TimeRange, variables: Mapping[str, str]) -> str:
    """The SQL Grafana's ClickHouse plugin would send: $__timeFilter(col), $__fromTime, $__toTime,
    $__interval_s and template variables ($name, ${name}, ${name:sqlstring}) replaced. Unknown names raise KeyError."""
    start, end = time_range.epoch(time_range.start), time_range.epoch(time_range.end)
    sql = _TIME_FILTER.sub(lambda m: f"{m.group(1)} >= toDateTime({start}) AND {m.group(1)} <= toDateTime({end})", sql)
    macros = {"__fromTime": f"toDateTime({start})", "__toTime": f"toDateTime({end})", "__interval_s": str(max(1, time_range.interval_s))}

    def replace(match: re.Match) -> str:
        name, fmt = match.group(1) or match.group(3), match.group(2)
        if name in macros:
            return macros[name]
        if name.startswith("__"):
            raise KeyError(f"unsupported Grafana macro ${name}")
        if name not in variables:
            raise KeyError(f"no value for template variable ${name}")
        if fmt not in (None, "sqlstring", "raw"):
            raise KeyError(f"unsupported variable format {fmt!r} in ${{{name}:{fmt}}}")
        return _sql_string(variables[name]) if fmt == "sqlstring" else variables[name]

    return _VARIABLE.sub(replace, sql)


def to_grafana_sql(query: NamedQuery, variables: tuple[str, ...]) -> str:
    """A named query as panel SQL: params in `variables` become template variables, the rest their defaults.
    A variable is always sent as a quoted SQL string (${name:sqlstring}); numeric ones are parsed by the store
    (toFloat64 / toInt64), so whatever text a viewer puts in the URL can only fail to parse, never add SQL."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in variables:
            if name in STRING_VARIABLES:
                return f"${{{name}:sqlstring}}"
            cast = "toInt64" if isinstance(query.defaults.get(name), int) else "toFloat64"
            return f"{cast}(${{{name}:sqlstring}})"
        if name not in query.defaults:
            raise KeyError(f"query {query.name!r}: parameter {name!r} has no default and is not a dashboard variable")
        return repr(query.defaults[name])

    return _PARAM.sub(replace, query.sql.strip())


def datasource_payload(path: Path = DATASOURCE_FILE, env: Mapping[str, str] | None = None) -> dict:
    """The datasource as Grafana's HTTP API wants it, from the provisioning file with ${VAR}s filled from env."""
    source = expand_env(load_datasource(path), os.environ if env is None else env)
    payload = {key: source[key] for key in ("name", "uid", "type", "jsonData", "secureJsonData") if key in source}
    port = payload.get("jsonData", {}).get("port")
    if isinstance(port, str) and port.isdigit():
        payload["jsonData"]["port"] = int(port)
    return {**payload, "access": "proxy", "isDefault": bool(source.get("isDefault", False))}


def push(url: str, token: str, env: Mapping[str, str] | None = None, timeout: float = 10.0) -> list[str]:
    """Create or update the datasource and every dashboard on the Grafana at `url`; return what was pushed."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    payload = datasource_payload(env=env)
    try:
        api.datasource.get_datasource_by_uid(payload["uid"])
        api.datasource.update_datasource_by_uid(payload["uid"], payload)
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        api.datasource.create_datasource(payload)
    pushed = [f"datasource {payload['uid']}"]
    for path in dashboard_paths():
        doc = load_dashboard(path)
        problems = validate_dashboard(doc, payload["uid"])
        if problems:
            raise DashboardError(f"{path.name}: " + "; ".join(problems))
        api.dashboard.update_dashboard({"dashboard": {**doc, "id": None}, "overwrite": True, "message": "moviemotion grafana push"})
        pushed.append(f"dashboard {doc['uid']}")
    return pushed
