"""Suite specs: ``tasks/<suite>.yaml`` declares tasks x retrievers x metrics (x gates).

Example::

    name: default
    k: 100                                   # search depth per query
    metrics: [ndcg@10, recall@100, mrr@10]
    tasks:
      - {name: cranfield-50, type: golden, path: ../golden_sets/cranfield-50}
      - {name: cranfield, type: beir, path: "${EVALSUITE_DATA_DIR:-../../shared/data}/cranfield",
         optional: true}
    retrievers:
      - {name: bm25, type: bm25}
      - {name: minilm, type: dense, params: {model: all-MiniLM-L6-v2}}
      - {name: hybrid, type: hybrid, params: {retrievers: [bm25, minilm]}}

Relative paths are relative to the YAML file. ``${VAR}`` and ``${VAR:-default}`` are
expanded from the environment. In a hybrid or rerank retriever, a string naming another
retriever of the suite stands for that retriever's spec. Every problem is reported as one
line naming the YAML file, line and field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalsuite.errors import ConfigError, EvalsuiteError
from evalsuite.executors import RaySpec
from evalsuite.finetune.spec import FinetuneSpec
from evalsuite.gates import GateSpec
from evalsuite.safepaths import check_name, name_problem, names_collide

__all__ = ["RetrieverSpec", "SuiteConfig", "TaskSpec", "load_suite"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    """One task of a suite."""

    name: str
    type: Literal["golden", "beir", "sts", "mteb"]
    path: str | None = None
    split: str = "test"
    main_metric: str | None = None
    ignore_identical_ids: bool = False
    optional: bool = Field(default=False, description="skip (with a note) instead of failing when data is missing")
    corpus: str | None = Field(default=None, description="golden single-file form: the corpus file")
    mteb_task: str | None = Field(default=None, description="mteb task name, for type: mteb")
    description: str = ""

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return check_name("task", value)


class RetrieverSpec(_Strict):
    """One system of a suite: a registered retriever type with parameters."""

    name: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, Any] | None = Field(default=None, description="quality/cost grid (evalsuite.retrievers.sweep)")

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from evalsuite.retrievers.sweep import parse_sweep

            parse_sweep(value)  # a ConfigError becomes this field's one-line error
        return value

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return check_name("retriever", value)


class SuiteConfig(_Strict):
    """A whole suite, validated."""

    name: str
    description: str = ""
    k: int = Field(default=100, ge=1, strict=True)
    seed: int = Field(default=0, ge=0, lt=2**32, strict=True)
    metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@100", "mrr@10", "map"], min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    retrievers: list[RetrieverSpec] = Field(min_length=1)
    output: str | None = Field(default=None, description="results root folder; default: reports/ in the current "
                               "directory (a path given here is relative to the YAML file)")
    store: str | None = Field(default=None, description="results store (SQLite); default: <output>/history.sqlite")
    cache_dir: str | None = None
    baseline: str | None = Field(default=None, description="results.json or results-store id to compare against; "
                                 "default: baselines/<suite name>.json in the current directory")
    gates: list[GateSpec] = Field(default_factory=list)
    finetune: FinetuneSpec | None = Field(default=None, description="the fine-tune loop (evalsuite finetune)")
    executor: Literal["local", "ray"] = Field(default="local", description="where encoding and search run "
                                              "(docs/scale-out.md)")
    ray: RaySpec = Field(default_factory=RaySpec, description="the Ray cluster and workers, for executor: ray")
    cost_queries: int = Field(default=50, ge=0, description="queries timed one at a time per system (0: no latency)")
    source: str = Field(default="", exclude=True)
    #: line of each retriever's ``params`` (else of its entry) in the YAML file, by position: errors
    #: raised when a retriever is built from them name it
    retriever_lines: tuple[int | None, ...] = Field(default=(), exclude=True)

    def line_of_retriever(self, name: str) -> int | None:
        """The YAML line of retriever ``name``'s parameters, when the suite was read from a file."""
        index = next((i for i, r in enumerate(self.retrievers) if r.name == name), None)
        return self.retriever_lines[index] if index is not None and index < len(self.retriever_lines) else None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return check_name("suite", value)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        from evalsuite.metrics.spec import parse_metrics

        try:
            return [str(s) for s in parse_metrics(value)]
        except EvalsuiteError as exc:  # an unknown name is a KeyError: pydantic only wraps ValueError
            raise ValueError(str(exc)) from None

    def output_root(self) -> Path:
        """Where results go: ``output`` (relative to the YAML), else ``reports/`` in the current directory.

        Not relative to the YAML by default: a suite kept outside a ``tasks/`` folder must not
        write into the parent of the user's project."""
        return self.resolve(self.output) or Path.cwd() / "reports"

    @property
    def baseline_ref(self) -> str:
        """The baseline regression gates compare with: ``baseline``, else ``baselines/<name>.json``
        in the current directory (the committed home of baselines; ``--update-baseline`` writes it)."""
        return self.baseline or str(Path.cwd() / "baselines" / f"{self.name}.json")

    def resolve(self, path: str | None) -> Path | None:
        """A path from the spec, relative to the YAML file, with ``${VAR:-default}`` expanded."""
        if path is None:
            return None
        return expand_path(path, Path(self.source).parent)


def expand_path(path: str, base: Path) -> Path:
    """``path`` with ``${VAR:-default}`` expanded and ``~`` resolved, relative to ``base``."""
    expanded = _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), path)
    p = Path(expanded).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def data_hint(raw_path: str, source: str) -> str:
    """What to do when a task's data is absent: name the variable its path reads, and the README."""
    variables = [m.group(1) for m in _ENV.finditer(raw_path)]
    where = f"or fix 'path' in {source}; relative paths are relative to the YAML file"
    if variables:
        return (f"set {variables[0]} to the folder that holds it (README section 'Data' says where the data "
                f"comes from), {where}")
    return f"see README section 'Data', {where}"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at pydantic location ``loc`` (nearest existing parent)."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if node is not None:
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            node = None
    return line


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model at pydantic location ``loc`` of a suite (empty when unknown)."""
    import types
    import typing

    model: Any = SuiteConfig
    for key in loc:
        if isinstance(key, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(key)
        if field is None:
            return []
        model = field.annotation
        while typing.get_origin(model) in (list, typing.Union, types.UnionType):
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _unknown_field(key: str, fields: list[str]) -> str:
    """``unknown field 'metric'; did you mean 'metrics'?`` (or the fields that exist)."""
    import difflib

    fields = [f for f in fields if f != "source"]
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    if close:
        return f"unknown field {key[:60]!r}; did you mean {close[0]!r}?"
    return f"unknown field {key[:60]!r}" + (f" (fields: {', '.join(fields)})" if fields else "")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


#: a YAML document may expand (through aliases) to at most this many nodes beyond 10x its own size
_MAX_EXPANDED_NODES = 10_000


def _yaml_problem(root: yaml.Node) -> tuple[yaml.Node, str] | None:
    """A duplicate mapping key, or alias expansion beyond reason ("billion laughs"), in a composed document.

    PyYAML shares aliased objects, but validation and error messages walk the expanded
    value, so a few lines of aliases can take minutes and gigabytes."""
    sizes: dict[int, int] = {}
    own: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order, iterative (deep nesting must not hit the recursion limit)
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            own.add(id(node))
            if isinstance(node, yaml.MappingNode):
                first: dict[str, int] = {}
                for key, _ in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                        if key.value in first:
                            return key, (f"duplicate key {key.value[:60]!r} (first on line {first[key.value]}); "
                                         "YAML would keep only the last one")
                        first[key.value] = key.start_mark.line + 1
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        sizes[id(node)] = 1 + sum(sizes.get(id(c), 1) for c in children)
        if sizes[id(node)] > _MAX_EXPANDED_NODES + 10 * len(own):
            return node, (f"aliases expand to more than {_MAX_EXPANDED_NODES:,} values "
                          "(refused: an alias bomb?); write the values out")
    return None


def _read_yaml(p: Path) -> tuple[yaml.Node | None, Any]:
    """The composed node tree and the value of a suite file; every problem is a ConfigError naming file:line."""
    from evalsuite.io._text import read_text, surrogate_problem

    text = read_text(p, "suite file") if p.stat().st_size else ""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # e.g. a control character: reported by the reader before parsing
        mark = getattr(exc, "problem_mark", None)
        line = text.count("\n", 0, getattr(exc, "position", 0) or 0) + 1
        raise ConfigError(f"{p}:{mark.line + 1 if mark is not None else line}: invalid YAML: "
                          f"{getattr(exc, 'problem', None) or getattr(exc, 'reason', None) or exc}") from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        problem = _yaml_problem(root)
        if problem is not None:
            node, message = problem
            raise ConfigError(f"{p}:{node.start_mark.line + 1}: {message}")
        data = loader.construct_document(root)
        if "\\u" in text or "\\U" in text:
            surrogate = surrogate_problem(data)
            if surrogate is not None:
                raise ConfigError(f"{p}: {surrogate}")
        return root, data
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise ConfigError(f"{p}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite YAML file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; give the suite's YAML file (e.g. tasks/default.yaml)")
    if not p.is_file():
        raise ConfigError(f"{p}: " + ("is a device or pipe; give the suite's YAML file" if p.exists()
                                      else "suite file not found"))
    root, data = _read_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a suite is a YAML mapping with name, tasks, retrievers and metrics")
    data.setdefault("name", p.stem)
    try:
        retrievers = data.get("retrievers")
        lines = tuple(_line_of(root, ("retrievers", i, "params")) for i in range(len(retrievers))) \
            if isinstance(retrievers, list) else ()
        suite = SuiteConfig.model_validate({**data, "source": str(p.resolve()), "retriever_lines": lines})
    except ValidationError as exc:
        # a misspelt key first: it explains the "Field required" of the key it was meant to be
        error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = tuple(error["loc"])
        line = _line_of(root, loc)
        message = error["msg"]
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), EvalsuiteError):
            message = str(ctx["error"])
        elif error["type"] == "extra_forbidden" and loc:
            message = _unknown_field(str(loc[-1]), _fields_at(loc[:-1]))
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{p}{':' + str(line) if line else ''}: {_field_path(loc)}: {message}{more}") from None
    _check_names(suite, p, root)
    return suite


def _check_names(suite: SuiteConfig, path: Path, root: yaml.Node | None) -> None:
    """Unique names; retriever types exist; their parameters exist; references resolve."""
    from evalsuite.errors import UnknownNameError
    from evalsuite.retrievers import RETRIEVERS

    def fail(loc: tuple[int | str, ...], message: str) -> None:
        line = _line_of(root, loc)
        raise ConfigError(f"{path}{':' + str(line) if line else ''}: {_field_path(loc)}: {message}")

    all_names = (("task", [t.name for t in suite.tasks]), ("retriever", [r.name for r in suite.retrievers]))
    for kind, item_names in all_names:
        seen: dict[str, int] = {}
        for i, name in enumerate(item_names):
            if name in seen:
                fail((f"{kind}s", i, "name"), f"{kind} name {name!r} is used twice (also #{seen[name] + 1})")
            seen[name] = i
        clash = names_collide(item_names)
        if clash is not None:
            fail((f"{kind}s", item_names.index(clash[1]), "name"),
                 f"{kind} names {clash[0]!r} and {clash[1]!r} differ only in case (they would share files)")
    for i, gate in enumerate(suite.gates):
        problem = name_problem("gate", gate.name)
        if problem is not None:
            fail(("gates", i, "name"), problem)
    names = {r.name for r in suite.retrievers}
    for i, spec in enumerate(suite.retrievers):
        try:
            RETRIEVERS.canonical(spec.type)
        except UnknownNameError as exc:
            fail(("retrievers", i, "type"), str(exc))
        for key in ("retrievers", "first_stage"):
            refs = spec.params.get(key)
            for ref in refs if isinstance(refs, list) else [refs] if refs is not None else []:
                if isinstance(ref, str) and ref not in names and ref not in RETRIEVERS:
                    fail(("retrievers", i, "params", key), f"{ref!r} is neither a retriever of this suite "
                                                           f"({', '.join(sorted(names))}) nor a retriever type")
    _check_cutoffs(suite, fail)
    task_names = {t.name for t in suite.tasks}
    for i, gate in enumerate(suite.gates):
        if gate.task is not None and gate.task not in task_names:
            fail(("gates", i, "task"), f"gate {gate.name!r} names task {gate.task!r}, which is not in this suite "
                                       f"({', '.join(sorted(task_names))})")
        swept = tuple(f"{r.name}{c}" for r in suite.retrievers if r.sweep is not None for c in "@~")
        if gate.system is not None and gate.system not in names and not gate.system.startswith(swept or ("\0",)):
            fail(("gates", i, "system"), f"gate {gate.name!r} names system {gate.system!r}, which is not in this "
                                         f"suite ({', '.join(sorted(names))})")
    if suite.finetune is not None:
        from evalsuite.finetune.spec import check_finetune

        check_finetune(suite, fail)
    for i, task in enumerate(suite.tasks):
        if task.type in ("golden", "beir", "sts") and not task.path:
            fail(("tasks", i), f"task {task.name!r} of type {task.type} needs a path")
        if task.type == "mteb" and not task.mteb_task:
            fail(("tasks", i), f"task {task.name!r} of type mteb needs mteb_task (e.g. STSBenchmark)")


def _check_cutoffs(suite: SuiteConfig, fail: Any) -> None:
    """A metric cut off deeper than the run depth ``k`` would silently measure a shallower ranking."""
    from evalsuite.metrics.spec import parse_metric

    def check(loc: tuple[int | str, ...], metric: str) -> None:
        cutoff = parse_metric(metric).cutoff
        if cutoff is not None and cutoff > suite.k:
            fail(loc, f"{metric} needs the top {cutoff} results of each query, but k is {suite.k}: the runs hold "
                      f"only {suite.k}, so {metric} would measure a top-{suite.k} ranking; raise k to at least "
                      f"{cutoff} or lower the cutoff")

    for i, metric in enumerate(suite.metrics):
        check(("metrics", i), metric)
    from evalsuite.cost_gates import is_cost_metric

    for i, gate in enumerate(suite.gates):
        if not is_cost_metric(gate.metric):  # a cost (latency, bytes) has no cutoff
            check(("gates", i, "metric"), gate.metric)
