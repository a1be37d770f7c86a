// The person at the browser in the OAuth tests: opens an authorization URL in a headless
// Chromium driven by playwright-core, signs in with the owner credential when the sign-in form
// shows, approves (or denies) on the consent page, and waits until the browser reaches the
// client's redirect URI (the client's own callback server).
//
// Usage: OWNER_CREDENTIAL=… MCP_MODULES=DIR [ACTION=approve|deny] [USER_DATA_DIR=DIR]
//        [CHROMIUM=/usr/bin/chromium] [WORKSPACE=slug] [KEY_NAME=…] [EXPIRES=30d|90d|never]
//        [ACCESS=read-write|read-only] [TAMPER=drop-csrf] node consent.cjs AUTHORIZE_URL
//
// The credential comes in the environment, never on the command line. Without USER_DATA_DIR
// the browser gets a fresh profile, removed at the end; with it, a second run reuses the
// cookies the first one left. The form's fields keep what the page chose unless named.
// TAMPER=drop-csrf removes the forms' CSRF field before submitting, as a forged form lacks it.
//
// Prints one JSON line {"final_url": ..., "signed_in": bool, "form": {...}} and exits 0; on any
// failure exits 1 with what went wrong, the page's address and its text on stderr.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { createRequire } = require("node:module");

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TIMEOUT_MS = 30_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** Sets the consent form's fields the environment names; returns what the form submits. */
async function fillForm(page) {
  for (const [name, env] of [
    ["workspace", "WORKSPACE"],
    ["expires", "EXPIRES"],
    ["access", "ACCESS"],
  ]) {
    if (process.env[env]) await page.locator(`select[name="${name}"]`).selectOption(process.env[env]);
  }
  if (process.env.KEY_NAME) await page.locator('input[name="key_name"]').fill(process.env.KEY_NAME);
  const form = {};
  for (const name of ["workspace", "key_name", "expires", "access"]) {
    const field = page.locator(`[name="${name}"]`);
    form[name] = (await field.count()) === 1 ? await field.inputValue() : null;
  }
  return form;
}

async function main() {
  const authorize = new URL(process.argv[2]);
  const redirect = authorize.searchParams.get("redirect_uri");
  if (!redirect) throw new Error(`the authorization URL has no redirect_uri: ${authorize.href}`);
  const credential = required("OWNER_CREDENTIAL");
  const action = process.env.ACTION || "approve";
  if (action !== "approve" && action !== "deny") throw new Error(`ACTION must be approve or deny, not ${action}`);
  const from = createRequire(path.join(required("MCP_MODULES"), "package.json"));
  const { chromium } = from("playwright-core");

  const fresh = !process.env.USER_DATA_DIR;
  const dataDir = process.env.USER_DATA_DIR || fs.mkdtempSync(path.join(os.tmpdir(), "consent-"));
  const context = await chromium.launchPersistentContext(dataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    timeout: TIMEOUT_MS,
  });
  let page;
  try {
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    await page.goto(authorize.href);
    const tamper = async () => {
      if (process.env.TAMPER === "drop-csrf") {
        await page.evaluate(() => document.querySelectorAll('input[name="csrf"]').forEach((e) => e.remove()));
      }
    };

    const password = page.locator('input[type="password"][name="owner_credential"]');
    const decision = page.locator(`button[type="submit"][name="decision"][value="${action}"]`);
    let signedIn = false;
    if ((await password.count()) > 0) {
      await password.fill(credential);
      await tamper();
      await page.locator('button[type="submit"]', { hasText: "Sign in" }).click();
      await page.waitForLoadState();
      signedIn = true;
    }
    if ((await decision.count()) !== 1) {
      throw new Error(`no ${action} button on the page${signedIn ? " after signing in" : ""}`);
    }
    const form = await fillForm(page);
    await tamper();
    const reached = page.waitForURL((url) => url.href.startsWith(redirect), { waitUntil: "commit" });
    reached.catch(() => {}); // awaited below, after the click
    await decision.click();
    await reached;
    process.stdout.write(`${JSON.stringify({ final_url: page.url(), signed_in: signedIn, form })}\n`);
  } catch (error) {
    const text = page ? await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "") : "";
    process.stderr.write(`consent.cjs: ${error?.message}\nat ${page?.url()}\n--- page text ---\n${text}\n`);
    process.exitCode = 1;
  } finally {
    await context.close();
    if (fresh) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`consent.cjs: ${error?.stack || error}\n`);
  process.exitCode = 1;
});
