// The official TypeScript MCP SDK's client against a real sonde-hub, with an
// API key in the Authorization header (no OAuth). Started by
// tests/tests/mcp_clients.rs; every check failing exits non-zero with the
// reason on stderr. Prints one JSON summary line on stdout.
//
// Environment: SONDE_MCP_URL, SONDE_API_KEY, SONDE_AGENT, and
// NODE_EXTRA_CA_CERTS (the hub CA, so TLS is verified, not disabled).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.env.SONDE_MCP_URL;
const key = process.env.SONDE_API_KEY;
const agent = process.env.SONDE_AGENT;
if (!url || !key || !agent) {
  console.error("set SONDE_MCP_URL, SONDE_API_KEY and SONDE_AGENT");
  process.exit(2);
}

function check(cond, what) {
  if (!cond) {
    console.error(`check failed: ${what}`);
    process.exit(1);
  }
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "sonde-e2e-ts-sdk", version: "1.0.0" });
await client.connect(transport);
const summary = {};

const server = client.getServerVersion();
check(server?.name === "sonde-hub", `server name ${JSON.stringify(server)}`);
const caps = client.getServerCapabilities();
check(caps?.tools && caps?.prompts && caps?.completions, `capabilities ${JSON.stringify(caps)}`);

// tools/list: every tool has an input schema, an output schema and annotations.
const { tools } = await client.listTools();
summary.tools = tools.map((t) => t.name);
for (const t of tools) {
  check(t.inputSchema?.type === "object", `${t.name} inputSchema`);
  check(t.outputSchema?.type === "object", `${t.name} outputSchema`);
  const a = t.annotations ?? {};
  for (const hint of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"]) {
    check(typeof a[hint] === "boolean", `${t.name} annotation ${hint}`);
  }
  check(a.openWorldHint === false, `${t.name}: agent tools are a closed world`);
}
summary.annotations = Object.fromEntries(tools.map((t) => [t.name, t.annotations]));

// A probe call: the SDK validates structuredContent against outputSchema
// (it throws if they disagree); the text content is there too.
const probe = await client.callTool({
  name: "probe",
  arguments: { agent, probe: "e2e.echo", params: { text: "from typescript" } },
});
check(!probe.isError, `probe failed: ${JSON.stringify(probe)}`);
check(probe.structuredContent?.data?.text === "from typescript\n", `probe data ${JSON.stringify(probe.structuredContent)}`);
check(probe.structuredContent.audit_seq > 0, "probe audit_seq");
check(probe.content?.[0]?.type === "text" && probe.content[0].text.includes("from typescript"), "probe text content");
summary.probe = probe.structuredContent;

// A failure is a tool result the SDK also validates (isError, structured).
const bad = await client.callTool({ name: "agent_overview", arguments: { agent: "no-such-agent" } });
check(bad.isError === true && bad.structuredContent?.error === "not_found", `not_found ${JSON.stringify(bad)}`);
const badArgs = await client.callTool({ name: "list_agents", arguments: { bogus: 1 } });
check(badArgs.isError === true && badArgs.structuredContent?.error === "invalid_params", `invalid_params ${JSON.stringify(badArgs)}`);

// Progress from diagnose: one notification per probe, total known.
const progress = [];
const diag = await client.callTool(
  { name: "diagnose", arguments: { agent, category: "e2e" } },
  undefined,
  { onprogress: (p) => progress.push(p), timeout: 60000 },
);
check(!diag.isError, `diagnose ${JSON.stringify(diag)}`);
const run = diag.structuredContent.summary.run;
check(progress.length === run, `progress notifications ${JSON.stringify(progress)} for ${run} probes`);
check(progress.every((p) => p.total === run), "progress total");
check(progress.map((p) => p.progress).join() === [...Array(run).keys()].map((i) => i + 1).join(), "progress counts up");
check(progress.every((p) => typeof p.message === "string" && p.message.includes(" on ")), "progress messages name the probe");
summary.progress = progress;

// Prompts and completion.
const { prompts } = await client.listPrompts();
summary.prompts = prompts.map((p) => p.name);
check(summary.prompts.includes("investigate-zfs-pool") && summary.prompts.includes("service-failing"), "runbook prompts");
check(summary.prompts.includes("diagnose-e2e"), "a prompt per diagnose category");
const got = await client.getPrompt({ name: "service-failing", arguments: { agent, service: "nginx.service" } });
check(got.messages?.[0]?.content?.text?.includes("nginx.service"), `prompt text ${JSON.stringify(got)}`);
const agents = await client.complete({
  ref: { type: "ref/prompt", name: "explain-probe" },
  argument: { name: "agent", value: agent.slice(0, 1) },
});
check(agents.completion.values.includes(agent), `agent completion ${JSON.stringify(agents)}`);
const probes = await client.complete({
  ref: { type: "ref/prompt", name: "explain-probe" },
  argument: { name: "probe", value: "e2e.e" },
  context: { arguments: { agent } },
});
check(probes.completion.values.includes("e2e.echo"), `probe completion ${JSON.stringify(probes)}`);
check(probes.completion.values.every((v) => v.startsWith("e2e.e")), "completion filters by prefix");
summary.completion = { agents: agents.completion, probes: probes.completion };

await client.close();
console.log(JSON.stringify(summary));
