"""Metric and label names a PromQL expression uses (enough of PromQL's lexer
for the dashboard's and the alert rules' expressions).

    >>> uses = promql_names.parse('sum by (model) (rate(wfm_x_total{family="a"}[5m]))')
    >>> uses.metrics, uses.matcher_labels, uses.grouping_labels
    ({'wfm_x_total'}, {'wfm_x_total': {'family'}}, {'model'})

Grafana's variables are replaced first (substitute_grafana_variables).
"""
import re
from dataclasses import dataclass, field

AGGREGATIONS = {
    "sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear",
    "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time",
    "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time",
    "sum_over_time", "count_over_time", "quantile_over_time", "stddev_over_time",
    "stdvar_over_time", "last_over_time", "present_over_time", "acos", "acosh", "asin",
    "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
}
# Keywords followed by a parenthesised label list.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OTHER_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<punct>[(){}\[\],]|=~|!~|!=|==|<=|>=|[-+*/%^<>=@])
""", re.VERBOSE)


class PromQLError(ValueError):
    pass


@dataclass
class Uses:
    metrics: set = field(default_factory=set)
    # Label names in each metric's {...} matchers.
    matcher_labels: dict = field(default_factory=dict)
    # Label names in by / without / on / ignoring / group_* lists.
    grouping_labels: set = field(default_factory=set)
    functions: set = field(default_factory=set)


def tokenize(expr):
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise PromQLError(f"cannot lex {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group()))
    return tokens


def _label_list(tokens, i, out):
    """Reads '(' name, ... ')' starting at tokens[i]; returns the next index."""
    if i >= len(tokens) or tokens[i][1] != "(":
        raise PromQLError("expected a label list after a grouping keyword")
    i += 1
    while i < len(tokens) and tokens[i][1] != ")":
        kind, text = tokens[i]
        if kind == "ident":
            out.add(text)
        elif text != ",":
            raise PromQLError(f"unexpected {text!r} in a label list")
        i += 1
    return i + 1


def _matchers(tokens, i, out):
    """Reads '{' name op "value", ... '}' at tokens[i]; returns the next index."""
    i += 1
    while i < len(tokens) and tokens[i][1] != "}":
        kind, text = tokens[i]
        if kind == "ident":
            out.add(text)
            if i + 2 >= len(tokens) or tokens[i + 1][1] not in ("=", "!=", "=~", "!~") \
                    or tokens[i + 2][0] != "string":
                raise PromQLError(f"bad matcher after {text!r}")
            i += 3
        elif text == ",":
            i += 1
        else:
            raise PromQLError(f"unexpected {text!r} in matchers")
    if i >= len(tokens):
        raise PromQLError("unterminated {")
    return i + 1


def parse(expr):
    tokens = tokenize(expr)
    uses = Uses()
    depth = 0
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth < 0:
                raise PromQLError(f"unbalanced ) in {expr!r}")
        elif text == "[":
            # A range or subquery duration: skip to ']'.
            while i < len(tokens) and tokens[i][1] != "]":
                i += 1
        elif text == "{":
            # A selector without a metric name.
            raise PromQLError(f"selector without a metric name in {expr!r}")
        elif kind == "ident":
            if text in LABEL_LIST_KEYWORDS:
                i = _label_list(tokens, i + 1, uses.grouping_labels)
                continue
            if text == "offset":
                # offset <duration>: a number and a unit, or e.g. 1h30m.
                i += 1
                while i < len(tokens) and tokens[i][0] in ("number", "ident") \
                        and not (tokens[i][0] == "ident" and tokens[i][1] in OTHER_KEYWORDS):
                    i += 1
                continue
            if text in OTHER_KEYWORDS:
                pass
            elif text in AGGREGATIONS:
                uses.functions.add(text)
            elif nxt == "(":
                if text not in FUNCTIONS:
                    raise PromQLError(f"unknown function {text!r} in {expr!r}")
                uses.functions.add(text)
            else:
                uses.metrics.add(text)
                labels = uses.matcher_labels.setdefault(text, set())
                if nxt == "{":
                    i = _matchers(tokens, i + 1, labels)
                    continue
        i += 1
    if depth != 0:
        raise PromQLError(f"unbalanced ( in {expr!r}")
    return uses


GRAFANA_DEFAULTS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


def substitute_grafana_variables(expr, all_value=".*"):
    """Replaces $var / ${var} / [[var]]: Grafana's built-in intervals by
    fixed durations, template variables by their 'All' regex."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return GRAFANA_DEFAULTS.get(name, all_value)
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def parse_exposition(text):
    """Prometheus text format -> {sample name: set of label names}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+", line)
        if not m:
            raise PromQLError(f"bad exposition line {line!r}")
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        samples.setdefault(m.group(1), set()).update(labels)
    return samples
