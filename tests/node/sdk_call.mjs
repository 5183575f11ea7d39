// Requests through the official Node SDKs, for tests/test_node_sdks.py.
// Reads one JSON request a line on stdin, {provider, base, body, key}, and writes one JSON line
// of what the SDK gave the application: the answer (or every streamed chunk), the request id
// the SDK read, or the error it raised.  One process serves every test (Node starts once).
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { createInterface } from "node:readline";

function request({ provider, base, body, key }) {
  const options = { apiKey: key, maxRetries: 0, timeout: 20000 };
  if (provider === "anthropic") {
    return new Anthropic({ ...options, baseURL: base }).messages.create(body);
  }
  const client = new OpenAI({ ...options, baseURL: base + "/v1" });
  return provider === "openai_responses"
    ? client.responses.create(body)
    : client.chat.completions.create(body);
}

function failure(err) {
  return {
    name: err.constructor.name,
    status: err.status ?? null,
    error: err.error ?? null,
    requestID: err.requestID ?? null,
  };
}

async function call(args) {
  const out = { chunks: null, answer: null, requestID: null, error: null };
  try {
    const { data, response } = await request(args).withResponse();
    out.requestID = response.headers.get("x-request-id") ?? response.headers.get("request-id");
    if (args.body.stream) {
      out.chunks = [];
      for await (const chunk of data) out.chunks.push(chunk);
    } else {
      out.answer = data;
    }
  } catch (err) {
    out.error = failure(err);
  }
  return out;
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify(await call(JSON.parse(line))) + "\n");
}
