"""Click models: how a simulated person reacts to a ranking, given each result's relevance grade.

Two standard models (Chuklin, Markov & de Rijke, *Click Models for Web Search*, 2015):

* ``PositionBasedModel`` -- a result is clicked iff it is examined, with P = (1/k)^eta at
  position k, and attractive, with P = attraction[grade]; positions are independent.
* ``CascadeModel`` -- the person scans top-down, clicks an attractive result and stops once
  satisfied (a stream of an intended entity); after an unsatisfying click they go on with
  P = continue_after_click.

After a click, a stream follows with P = stream_given_click[grade] and a like after a stream
with P = like_given_stream[grade]; a click that does not turn into a stream is a skip. Each
model also gives its exact per-position click probabilities (``click_probabilities``), which
is what the simulator's CTR-by-position test checks the simulated clicks against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ClickModelConfig


@dataclass(frozen=True)
class Feedback:
    position: int  # 1-based
    event: str  # click | stream | like | skip
    seconds: float | None  # listening time for streams and skips
    delay: float  # seconds after the impression


class _Outcomes:
    """What follows a click: stream (with listening time), like, or a skip."""

    def __init__(self, config: ClickModelConfig):
        self.config = config

    def after_click(self, position: int, grade: int, delay: float, rng: np.random.Generator) -> list[Feedback]:
        c = self.config
        events = [Feedback(position, "click", None, delay)]
        if rng.random() < c.stream_given_click[grade]:
            seconds = float(rng.lognormal(np.log(c.stream_seconds_median), 0.5))
            events.append(Feedback(position, "stream", round(seconds, 1), delay + 1.0))
            if rng.random() < c.like_given_stream[grade]:
                events.append(Feedback(position, "like", None, delay + 1.0 + min(seconds, 60.0)))
        else:
            events.append(
                Feedback(position, "skip", round(float(rng.uniform(1.0, c.skip_seconds_max)), 1), delay + 1.0)
            )
        return events


class PositionBasedModel:
    def __init__(self, config: ClickModelConfig):
        self.config = config
        self.outcomes = _Outcomes(config)

    def examination(self, positions: int) -> np.ndarray:
        return (1.0 / np.arange(1, positions + 1)) ** self.config.eta

    def click_probabilities(self, grades: list[int]) -> np.ndarray:
        attraction = np.array([self.config.attraction[g] for g in grades])
        return self.examination(len(grades)) * attraction

    def simulate(self, grades: list[int], rng: np.random.Generator) -> list[Feedback]:
        clicked = rng.random(len(grades)) < self.click_probabilities(grades)
        events, delay = [], 0.0
        for index in np.flatnonzero(clicked):
            delay += float(rng.uniform(2.0, 10.0))
            events += self.outcomes.after_click(int(index) + 1, grades[index], delay, rng)
        return events


class CascadeModel:
    def __init__(self, config: ClickModelConfig):
        self.config = config
        self.outcomes = _Outcomes(config)

    def _stop_after_click(self, grade: int) -> float:
        satisfied = self.config.stream_given_click[grade] if grade == 2 else 0.0
        return satisfied + (1.0 - satisfied) * (1.0 - self.config.continue_after_click)

    def click_probabilities(self, grades: list[int]) -> np.ndarray:
        reach, out = 1.0, []
        for grade in grades:
            click = reach * self.config.attraction[grade]
            out.append(click)
            reach -= click * self._stop_after_click(grade)
        return np.array(out)

    def simulate(self, grades: list[int], rng: np.random.Generator) -> list[Feedback]:
        events, delay = [], 0.0
        for index, grade in enumerate(grades):
            if rng.random() >= self.config.attraction[grade]:
                continue
            delay += float(rng.uniform(2.0, 10.0))
            after = self.outcomes.after_click(index + 1, grade, delay, rng)
            events += after
            delay = after[-1].delay
            satisfied = grade == 2 and any(e.event == "stream" for e in after)
            if satisfied or rng.random() >= self.config.continue_after_click:
                break
        return events


def make_click_model(config: ClickModelConfig) -> PositionBasedModel | CascadeModel:
    models: dict[str, type[PositionBasedModel] | type[CascadeModel]] = {
        "pbm": PositionBasedModel,
        "cascade": CascadeModel,
    }
    return models[config.model](config)
