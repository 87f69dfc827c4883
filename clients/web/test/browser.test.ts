// The page in headless Chromium against the real server: sign in, buy a sandbox number and
// see its code arrive from the WatchVerification stream, all over grpc-web from the browser.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { VerificationStatus } from "../src/gen/namaskah/v1/verification_pb";
import {
  chromiumPath,
  fundedAccount,
  serveStatic,
  startServer,
  webRoot,
  type RunningServer,
} from "./harness";

const GRPC_WEB = /^application\/grpc-web/;

let browser: Browser;
let site: Awaited<ReturnType<typeof serveStatic>>;

before(async () => {
  site = await serveStatic(join(webRoot, "dist"));
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  await site?.close();
});

/** A page of the built app pointed at `server`'s edge, recording its grpc-web calls. */
async function openApp(server: RunningServer) {
  const page = await browser.newPage();
  const calls: string[] = [];
  page.on("request", (request) => {
    if (GRPC_WEB.test(request.headers()["content-type"] ?? "")) {
      calls.push(new URL(request.url()).pathname);
    }
  });
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(`${site.origin}/?api=${encodeURIComponent(server.edgeUrl)}`);
  return { page, calls, errors };
}

async function signIn(page: Page, email: string, password: string) {
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#login");
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();

describe("the web client with the sandbox sending no code by itself", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      NAMASKAH_CORS_ORIGINS: site.origin,
      NAMASKAH_SANDBOX_SMS_DELAY: "off",
    });
  });
  after(async () => server?.stop());

  test("signs in, buys a number and shows the code injected into it, live", async () => {
    const account = await fundedAccount(server, 1000n);
    const { page, calls, errors } = await openApp(server);

    await signIn(page, account.email, account.password);
    await page.locator("#account").waitFor({ state: "visible" });
    assert.equal(await text(page, "#account-email"), account.email);
    assert.equal(await text(page, "#balance"), "10.00 USD");

    await page.click("#buy");
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "ACTIVE");
    const phoneNumber = await text(page, "#phone-number");
    assert.match(phoneNumber, /^\+\d{6,15}$/);
    // The stream is open and has delivered the current state; no code has been sent yet.
    await page.waitForFunction(() => document.querySelector("#events li")?.textContent === "SNAPSHOT");
    assert.equal(await text(page, "#code"), "…");
    const balanceAfterHold = await text(page, "#balance");
    assert.notEqual(balanceAfterHold, "10.00 USD", "the price is held from the wallet");

    const code = String(100000 + Math.floor(Math.random() * 900000));
    const injected = await account.namaskah.sandbox.injectSms({
      phoneNumber,
      text: `Your WhatsApp code is ${code.slice(0, 3)}-${code.slice(3)}. Don't share it.`,
      sender: "WhatsApp",
    });
    assert.equal(injected.ignored, false);

    await page.waitForFunction(
      (expected) => document.getElementById("code")?.textContent === expected,
      code,
      { timeout: 15_000 },
    );
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "COMPLETED");
    const events = await page.locator("#events li").allInnerTexts();
    assert.ok(events.includes("SMS_RECEIVED") || events.includes("COMPLETED"), events.join(", "));

    // What the page shows is what the server recorded.
    const { verifications } = await account.namaskah.verifications.listVerifications({});
    assert.equal(verifications.length, 1);
    assert.equal(verifications[0].code, code);
    assert.equal(verifications[0].status, VerificationStatus.COMPLETED);
    assert.equal(verifications[0].phoneNumber, phoneNumber);

    // Unary and streaming calls went from the browser over grpc-web.
    for (const method of [
      "/namaskah.v1.AuthService/Login",
      "/namaskah.v1.AuthService/GetMe",
      "/namaskah.v1.WalletService/GetBalance",
      "/namaskah.v1.VerificationService/CreateVerification",
      "/namaskah.v1.VerificationService/WatchVerification",
    ]) {
      assert.ok(calls.includes(method), `${method} not called by the page: ${calls.join(", ")}`);
    }
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a wrong password is refused and shown", async () => {
    const account = await fundedAccount(server, 100n);
    const { page } = await openApp(server);
    await signIn(page, account.email, "not the password 1");
    await page.waitForFunction(() => (document.getElementById("error")?.textContent ?? "") !== "");
    assert.match(await text(page, "#error"), /^Unauthenticated: /);
    assert.equal(await page.locator("#account").isVisible(), false);
    await page.close();
  });
});

describe("the web client with the sandbox sending its own code", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      NAMASKAH_CORS_ORIGINS: site.origin,
      NAMASKAH_SANDBOX_SMS_DELAY: "1s",
    });
  });
  after(async () => server?.stop());

  test("shows the code the sandbox sends after its delay", async () => {
    const account = await fundedAccount(server, 500n);
    const { page, errors } = await openApp(server);
    await signIn(page, account.email, account.password);
    await page.locator("#account").waitFor({ state: "visible" });
    await page.fill("#service", "telegram");
    await page.fill("#country", "US");
    await page.click("#buy");
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "COMPLETED", null, {
      timeout: 20_000,
    });
    const shown = await text(page, "#code");
    const { verifications } = await account.namaskah.verifications.listVerifications({});
    assert.equal(verifications.length, 1);
    assert.match(verifications[0].code, /^\d{4,8}$/);
    assert.equal(shown, verifications[0].code);
    assert.equal(verifications[0].service, "services/telegram");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a page on an origin the server does not allow cannot call it", async () => {
    const other = await serveStatic(join(webRoot, "dist"));
    try {
      // Same files, another port: another origin, not in NAMASKAH_CORS_ORIGINS.
      const page = await browser.newPage();
      await page.goto(`${other.origin}/?api=${encodeURIComponent(server.edgeUrl)}`);
      await signIn(page, "someone@example.com", "whatever 123");
      await page.waitForFunction(() => (document.getElementById("error")?.textContent ?? "") !== "");
      // The browser refuses the answer (no CORS grant): a failed fetch, not the server's
      // Unauthenticated.
      assert.equal(await text(page, "#error"), "Unknown: Failed to fetch");
      await page.close();
    } finally {
      await other.close();
    }
  });
});

describe("the web client across a server restart", () => {
  test("the stream reconnects from the last sequence it saw, and nothing is lost or repeated", async () => {
    const vars = {
      NAMASKAH_CORS_ORIGINS: site.origin,
      NAMASKAH_SANDBOX_SMS_DELAY: "off",
      // The same signing key after the restart, so the page's session stays valid.
      NAMASKAH_JWT_SECRET: "browser-test-secret-browser-test-secret",
    };
    const first = await startServer(vars);
    let second: RunningServer | undefined;
    try {
      const account = await fundedAccount(first, 1000n);
      const { page, calls } = await openApp(first);
      await signIn(page, account.email, account.password);
      await page.locator("#account").waitFor({ state: "visible" });
      await page.click("#buy");
      await page.waitForFunction(() => document.querySelector("#events li")?.textContent === "SNAPSHOT");
      const phoneNumber = await text(page, "#phone-number");

      // The server shuts down: the stream ends with UNAVAILABLE and the page keeps trying.
      await first.halt();
      await page.waitForFunction(() => document.getElementById("connection")?.textContent === "reconnecting…");

      // The same database, on the same addresses. The code may arrive before the page is
      // back: it must then be replayed from the stored events.
      second = await startServer(
        { ...vars, NAMASKAH_GRPC_ADDR: first.grpcAddr, NAMASKAH_EDGE_ADDR: new URL(first.edgeUrl).host },
        { dir: first.dir },
      );
      const code = String(10000 + Math.floor(Math.random() * 90000));
      await account.namaskah.sandbox.injectSms({ phoneNumber, text: `Telegram code: ${code}` });

      await page.waitForFunction(
        (expected) => document.getElementById("code")?.textContent === expected,
        code,
        { timeout: 30_000 },
      );
      await page.waitForFunction(() => document.getElementById("connection")?.textContent === "ended");
      assert.deepEqual(await page.locator("#events li").allInnerTexts(), [
        "SNAPSHOT",
        "SMS_RECEIVED",
        "COMPLETED",
      ]);
      const watches = calls.filter((c) => c === "/namaskah.v1.VerificationService/WatchVerification");
      assert.ok(watches.length >= 2, `the page watched ${watches.length} time(s)`);
      await page.close();
    } finally {
      await second?.stop();
      await first.stop();
    }
  });
});
