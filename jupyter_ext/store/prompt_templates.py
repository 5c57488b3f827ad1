"""The built-in prompts' templates: the copy workload's system prompt and questions about a
quoted documentation passage, and the open workload's questions that quote nothing. The
benchmark's workloads (`bench.workload`) and draft training's built-in prompts
(`techniques.draft_data`) both build from these, so a draft trained on the built-in text
learns the shape of prompts it is benchmarked on."""

from __future__ import annotations

SYSTEM_PROMPT = ("You are a helpful assistant. Answer the user's question using the documentation "
                 "they provide. Be thorough and explain step by step.")

QUESTIONS = [
    "Using only the documentation above, explain what `{topic}` is for and walk through how a programmer would use it.",
    "Summarise the documentation above for a new Python developer, then list the three most important details about `{topic}`.",
    "Based on the text above, what mistakes might someone make when using `{topic}`, and how can they avoid them?",
    "Read the documentation above and write a short tutorial on `{topic}`, with an example in prose.",
    "What problem does `{topic}` solve according to the passage, and what are its main parts?",
]

OPEN_SYSTEM_PROMPT = ("You are a helpful assistant. Answer from what you know, in your own words; "
                      "explain clearly and give examples.")

OPEN_QUESTIONS = [
    "Explain in your own words what `{topic}` in Python is for, and when a programmer would reach for it.",
    "Without quoting any documentation, describe how `{topic}` works and what its main trade-offs are.",
    "A colleague new to Python asks about `{topic}`. Write them a friendly explanation with an example of your own.",
    "Compare `{topic}` with another way of solving the same problem, and say when you would prefer each.",
    "What are common misconceptions about `{topic}`? Explain why each one is wrong.",
    "Describe a realistic project where `{topic}` would be useful, and explain the design decisions involved.",
]
