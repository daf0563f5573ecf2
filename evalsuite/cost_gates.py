"""Gates on costs, so that CI holds a budget as well as a quality floor::

    gates:
      - {name: latency-budget, metric: query_latency_p95_ms, above: 50}
      - {name: memory-budget, metric: bytes_per_doc, above: 512, system: minilm@256/int8/flat}

The metric is one of the cost keys every result carries (:data:`COST_GATE_METRICS`, from
:mod:`evalsuite.retrievers.cost`); the rule fires when the measured value lies beyond the
threshold (``above``: greater than it; ``below``: less than it), FAIL or WARN as ``on_fire``
says. A cost is one measurement on the machine of the run, not a mean over queries: no
bootstrap, no regression rule (``max_drop``). A result without that cost measured FAILs, as
any gate on missing evidence does.
"""

from __future__ import annotations

import math
from typing import Any

from evalsuite.retrievers.cost import COST_KEYS

__all__ = ["COST_GATE_METRICS", "cost_gate_results", "is_cost_metric"]

#: the cost keys a gate may name
COST_GATE_METRICS = frozenset(COST_KEYS) | {"rescore_bytes_per_doc"}


def is_cost_metric(name: str) -> bool:
    return name in COST_GATE_METRICS


def cost_gate_results(gate: Any, results: Any) -> list[Any]:
    """The decisions of cost ``gate`` (a :class:`~evalsuite.gates.GateSpec`) on ``results``."""
    from evalsuite.gates import GateResult

    cells = [c for c in results.cells if c.kind == "retrieval"
             and (gate.task is None or c.task == gate.task) and (gate.system is None or c.system == gate.system)]
    if not cells:
        where = " and ".join(f"{k} {v!r}" for k, v in (("task", gate.task), ("system", gate.system)) if v) \
            or "any system"
        return [GateResult(gate.name, "cost", gate.task or "*", gate.system or "*", gate.metric, "fail",
                           f"no retrieval result for {where}: nothing to hold to the {gate.metric} budget")]
    out = []
    above = gate.above is not None
    threshold = float(gate.above if above else gate.below)
    for cell in cells:
        value = (cell.costs or {}).get(gate.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            why = (cell.costs or {}).get("encode_note") if gate.metric == "encode_docs_per_s" else None
            out.append(GateResult(gate.name, "cost", cell.task, cell.system, gate.metric, "fail",
                                  f"{gate.metric} was not measured for {cell.system} on {cell.task}"
                                  + (f" ({why})" if why else "") + ": a budget cannot pass on missing evidence",
                                  threshold=threshold))
            continue
        value = float(value)
        fired = value > threshold if above else value < threshold
        label = (gate.decision or ("FAIL" if gate.on_fire == "fail" else "WARN")) if fired \
            else (gate.otherwise or "PASS")
        measured = ""
        if gate.metric.startswith("query_latency") or gate.metric == "queries_per_s":
            measured = (f" (wall time on the run's machine, {cell.costs.get('latency_queries', '?')} queries "
                        "timed one at a time)")
        message = (f"{label}: {gate.metric} = {value:,.4g} on {cell.task} for {cell.system}: "
                   f"{'above' if above else 'below'} {threshold:g}" if fired else
                   f"{label}: {gate.metric} = {value:,.4g} on {cell.task} for {cell.system}: within the budget "
                   f"({'at most' if above else 'at least'} {threshold:g})") + measured
        out.append(GateResult(gate.name, "cost", cell.task, cell.system, gate.metric,
                              gate.on_fire if fired else "pass", message, decision=label, estimate=value,
                              threshold=threshold, n=1))
    return out
