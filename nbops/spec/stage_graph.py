"""The stage graph of a spec: stage names, ``needs`` that name no stage, cycles, and what the gate follows."""

from __future__ import annotations

import keyword
from collections.abc import Mapping

from nbops.errors import did_you_mean
from nbops.graph import RESERVED_STAGES, find_cycle
from nbops.spec.models import STAGE_RE, StageSpec
from nbops.spec.pipeline import PipelineSpec
from nbops.spec.source import Loc, Problem


def graph_problems(spec: PipelineSpec) -> list[Problem]:
    """Stage names, unknown ``needs`` and cycles, all found in one pass; the stage the gate follows; a
    ``foreach_from`` that reads a swept stage."""
    problems = stage_problems(spec.stages, list(spec.stages))
    if spec.retrain is not None and spec.retrain.stage not in spec.stages:
        name = spec.retrain.stage
        problems.append(Problem(("retrain", "stage"), f"unknown stage '{name}'{did_you_mean(name, spec.stages)}"))
    for name, stage in spec.stages.items():
        source = stage.foreach_from.stage if stage.foreach_from is not None else None
        if source in spec.stages and spec.stages[source].swept:
            where = ("stages", name, "foreach_from", "stage")
            problems.append(Problem(where, f"stage '{source}' is swept itself; read a stage with one output"))
    if spec.monitor is not None and spec.retrain is None:
        problems.append(
            Problem(
                ("monitor",),
                "a monitor compares new data with what the champion was trained on, so it needs a "
                "`retrain:` block naming the registered model",
            )
        )
    return problems


def stage_problems(stages: Mapping[str, StageSpec], names: list[str]) -> list[Problem]:
    """Problems of the stage ``names`` and of the ``needs`` of ``stages`` (a subset of them)."""
    problems: list[Problem] = []
    for name in names:
        if not STAGE_RE.match(name) or keyword.iskeyword(name):
            problems.append(Problem(("stages", name), "a stage name must be an identifier of at most 63 characters"))
        elif name in RESERVED_STAGES:
            problems.append(Problem(("stages", name), f"'{name}' is reserved (a task of the generated DAG)"))
        stage = stages.get(name)
        for index, up in enumerate(stage.needs if stage is not None else ()):
            item = ("stages", name, "needs", index)
            if up not in names:
                message = f"unknown stage '{up}'{did_you_mean(up, names)}"
                problems.append(Problem(("stages", name, "needs"), message, item))
            elif up == name:
                problems.append(Problem(("stages", name, "needs"), "a stage cannot need itself", item))
    if not problems:
        cycle = find_cycle({n: s.needs for n, s in stages.items()})
        if cycle:
            up, name = cycle[0], cycle[1]  # `name` needs `up`: the cycle's first edge, pointed at
            needs = stages[name].needs
            at: Loc | None = ("stages", name, "needs", needs.index(up)) if up in needs else None
            message = "dependency cycle " + " -> ".join(cycle) + " (each stage needs the one before it)"
            problems.append(Problem(("stages", name, "needs"), message, at))
    return problems
