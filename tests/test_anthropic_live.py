"""Opt-in: the support team against the real Messages API.

Runs only when ``ANTHROPIC_API_KEY`` is set (it spends a fraction of a cent on
Claude Haiku); otherwise it is skipped and says why.
"""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from contracts.results import RunStatus
from providers.anthropic import AnthropicConfig, AnthropicProvider
from tests.support import running_worker, start
from tests.test_teams_e2e import hand_cost_micro

pytestmark = pytest.mark.skipif(
    not os.environ.get("ANTHROPIC_API_KEY"),
    reason="live Claude test: set ANTHROPIC_API_KEY to run it against the real Messages API",
)


async def test_support_on_the_real_api(client: Client, task_queue: str) -> None:
    provider = AnthropicProvider(
        AnthropicConfig(api_key=SecretStr(os.environ["ANTHROPIC_API_KEY"]))
    )
    async with running_worker(client, task_queue, provider=provider):
        result = await (await start(client, task_queue, "support", "What are your hours?")).result()

    assert result.status in (RunStatus.COMPLETED, RunStatus.DEGRADED)
    assert result.route is not None
    for call in result.calls:
        assert call.provider == "anthropic"
        assert call.input_tokens > 0 and call.output_tokens > 0
        assert call.cost_micro == hand_cost_micro(
            call.model,
            call.input_tokens,
            call.output_tokens,
            call.cache_creation_input_tokens,
            call.cache_read_input_tokens,
        )
