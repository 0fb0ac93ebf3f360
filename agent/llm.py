"""The LLM: any OpenAI-compatible endpoint through ``ChatOpenAI``, or none at all.

Why optional: the learned tools localise and classify; the model gathers focused evidence and
writes the explanation. With no API key configured the same graph runs with the deterministic
planner and reporter, so TAMO-RCA works offline and in CI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.core.settings import LLMSettings

if TYPE_CHECKING:  # the OpenAI client loads only when an LLM is configured
    from langchain_openai import ChatOpenAI


def make_llm(settings: LLMSettings) -> ChatOpenAI | None:
    """A configured chat model, or ``None`` when no key is set (deterministic mode)."""
    if settings.api_key is None or not settings.api_key.get_secret_value():
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.model,
        api_key=settings.api_key,
        base_url=settings.base_url,
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        stream_usage=True,
    )
