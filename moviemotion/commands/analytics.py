"""`moviemotion register-screening | import-scenes | query | report | cookbook | grant-analyst | grafana ...`:
the analysts' commands (scene timelines, named review queries, reports, dashboards)."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from infra.clickhouse.store_auth import ANALYST
from moviemotion.analytics import access, cookbook, grafana
from moviemotion.analytics.catalog import Screening, UnknownScreening, register_screening
from moviemotion.analytics.queries import QUERIES, coerce_params, get_query, query_result
from moviemotion.analytics.report import REPORT_STEPS, EmptyScreening, build_report
from moviemotion.analytics.scenes import DEFAULT_GAP_S, SceneFileError, read_scene_file, store_scenes
from moviemotion.commands.store import FORMATS, _client, render


def _key_value(_ctx, _param, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


@click.command("register-screening")
@click.option("--screening", "screening_id", required=True, help="Screening id (the producers' screening_id).")
@click.option("--film", "film_id", required=True, help="Film id (scene timelines are per film).")
@click.option("--title", "film_title", required=True, help="Film title, shown in reports and dashboards.")
@click.option("--theater", "theater_id", required=True, help="Theater id.")
@click.option("--starts-at", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]), required=True, help="Start time, UTC (2025-03-01T20:00).")
@click.option("--seats", type=click.IntRange(1, 65535), required=True, help="Seats in the auditorium.")
@click.option("--notes", default="", help="Free text (cut, audience, ...).")
@click.pass_obj
def register_screening_cmd(settings, screening_id, film_id, film_title, theater_id, starts_at: datetime, seats, notes):
    """Add a screening to the catalogue (re-running with the same id replaces it)."""
    with _client(settings) as client:
        register_screening(client, Screening(screening_id, film_id, film_title, theater_id, starts_at, seats, notes))
    click.echo(f"registered screening {screening_id} of {film_id}")


@click.command("import-scenes")
@click.option("--film", "film_id", required=True, help="Film id the timeline belongs to.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--gap", "gap_s", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_GAP_S, show_default=True, help="SRT only: seconds of silence that start a new scene.")
@click.pass_obj
def import_scenes_cmd(settings, film_id, file: Path, gap_s):
    """Import a film's scene timeline from FILE: a CSV (scene_no,start,end,title,description; times HH:MM:SS[.mmm]
    or seconds) or, as a fallback, an SRT subtitle file whose cues are grouped into scenes at silences of --gap seconds.
    Each import replaces the film's previous timeline."""
    try:
        scenes = read_scene_file(file, gap_s)
    except SceneFileError as exc:
        raise click.ClickException(str(exc)) from None
    with _client(settings) as client:
        store_scenes(client, film_id, scenes, file.name)
    click.echo(f"imported {len(scenes)} scenes for {film_id} from {file.name} ({scenes[0].start_s:g}s .. {scenes[-1].end_s:g}s)")


@click.command("query")
@click.argument("name", required=False)
@click.option("-p", "--param", "params", multiple=True, callback=_key_value, metavar="NAME=VALUE", help="Query parameter (repeatable), e.g. -p screening=SCR-1.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--list", "list_only", is_flag=True, help="List the named queries and their parameters.")
@click.pass_obj
def query_cmd(settings, name, params, fmt, list_only):
    """Run a named analyst query from the cookbook (docs/cookbook.md), e.g. `query scene_summary -p screening=S1`."""
    if list_only or not name:
        for query in QUERIES:
            args = [f"{p}=" for p in query.required] + [f"{p}={v}" for p, v in query.defaults.items()]
            click.echo(f"{query.name:20s} {query.question}\n{'':20s} params: {' '.join(args)}")
        return
    try:
        query = get_query(name)
        typed = coerce_params(query, params)
        query.params(typed)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc).strip('"')) from None
    with _client(settings, ANALYST) as client:
        click.echo(render(query_result(client, name, **typed), fmt))


@click.command("report")
@click.option("--screening", "screening_id", required=True, help="Screening to report on.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder (created).")
@click.option("--top-k", type=click.IntRange(1, 20), default=3, show_default=True, help="Resonant moments per reaction.")
@click.pass_obj
def report_cmd(settings, screening_id, out_dir: Path, top_k):
    """Write timeline.png (the audience's reactions over movie time, scenes, top moments, audience metrics and norms)
    and timeline.csv, scenes.csv, moments.csv, metrics.csv, norms.csv for a screening."""
    with _client(settings, ANALYST) as client, click.progressbar(length=REPORT_STEPS, label=f"report {screening_id}") as bar:
        try:
            files = build_report(client, screening_id, out_dir, top_k, on_step=lambda: bar.update(1))
        except (UnknownScreening, EmptyScreening) as exc:
            raise click.ClickException(str(exc).strip('"')) from None
    for path in (files.png, files.timeline_csv, files.scenes_csv, files.moments_csv, files.metrics_csv, files.norms_csv):
        click.echo(str(path))


@click.command("cookbook")
@click.option("--write", is_flag=True, help="Regenerate docs/cookbook.md from the named queries.")
@click.option("--check", is_flag=True, help="Exit 1 when docs/cookbook.md is out of date.")
def cookbook_cmd(write, check):
    """Print the analyst cookbook (Markdown) generated from the named queries, or --write / --check the doc."""
    if write:
        click.echo(f"wrote {cookbook.write_cookbook()}")
    elif check:
        if not cookbook.COOKBOOK_PATH.is_file() or cookbook.COOKBOOK_PATH.read_text() != cookbook.render_cookbook():
            raise click.ClickException(f"{cookbook.COOKBOOK_PATH} is out of date: run `moviemotion cookbook --write`")
        click.echo("cookbook up to date")
    else:
        click.echo(cookbook.render_cookbook())


@click.command("grant-analyst")
@click.option("--user", default="analyst_ro", show_default=True, help="Account to create.")
@click.option("--password", envvar="CLICKHOUSE_ANALYST_PASSWORD", default="", help="Its password (default: $CLICKHOUSE_ANALYST_PASSWORD).")
@click.option("--database", default="default", show_default=True, help="Database it may read.")
@click.option("--apply", is_flag=True, help="Run the statements on the store instead of printing them.")
@click.pass_obj
def grant_analyst_cmd(settings, user, password, database, apply):
    """Print (or --apply) the SQL that creates the read-only analyst role and user (servers with SQL access control;
    18.16 uses a users.xml user with the readonly profile instead)."""
    if not apply:
        click.echo(";\n".join(access.analyst_statements(database, user, password or "CHANGE-ME")) + ";")
        return
    if not password:
        raise click.ClickException("--password (or $CLICKHOUSE_ANALYST_PASSWORD) is required with --apply")
    with _client(settings) as client:
        try:
            access.create_analyst(client, database, user, password)
        except access.AccessControlUnsupported as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created role analyst and user {user} (read-only on {database})")


@click.group("grafana")
def grafana_group():
    """Grafana dashboards of infra/grafana (Live screening, Screening review)."""


@grafana_group.command("validate")
def grafana_validate_cmd():
    """Check the dashboards' structure against the provisioned datasource."""
    uid = grafana.load_datasource()["uid"]
    failed = False
    for path in grafana.dashboard_paths():
        doc = grafana.load_dashboard(path)
        problems = grafana.validate_dashboard(doc, uid, refresh="5s" if doc.get("uid") == "moviemotion-live" else None)
        failed |= bool(problems)
        click.echo(f"{path.name}: " + ("ok" if not problems else "\n  " + "\n  ".join(problems)))
    if failed:
        raise click.ClickException("dashboard problems found")


@grafana_group.command("push")
@click.option("--url", envvar="GRAFANA_URL", required=True, help="Grafana base URL (default: $GRAFANA_URL).")
@click.option("--token", envvar="GRAFANA_TOKEN", required=True, help="Service account token (default: $GRAFANA_TOKEN).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per HTTP request.")
def grafana_push_cmd(url, token, timeout):
    """Create/update the ClickHouse datasource (values from $CLICKHOUSE_HOST, $CLICKHOUSE_PORT (9440, TLS),
    $CLICKHOUSE_DATABASE, $CLICKHOUSE_ANALYST_USER, $CLICKHOUSE_ANALYST_PASSWORD, $CLICKHOUSE_CA_CERT; each may be
    given as NAME_FILE, e.g. CLICKHOUSE_CA_CERT_FILE=infra/.secrets/tls/ca.pem) and both dashboards."""
    from grafana_client.client import GrafanaException

    try:
        pushed = grafana.push(url, token, os.environ, timeout)
    except (KeyError, grafana.DashboardError, GrafanaException, OSError) as exc:
        raise click.ClickException(f"grafana push failed: {str(exc).strip(chr(34))}") from None
    for item in pushed:
        click.echo(f"pushed {item}")


def register(group: click.Group) -> None:
    for command in (register_screening_cmd, import_scenes_cmd, query_cmd, report_cmd, cookbook_cmd, grant_analyst_cmd, grafana_group):
        group.add_command(command)
