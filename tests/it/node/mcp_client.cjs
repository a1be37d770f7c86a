// Drives the custory MCP endpoint with the official TypeScript SDK: the 1.x package
// (`@modelcontextprotocol/sdk`, the handshake era) or the 2.x client (`@modelcontextprotocol/client`,
// both eras: versionNegotiation "auto" asks `server/discover` first).
//
// Usage: MCP_TOKEN=cst_… MCP_SDK=sdk|client MCP_MODULES=DIR [MCP_MODE=auto|legacy] node mcp_client.cjs URL
//
// Runs one fixed scenario (tools, a call, resources paged, a read, templates, prompts, a prompt,
// two completions) and prints one JSON report on stdout, or {"error": "..."} (exit 2).

const path = require("node:path");
const { createRequire } = require("node:module");

const from = createRequire(path.join(process.env.MCP_MODULES, "package.json"));
const v1 = process.env.MCP_SDK === "sdk";
const { Client } = v1 ? from("@modelcontextprotocol/sdk/client/index.js") : from("@modelcontextprotocol/client");
const { StreamableHTTPClientTransport } = v1
  ? from("@modelcontextprotocol/sdk/client/streamableHttp.js")
  : from("@modelcontextprotocol/client");

async function all(list, member) {
  const found = [];
  let cursor;
  let pages = 0;
  do {
    const page = await list(cursor === undefined ? {} : { cursor });
    pages += 1;
    found.push(...page[member]);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { found, pages };
}

async function main() {
  const url = new URL(process.argv[2]);
  const headers = { Authorization: `Bearer ${process.env.MCP_TOKEN}` };
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  const options = v1 ? {} : { versionNegotiation: { mode: process.env.MCP_MODE || "auto" } };
  const client = new Client({ name: `ts-${process.env.MCP_SDK}`, version: "1" }, options);
  await client.connect(transport);
  const report = {
    protocol_version: v1 ? transport.protocolVersion : client.getNegotiatedProtocolVersion(),
    server_name: client.getServerVersion()?.name,
    capabilities: client.getServerCapabilities(),
  };
  const tools = await all((p) => client.listTools(p), "tools");
  report.tools = tools.found.map((t) => t.name);
  const call = await client.callTool({ name: "list_journeys", arguments: {} });
  report.call = { is_error: call.isError, structured: call.structuredContent };
  const resources = await all((p) => client.listResources(p), "resources");
  report.resources = { pages: resources.pages, uris: resources.found.map((r) => r.uri) };
  const read = await client.readResource({ uri: resources.found[0].uri });
  report.read = read.contents.map((c) => ({ uri: c.uri, mime_type: c.mimeType, text: c.text }));
  const templates = await client.listResourceTemplates();
  report.templates = templates.resourceTemplates.map((t) => t.uriTemplate);
  const prompts = await all((p) => client.listPrompts(p), "prompts");
  report.prompts = prompts.found.map((p) => p.name);
  const prompt = await client.getPrompt({
    name: "review_stage",
    arguments: { journey: "trial-to-paid", stage: "Activate" },
  });
  report.prompt = prompt.messages.map((m) => ({ role: m.role, text: m.content.text }));
  const stages = await client.complete({
    ref: { type: "ref/prompt", name: "review_stage" },
    argument: { name: "stage", value: "" },
    context: { arguments: { journey: "trial-to-paid" } },
  });
  const journeys = await client.complete({
    ref: { type: "ref/resource", uri: "custory://journeys/{journey}" },
    argument: { name: "journey", value: "sup" },
  });
  report.completions = [stages.completion.values, journeys.completion.values];
  await client.close();
  return report;
}

main().then(
  (report) => console.log(JSON.stringify(report)),
  (error) => {
    console.log(JSON.stringify({ error: `${error?.name}: ${error?.message}` }));
    process.exit(2);
  },
);
