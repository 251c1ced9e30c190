"""What the embedded store's analyst may run, judged on ClickHouse's own parse of the query.

The daemon first has chDB normalize the query (`formatQuery`: one statement only, comments gone, quoting and
case of keywords canonical), then parse the normalized text (`EXPLAIN AST`), and hands both to `refusal`.
Because ClickHouse itself parsed the text, case, whitespace, comments and quoting cannot hide a function
from the check; the normalized text is also what runs. `readonly=1` on the analyst's chDB sessions refuses
every write independently of this check; this check adds what readonly does not cover in chDB
(clickhouse-local reads any path with the scalar `file()`, and writes `INTO OUTFILE` even in readonly).
"""
from __future__ import annotations

import re

# Table functions that only compute or read this store's own tables; every other one (file, url, s3, hdfs,
# remote, mysql, postgresql, executable, input, python, iceberg, ...) reaches outside and is refused.
LOCAL_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries",
                                   "generaterandom", "values", "null", "view", "merge"})
# Functions refused wherever they appear (also as scalar functions: `SELECT file('/etc/passwd')` reads the file).
OUTSIDE_FUNCTIONS = frozenset({
    "file", "filecluster", "filesystem", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "hdfs",
    "hdfscluster", "azureblobstorage", "azureblobstoragecluster", "remote", "remotesecure", "cluster",
    "clusterallreplicas", "mysql", "postgresql", "sqlite", "mongodb", "redis", "odbc", "jdbc", "executable", "input",
    "python", "arrowstream", "bigquery", "ytsaurus", "dictionary", "eval",
})
# Root nodes of EXPLAIN AST for statements that read (SELECT, WITH ... SELECT, UNION/EXCEPT, DESCRIBE, EXPLAIN).
_READING_ROOTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "DescribeQuery", "Explain"})
_FUNCTION = re.compile(r"^Function (.+?)(?: \(alias .*?\))?(?: \(children \d+\))?$")
_OUTFILE = re.compile(r"^\s*INTO\s+OUTFILE\b", re.IGNORECASE)


def tsv_escape(text: str) -> str:
    """`text` as a String query parameter value (ClickHouse parses parameter values TSV-escaped)."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            .replace("\0", "\\0"))


def _reading_root(node: str) -> bool:
    kind = node.split(" ", 1)[0]
    return kind in _READING_ROOTS or kind.startswith(("Show", "Exists"))


def output_refusal(normalized: str) -> str | None:
    """Why formatQuery's text of a query may not run (it writes a file), checked before it is even parsed again:
    formatQuery starts `INTO OUTFILE` on a line of its own and escapes newlines inside strings and names."""
    if any(_OUTFILE.match(line) for line in normalized.splitlines()):
        return "INTO OUTFILE writes a file on the store's machine: not allowed for the analyst"
    return None


def refusal(ast: str) -> str | None:
    """Why the analyst may not run a query (None: it may), from the EXPLAIN AST of its normalized text
    (one node per line, indented one space per level)."""
    lines = [line for line in ast.splitlines() if line.strip()]
    if not lines or not _reading_root(lines[0]):
        kind = lines[0].split(" ", 1)[0] if lines else "empty query"
        return f"the analyst account is read-only: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN run ({kind})"
    parents: list[str] = []  # parents[d] = node text at depth d on the current path
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        node = line.strip()
        del parents[depth:]
        match = _FUNCTION.match(node)
        if match:
            name = match.group(1).lower()
            in_from = bool(parents) and parents[-1].split(" ", 1)[0] == "TableExpression"
            if name in OUTSIDE_FUNCTIONS or (in_from and name not in LOCAL_TABLE_FUNCTIONS):
                return (f"{'table function' if in_from else 'function'} {match.group(1)}() reads files, URLs or other "
                        "servers: not allowed for the analyst")
        parents.append(node)
    return None
