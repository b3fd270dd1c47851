"""The public API as MCP tools: an MCP client over streamable HTTP on loopback lists them and calls one."""

from __future__ import annotations

import asyncio

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.serving_helpers import KeywordPredictor, make_settings, running_server
from tweet_classifier.serving.service import ClassifierService


async def _list_and_call(url: str) -> tuple[dict, str]:
    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        answer = await session.call_tool("predict", {"text": "@united worst delay ever"})
        return tools, "".join(part.text for part in answer.content if part.type == "text")


def test_mcp_client_lists_the_typed_documented_tools_and_gets_a_label(tmp_path) -> None:
    service = ClassifierService(make_settings(tmp_path), loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    assert service.wait_until_loaded(10)
    with running_server(service, with_ui=True) as base_url:
        tools, answer = asyncio.run(_list_and_call(f"{base_url}/gradio_api/mcp/"))
    assert {"predict", "predict_batch", "feedback", "metrics"} <= set(tools)
    predict = tools["predict"].inputSchema
    assert predict["required"] == ["text"]
    assert predict["properties"]["text"]["type"] == "string"
    assert "the tweet as written" in predict["properties"]["text"]["description"]
    assert tools["predict_batch"].inputSchema["properties"]["texts"]["items"]["type"] == "string"
    assert "Classify one tweet" in tools["predict"].description
    assert "'label': 'negative'" in answer  # Gradio sends the returned dict as its str()
    assert service.metrics()["requests_served"] == 1


def test_mcp_server_is_off_when_configured_off(tmp_path) -> None:
    import httpx

    settings = make_settings(tmp_path, mcp_server=False)
    service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    assert service.wait_until_loaded(10)
    with running_server(service, with_ui=True) as base_url:
        response = httpx.post(f"{base_url}/gradio_api/mcp/", json={}, timeout=10)
    assert response.status_code == 404
