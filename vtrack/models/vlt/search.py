"""Evolutionary architecture search over a one-shot supernet (SPOS, Guo et al. 2020), used by
VLT's asymmetric search with the success AUC of tracking a validation split as reward.

The search is generic: an architecture is a list of genes, gene ``i`` taking values in
``range(space[i])``; ``reward(genes) -> float`` is maximised. Each generation keeps the ``topk``
best, then makes ``mutations`` children (each gene re-drawn with ``mutation_prob``) and
``crossovers`` children (each gene from one of two random parents), as SPOS does.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


@dataclass
class EvolutionConfig:
    """SPOS defaults: population 50, top 10, 25 mutations (p=0.1), 25 crossovers, 20 generations."""

    population: int = 50
    topk: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.1
    generations: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("population", "topk", "generations"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name}: expected a positive int, got {getattr(self, name)}")
        if self.topk > self.population:
            raise ValueError(f"search.topk: expected <= population ({self.population}), got {self.topk}")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ValueError(f"search.mutation_prob: expected a probability, got {self.mutation_prob}")


@dataclass
class SearchResult:
    """Best genes and reward, plus per-generation best/mean rewards and every evaluated candidate."""

    best: list[int]
    best_reward: float
    history: list[dict[str, float]] = field(default_factory=list)
    evaluated: dict[tuple[int, ...], float] = field(default_factory=dict)


def evolutionary_search(
    space: Sequence[int],
    reward: Callable[[list[int]], float],
    cfg: EvolutionConfig | None = None,
    *,
    is_valid: Callable[[list[int]], bool] | None = None,
    progress: bool = True,
) -> SearchResult:
    """Maximise ``reward`` over architectures in ``space`` by evolution; returns the best found.

    Args:
        space: number of choices for each gene.
        reward: evaluates one architecture (higher is better); called once per distinct candidate.
        cfg: evolution hyper-parameters.
        is_valid: optional constraint (e.g. a FLOPs budget); invalid candidates are re-drawn.
        progress: show a tqdm bar over generations.
    """
    cfg = cfg or EvolutionConfig()
    if not space or any(int(n) < 1 for n in space):
        raise ValueError(f"space: expected a non-empty list of positive choice counts, got {list(space)}")
    rng = random.Random(cfg.seed)
    cache: dict[tuple[int, ...], float] = {}
    valid = is_valid or (lambda genes: True)

    def score(genes: list[int]) -> float:
        key = tuple(genes)
        if key not in cache:
            cache[key] = float(reward(list(genes)))
        return cache[key]

    def draw(make: Callable[[], list[int]], tries: int = 100) -> list[int] | None:
        for _ in range(tries):
            genes = make()
            if valid(genes) and tuple(genes) not in seen:
                return genes
        return None

    seen: set[tuple[int, ...]] = set()
    population: list[list[int]] = []
    while len(population) < cfg.population:
        genes = draw(lambda: [rng.randrange(n) for n in space])
        if genes is None:
            break
        seen.add(tuple(genes))
        population.append(genes)
    history: list[dict[str, float]] = []
    for gen in tqdm(range(cfg.generations), desc="evolution", disable=not progress):
        ranked = sorted(population, key=score, reverse=True)
        top = ranked[: cfg.topk]
        rewards = [score(g) for g in population]
        history.append({"generation": gen, "best": score(top[0]), "mean": sum(rewards) / len(rewards)})
        log.info("generation %d: best %.4f, mean %.4f", gen, history[-1]["best"], history[-1]["mean"])
        children: list[list[int]] = []
        for _ in range(cfg.mutations):
            parent = rng.choice(top)
            child = draw(lambda: [rng.randrange(n) if rng.random() < cfg.mutation_prob else g for g, n in zip(parent, space)])
            if child is not None:
                seen.add(tuple(child))
                children.append(child)
        for _ in range(cfg.crossovers):
            a, b = rng.choice(top), rng.choice(top)
            child = draw(lambda: [x if rng.random() < 0.5 else y for x, y in zip(a, b)])
            if child is not None:
                seen.add(tuple(child))
                children.append(child)
        population = top + children
    best = max(population, key=score)
    return SearchResult(best=list(best), best_reward=score(best), history=history, evaluated=dict(cache))
