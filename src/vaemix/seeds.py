"""Every trained run over the ``seeds`` params list, inside one stage.

A stage (``pretrain@``, ``train@``, ``baselines@``, ``moe@``, ``moe_plain@``) calls
:func:`run_over_seeds` with a function that fits and exports one seed into a staging
directory. The stage then publishes, at the end and only if every seed succeeded:

- ``artifacts/<dataset>/<name>/``: the first seed's files (the representative run that the
  figures show), and each other seed's files under ``seed<s>/``;
- ``reports/curves/<dataset>/<name>/``: the same layout for the per-epoch curves;
- ``reports/metrics/<dataset>/<name>.json``: at the top level the mean over seeds of every
  number (so the output contract and ``dvc metrics diff`` read the aggregate), ``std``
  (the sample standard deviation, ddof = 1, when there are two seeds or more),
  ``per_seed`` (each seed's own metrics), ``seeds`` and ``n_seeds``; ``seed`` is the
  first seed, whose artifacts lie at the top level.

Staging lives in ``checkpoints/<dataset>/<name>/seed<s>/`` (git-ignored, outside DVC's
outputs). A seed that finished is kept there with its resume key, so a stage killed during
a later seed skips it when re-run with the same key; the staging is deleted once the
outputs are published.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vaemix.io import atomic_dir, read_json, write_json, write_metrics
from vaemix.metrics import mark_collapsed

ARTIFACTS = Path("artifacts")
CURVES = Path("reports/curves")
CHECKPOINTS = Path("checkpoints")
DONE_FILE = "done.json"
DEFAULT_COLLAPSE_FRACTION = 0.5  # params' collapse_fraction when a caller's params lack it

# fit(seed, artifacts_dir, curves_dir, checkpoint_dir) -> metrics (None on non-main ranks)
SeedRun = Callable[[int, Path, Path, Path], "dict[str, Any] | None"]


def seeds_of(params: Mapping[str, Any]) -> list[int]:
    """The training seeds: ``seeds`` when given, else ``[seed]``."""
    seeds = params.get("seeds")
    return [int(s) for s in seeds] if seeds else [int(params["seed"])]


def seed_subdir(seed: int, seeds: Sequence[int]) -> str:
    """Where seed ``seed``'s files lie inside a published directory ("" = the top)."""
    return "" if seed == seeds[0] else f"seed{seed}"


def seed_path(root: str | Path, seed: int, seeds: Sequence[int]) -> Path:
    """``root`` for the first seed, ``root/seed<s>`` for the others."""
    sub = seed_subdir(seed, seeds)
    return Path(root) / sub if sub else Path(root)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def aggregate(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics file of a run over seeds (see the module docstring).

    Numbers present for every seed are averaged; other values (flags, names) are taken
    from the first seed, except booleans, which hold only if they hold for every seed, and
    ``collapsed``, which holds if it holds for any seed (``n_seeds_collapsed`` counts them).
    """
    seeds = list(per_seed)
    if not seeds:
        raise ValueError("aggregate: no seeds")
    first = per_seed[seeds[0]]
    out: dict[str, Any] = {}
    std: dict[str, float] = {}
    for key, value in first.items():
        values = [per_seed[s].get(key) for s in seeds]
        if all(_is_number(v) for v in values):
            mean = math.fsum(values) / len(values)
            out[key] = mean
            if len(values) > 1:
                var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
                std[key] = math.sqrt(var)
        elif key == "collapsed" and all(isinstance(v, bool) for v in values):
            # a run is collapsed when any of its seeds is (the mean hides it otherwise)
            out[key] = any(values)
            out["n_seeds_collapsed"] = sum(values)
        elif all(isinstance(v, bool) for v in values):
            out[key] = all(values)
        else:
            out[key] = value
    out.update(seed=seeds[0], seeds=seeds, n_seeds=len(seeds),
               per_seed={str(s): dict(per_seed[s]) for s in seeds})
    if std:
        out["std"] = std
    return out


def _group() -> Any:
    """This process's rank in a data-parallel run (:class:`vaemix.distributed.Group`), or
    None. A process group needs torch; a stage that never imports it (the baselines) is
    alone, and is spared the seconds that importing torch costs."""
    if "torch" not in sys.modules:
        return None
    from vaemix import distributed

    return distributed.current()


def _is_main() -> bool:
    group = _group()
    return group is None or group.main


def _agree(flag: bool) -> bool:
    """True only if ``flag`` holds on every rank (data-parallel runs)."""
    if _group() is None:
        return flag
    import torch

    every = torch.tensor([1 if flag else 0])
    torch.distributed.all_reduce(every, op=torch.distributed.ReduceOp.MIN)
    return bool(int(every))


def _staged(stage: Path, key: str | None) -> dict[str, Any] | None:
    """The metrics of a seed that finished earlier with the same key, else None."""
    done = stage / DONE_FILE
    if key is None or not done.is_file():
        return None
    try:
        record = read_json(done)
    except (OSError, ValueError):
        return None
    return record.get("metrics") if record.get("key") == key else None


def _move_children(src: Path, dest: Path) -> None:
    if not src.is_dir():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        shutil.move(str(child), str(dest / child.name))


def run_over_seeds(
    params: Mapping[str, Any],
    dataset: str,
    name: str,
    fit_seed: SeedRun,
    *,
    key_of: Callable[[int], str] | None = None,
    curves: bool = True,
) -> dict[str, Any]:
    """Fit ``name`` on ``dataset`` once per seed and publish the outputs together.

    ``fit_seed(seed, artifacts_dir, curves_dir, checkpoint_dir)`` trains one seed, writes
    its files into the two directories it is given (they are created by the caller's
    atomic writes) and returns its metrics. ``key_of(seed)`` digests everything the seed's
    result depends on; with it, a seed that finished in an earlier, interrupted run of the
    stage is reused. Returns the aggregated metrics ({} on non-main ranks).
    """
    seeds = seeds_of(params)
    root = CHECKPOINTS / dataset / name
    per_seed: dict[int, dict[str, Any]] = {}
    main = _is_main()
    for seed in seeds:
        stage = root / f"seed{seed}"
        key = key_of(seed) if key_of is not None else None
        staged = _staged(stage, key) if main else None
        if _agree(staged is not None or not main) and staged is not None:
            print(f"{dataset}/{name}: seed {seed} finished in an earlier run; reusing it")
            per_seed[seed] = staged
            continue
        if main:
            shutil.rmtree(stage / "artifacts", ignore_errors=True)
            shutil.rmtree(stage / "curves", ignore_errors=True)
            (stage / DONE_FILE).unlink(missing_ok=True)
        metrics = fit_seed(seed, stage / "artifacts", stage / "curves", stage / "checkpoint")
        if main:
            assert metrics is not None
            k = params.get("model", {}).get(dataset, {}).get("n_clusters")
            if k is not None:
                mark_collapsed(metrics, int(k), float(params.get("collapse_fraction",
                                                                 DEFAULT_COLLAPSE_FRACTION)))
            per_seed[seed] = metrics
            if key is not None:
                write_json(stage / DONE_FILE, {"key": key, "metrics": metrics})
    if not main:
        return {}
    metrics = aggregate(per_seed)
    with atomic_dir(ARTIFACTS / dataset / name) as out:
        for seed in seeds:
            _move_children(root / f"seed{seed}" / "artifacts", seed_path(out, seed, seeds))
    if curves:
        with atomic_dir(CURVES / dataset / name) as out:
            for seed in seeds:
                _move_children(root / f"seed{seed}" / "curves", seed_path(out, seed, seeds))
    write_metrics(dataset, name, metrics)
    shutil.rmtree(root, ignore_errors=True)
    return metrics
