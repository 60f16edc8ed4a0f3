"""The load test's second process: fire concurrent streaming completions with the official
openai client and print one JSON object with every outcome.

    python load_client.py BASE_URL MODEL MAX_TOKENS PROMPT [PROMPT ...]

Each outcome: {"prompt", "status": 200 | 429, "text", "finish_reason", "usage", "retry_after"}.
Retries are off, so a 429 is seen as such. The API key is $OPENAI_API_KEY, if set.
"""

import asyncio
import json
import os
import sys

from openai import AsyncOpenAI, RateLimitError


async def one(client: AsyncOpenAI, model: str, prompt: str, max_tokens: int) -> dict:
    out = {"prompt": prompt, "status": 200, "text": "", "finish_reason": None, "usage": None,
           "retry_after": None}
    try:
        stream = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True})
        async for chunk in stream:
            for choice in chunk.choices:
                out["text"] += choice.text
                out["finish_reason"] = choice.finish_reason or out["finish_reason"]
            if chunk.usage is not None:
                out["usage"] = chunk.usage.model_dump()
    except RateLimitError as e:
        out.update(status=429, retry_after=e.response.headers.get("retry-after"), text=None)
    return out


async def main(base_url: str, model: str, max_tokens: int, prompts: list[str]) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "unused"), max_retries=0, timeout=600)
    outcomes = await asyncio.gather(*(one(client, model, p, max_tokens) for p in prompts))
    await client.close()
    print(json.dumps(outcomes))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
