"""When a cheaper model is worth recommending, and how sure Lectr is: pure rules.

Task type first, because the client said what the traffic is (``X-Lectr-Task``):

================  ==========================================================
classification    up to 2 steps down, high confidence
extraction        1 step; high when the heuristics agree, else medium
summarisation     1 step; high when the heuristics agree, else medium
generation        1 step, medium, only when the heuristics agree
reasoning         never
none / unknown    1 step, medium, only when the heuristics agree
================  ==========================================================

The heuristics say "a smaller model can likely do this": the requests are short and
rarely fail. They agree when the token counts of some requests are known and, over the
group's 30 days, mean prompt <= :data:`MAX_MEAN_PROMPT_TOKENS` (1,500) tokens, mean
completion <= :data:`MAX_MEAN_COMPLETION_TOKENS` (400) tokens and error rate <=
:data:`MAX_ERROR_RATE` (2 %). Short prompts leave little context a smaller model could
lose track of, short completions little room for long-form quality to show, and a high
error rate means the traffic has a problem a model change would hide.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.recommendation_signals import DOMINANT_SHARE, Signals

TASK_TYPES = ("classification", "extraction", "summarisation", "generation", "reasoning")
MAX_MEAN_PROMPT_TOKENS = 1500
MAX_MEAN_COMPLETION_TOKENS = 400
MAX_ERROR_RATE = 0.02
HIGH, MEDIUM = "high", "medium"


@dataclass(frozen=True)
class Plan:
    """Recommend a target at most ``max_steps`` down, with this ``confidence``;
    ``rule`` names the rule in the evidence, ``caveat`` says why confidence is not high."""

    max_steps: int
    confidence: str
    rule: str
    caveat: str = ""


def thresholds() -> dict[str, float]:
    return {
        "max_mean_prompt_tokens": MAX_MEAN_PROMPT_TOKENS,
        "max_mean_completion_tokens": MAX_MEAN_COMPLETION_TOKENS,
        "max_error_rate": MAX_ERROR_RATE,
    }


def heuristic_misses(signals: Signals) -> list[str]:
    """Why the heuristics do not agree, in words (empty when they do)."""
    prompt, completion = signals.mean_prompt_tokens, signals.mean_completion_tokens
    if prompt is None or completion is None:
        return ["token counts are unknown"]
    misses = []
    if prompt > MAX_MEAN_PROMPT_TOKENS:
        misses.append(f"prompts are long (over {MAX_MEAN_PROMPT_TOKENS:,} tokens on average)")
    if completion > MAX_MEAN_COMPLETION_TOKENS:
        misses.append(
            f"completions are long (over {MAX_MEAN_COMPLETION_TOKENS:,} tokens on average)"
        )
    if signals.error_rate > MAX_ERROR_RATE:
        misses.append(f"the error rate is over {MAX_ERROR_RATE:.0%}")
    return misses


def plan(task_type: str | None, misses: list[str]) -> Plan | None:
    """The rule for a group whose dominant task type is ``task_type`` (None: none
    dominates) and whose heuristics missed ``misses``; None: recommend nothing."""
    agree = not misses
    if task_type == "classification":
        return Plan(2, HIGH, "classification: up to 2 steps")
    if task_type in ("extraction", "summarisation"):
        caveat = "" if agree else "; ".join(misses)
        return Plan(1, HIGH if agree else MEDIUM, f"{task_type}: 1 step", caveat)
    if task_type == "reasoning" or not agree:
        return None
    if task_type == "generation":
        return Plan(1, MEDIUM, "generation: 1 step when short", "generation quality varies")
    caveat = "no task type says what this traffic is"
    return Plan(1, MEDIUM, "no known task type: 1 step when short", caveat)


def rationale(signals: Signals, task_type: str | None, target: str, monthly: str) -> str:
    """Plain words: what the traffic is and why ``target`` can likely serve it, e.g.
    "92 % of 1,240 requests are classification; prompts average 310 tokens, completions
    12; error rate 0.4 %: gpt-6-luna can likely do this for $41.20 a month less"."""
    total = f"{signals.requests:,} requests"
    if task_type is None:
        what = f"No task type covers {DOMINANT_SHARE * 100:.0f} % of {total}"
    else:
        share = signals.task_shares.get(task_type, 0.0)
        known = "" if task_type in TASK_TYPES else " (not a task type Lectr knows)"
        what = f"{share:.0%} of {total} are {task_type}{known}".replace("%", " %", 1)
    prompt, completion = signals.mean_prompt_tokens, signals.mean_completion_tokens
    if prompt is None or completion is None:
        tokens = "token counts unknown"
    else:
        tokens = f"prompts average {prompt:,.0f} tokens, completions {completion:,.0f}"
    errors = f"error rate {signals.error_rate * 100:.1f} %"
    return f"{what}; {tokens}; {errors}: {target} can likely do this for {monthly} a month less"
