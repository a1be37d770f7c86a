// A host of the MCP Apps extension, made of the extension SDK's own host side: the official
// TypeScript SDK's client talks to the server (get_journey, the ui:// resource it names, and
// every tools/call the view asks for); in headless Chromium a host page holds the view in a
// sandboxed frame and talks to it through `AppBridge` and `PostMessageTransport` from
// @modelcontextprotocol/ext-apps/app-bridge (bundled for the page by esbuild). Prints one JSON
// report on stdout.
//
// Environment: MCP_URL, MCP_TOKEN (never in argv), MODULES (the node_modules' parent), CHROMIUM,
// and CONFIG, a JSON object: journey, theme ("light"/"dark"), width, height, screenshot (a PNG
// path or null), interact (click an item, `item` or the first; change its status when the view
// offers it, unless change_status is false), detail_screenshot (a PNG of the whole frame with
// the item open and its card hovered), switch_theme (the host turns dark), page_more (show a step's remaining items), keyboard
// (tab to the first card).
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");
const need = createRequire(path.join(process.env.MODULES, "package.json"));
const { Client } = need("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = need("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { chromium } = need("playwright-core");
const esbuild = need("esbuild");

const config = JSON.parse(process.env.CONFIG);
const STEP_MS = 60000;

// What a host passes as the extension's style variables, per theme (a subset, as hosts may).
const STYLES = {
  light: {
    "--color-background-primary": "#ffffff", "--color-background-secondary": "#f5f4ef",
    "--color-background-tertiary": "#e8e6dc", "--color-text-primary": "#1f1e1d",
    "--color-text-secondary": "#5e5d59", "--color-border-primary": "#d9d7cf",
    "--color-ring-primary": "#2c6bed", "--font-sans": "system-ui, sans-serif",
  },
  dark: {
    "--color-background-primary": "#262624", "--color-background-secondary": "#30302e",
    "--color-background-tertiary": "#3d3d3a", "--color-text-primary": "#f5f4ef",
    "--color-text-secondary": "#b7b5a9", "--color-border-primary": "#4a4945",
    "--color-ring-primary": "#7aa7ff", "--font-sans": "system-ui, sans-serif",
  },
};

async function main() {
  const report = { calls: [] };
  const client = new Client(
    { name: "custory-app-host", version: "1.0.0" },
    { capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } },
  });
  await client.connect(transport);

  // Discovery, as a host does it: the tool names its view, the view is read.
  const { tools } = await client.listTools();
  const tool = tools.find((t) => t.name === "get_journey");
  const uri = tool._meta && tool._meta.ui && tool._meta.ui.resourceUri;
  report.resource_uri = uri;
  const read = await client.readResource({ uri });
  const content = read.contents[0];
  report.mime_type = content.mimeType;
  report.resource_meta = content._meta;
  report.resource_bytes = Buffer.byteLength(content.text, "utf8");
  const args = { journey: config.journey };
  const toolResult = await client.callTool({ name: "get_journey", arguments: args });
  report.journey_items_shown = toolResult.structuredContent && toolResult.structuredContent.items_shown;
  report.items_total = toolResult.structuredContent && toolResult.structuredContent.items_total;

  const bundle = await esbuild.build({
    stdin: {
      contents: "export { AppBridge, PostMessageTransport } from '@modelcontextprotocol/ext-apps/app-bridge';",
      resolveDir: process.env.MODULES,
    },
    bundle: true, format: "iife", globalName: "ExtApps", write: false, platform: "browser", minify: true,
    logLevel: "error",
  });

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: config.width, height: config.height }, colorScheme: config.theme });
    page.setDefaultTimeout(STEP_MS);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    // The host page and the view are set in place: any request at all is the view reaching out.
    report.requests = [];
    page.on("request", (r) => report.requests.push(r.url()));
    // The host's side of tools/call: through the MCP client to the server.
    await page.exposeFunction("hostCallTool", async (params) => {
      report.calls.push({ name: params.name, arguments: params.arguments });
      return client.callTool(params);
    });
    const background = STYLES[config.theme]["--color-background-primary"];
    await page.setContent(`<!doctype html><html><body style="margin:0;background:${background}">
      <iframe id="view" sandbox="allow-scripts" title="Journey map" style="width:100%;border:0;display:block;height:200px"></iframe>
      </body></html>`);
    await page.addScriptTag({ content: bundle.outputFiles[0].text });
    await page.evaluate(async ({ html, tool, args, toolResult, theme, variables, width }) => {
      const { AppBridge, PostMessageTransport } = window.ExtApps;
      const iframe = document.getElementById("view");
      const bridge = new AppBridge(null, { name: "custory-app-host", version: "1.0.0" },
        { serverTools: {}, openLinks: {}, logging: {} },
        { hostContext: { theme, styles: { variables }, displayMode: "inline", platform: "web",
          containerDimensions: { maxWidth: width }, toolInfo: { tool } } });
      bridge.oncalltool = (params) => window.hostCallTool(params);
      bridge.onsizechange = ({ height }) => { if (height) iframe.style.height = `${height}px`; };
      window.viewInitialized = new Promise((resolve) => {
        bridge.oninitialized = () => {
          bridge.sendToolInput({ arguments: args });
          bridge.sendToolResult(toolResult);
          resolve();
        };
      });
      await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
      window.bridge = bridge;
      iframe.srcdoc = html;
    }, { html: content.text, tool, args, toolResult, theme: config.theme, variables: STYLES[config.theme], width: config.width });
    await page.evaluate(() => window.viewInitialized);
    const frame = page.frames().find((f) => f !== page.mainFrame());
    await frame.waitForFunction(() => performance.getEntriesByName("journey-map-painted").length > 0);
    const timing = await frame.evaluate(() => ({
      painted: performance.getEntriesByName("journey-map-painted")[0].startTime,
      result: performance.getEntriesByName("journey-map-result")[0].startTime,
      overflow_x: document.documentElement.scrollWidth > document.documentElement.clientWidth,
      fcp: (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime,
      cards: document.querySelectorAll(".card").length,
      stages: document.querySelectorAll(".stage").length,
      steps: document.querySelectorAll(".step").length,
      title: document.getElementById("title").textContent,
      personas: document.querySelectorAll("#personas li").length,
      theme: document.documentElement.dataset.theme,
      background: getComputedStyle(document.body).backgroundColor,
    }));
    Object.assign(report, timing);
    report.render = timing.painted - timing.result;
    await page.waitForFunction(() => parseInt(document.getElementById("view").style.height, 10) > 200);
    report.frame_height = await page.evaluate(() => parseInt(document.getElementById("view").style.height, 10));
    if (config.screenshot) await page.screenshot({ path: config.screenshot });
    if (config.switch_theme) {
      // The host turns dark: ui/notifications/host-context-changed, from the bridge.
      await page.evaluate((variables) => window.bridge.setHostContext({ theme: "dark", styles: { variables } }), STYLES.dark);
      await frame.waitForFunction(() => document.documentElement.dataset.theme === "dark");
      report.background_switched = await frame.evaluate(() => getComputedStyle(document.body).backgroundColor);
    }

    if (config.keyboard) {
      await frame.focus("body");
      await page.keyboard.press("Tab");
      report.keyboard = await frame.evaluate(() => {
        const a = document.activeElement;
        const style = getComputedStyle(a);
        return { focused: a.className, outline: style.outlineStyle, outline_width: style.outlineWidth, label: a.getAttribute("aria-label") };
      });
      await page.keyboard.press("Enter");
      await frame.waitForSelector(".detail h4");
      report.keyboard.opened = await frame.textContent(".detail h4");
      await page.keyboard.press("Escape");
      await frame.waitForSelector(".detail", { state: "detached" });
      report.keyboard.back_on = await frame.evaluate(() => document.activeElement.className);
    }
    if (config.interact) {
      const card = config.item ? frame.locator(`.card[data-id="${config.item}"]`) : frame.locator(".card").first();
      report.clicked = await card.getAttribute("data-id");
      await card.click();
      await frame.waitForSelector(".detail h4");
      report.detail_title = await frame.textContent(".detail h4");
      const select = await frame.$(".detail select");
      report.status_control = Boolean(select);
      if (config.detail_screenshot) {
        await page.mouse.move(0, 0);
        await card.hover();
        await frame.waitForSelector(".card.linked");
        // The whole frame in view (a full-page capture leaves a sandboxed frame blank).
        const height = await page.evaluate(() => parseInt(document.getElementById("view").style.height, 10));
        await page.setViewportSize({ width: config.width, height: Math.min(height, 1600) });
        await frame.waitForTimeout(100);
        await page.screenshot({ path: config.detail_screenshot });
      }
      if (select && config.change_status !== false) {
        const options = await select.$$eval("option", (os) => os.map((o) => o.value));
        const now = await select.inputValue();
        const next = options.find((o) => o !== now);
        await select.selectOption(next);
        await frame.waitForSelector(".detail [role=status]:text-matches('Saved')");
        report.status_changed_to = next;
        report.card_after = await card.getAttribute("aria-label");
      }
    }
    if (config.page_more) {
      const before = await frame.locator(".card").count();
      const more = frame.locator(".more:visible").first();
      await more.click();
      await frame.waitForFunction((n) => document.querySelectorAll(".card").length > n, before);
      report.cards_before_more = before;
      report.cards_after_more = await frame.locator(".card").count();
    }
    report.errors = errors;
  } finally {
    await browser.close();
    await client.close();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) }) + "\n");
  process.exit(1);
});
