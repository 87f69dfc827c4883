// What the client tests share: the real namaskah-server started in a temporary directory
// on free loopback ports, a static server for the built page, and a funded sandbox
// account set up through the generated client.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect, type Namaskah } from "../src/client";
import { SandboxPaymentOutcome } from "../src/gen/namaskah/v1/sandbox_pb";

/** clients/web */
export const webRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
/** The repository. */
export const repoRoot = resolve(webRoot, "../..");

/** Where cargo puts what it builds (`CARGO_TARGET_DIR`, else the workspace's `target`). */
export const cargoTarget = resolve(repoRoot, process.env.CARGO_TARGET_DIR ?? "target");

export const serverBinary =
  process.env.NAMASKAH_SERVER_BIN ?? join(cargoTarget, "debug/namaskah-server");
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export interface RunningServer {
  grpcAddr: string;
  edgeUrl: string;
  mailSink: string;
  dir: string;
  logs: string[];
  /** Stops the server (SIGTERM: streams end with UNAVAILABLE) and removes its directory. */
  stop(): Promise<void>;
  /** Stops the server and keeps its directory (the database, the mail sink). */
  halt(): Promise<void>;
}

/** Variables of the surrounding environment that would change the server's set-up. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(NAMASKAH_|DATABASE_URL|REDIS_URL|SMTP_URL|TEXTVERIFIED_|FIVESIM_|PAYSTACK_|SENTRY_)/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/**
 * Starts namaskah-server on the embedded defaults (SQLite in a temporary directory, the
 * sandbox, the mail sink) with gRPC and the edge on port 0 of 127.0.0.1, and resolves
 * once both are bound, with the addresses the server reports in its log.
 */
export async function startServer(
  vars: Record<string, string>,
  options: { dir?: string } = {},
): Promise<RunningServer> {
  if (!existsSync(serverBinary)) {
    throw new Error(`${serverBinary} is missing: run \`cargo build -p namaskah-server\` first`);
  }
  // A directory of an earlier server: the same database, as after a restart.
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "namaskah-client-test-")));
  const ownsDir = options.dir === undefined;
  const mailSink = join(dir, "mail.jsonl");
  const child = spawn(serverBinary, [], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...cleanEnv(),
      NAMASKAH_GRPC_ADDR: "127.0.0.1:0",
      NAMASKAH_EDGE_ADDR: "127.0.0.1:0",
      NAMASKAH_METRICS_ADDR: "off",
      DATABASE_URL: `sqlite://${join(dir, "namaskah.db")}?mode=rwc`,
      NAMASKAH_MAIL_SINK: mailSink,
      NAMASKAH_LOG_FORMAT: "json",
      NAMASKAH_SHUTDOWN_TIMEOUT: "2s",
      RUST_LOG: "info",
      ...vars,
    },
  });
  const logs: string[] = [];
  const addresses = await new Promise<{ grpc: string; edge: string }>((ok, fail) => {
    let grpc: string | undefined;
    let edge: string | undefined;
    const timer = setTimeout(() => fail(new Error(`the server did not start:\n${logs.join("\n")}`)), 60_000);
    const onLine = (line: string) => {
      logs.push(line);
      let entry: { fields?: { message?: string; address?: string } };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      const message = entry.fields?.message ?? "";
      if (message.startsWith("gRPC listening")) grpc = entry.fields?.address;
      if (message.startsWith("edge listening")) edge = entry.fields?.address;
      if (grpc && edge) {
        clearTimeout(timer);
        ok({ grpc, edge });
      }
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", onLine);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`the server exited (${code}) before listening:\n${logs.join("\n")}`));
    });
  });
  return {
    grpcAddr: addresses.grpc,
    edgeUrl: `http://${addresses.edge}`,
    mailSink,
    dir,
    logs,
    stop: async () => {
      await stopProcess(child);
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
    halt: () => stopProcess(child),
  };
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/** Serves the files under `root` on 127.0.0.1 (port 0); resolves with the page's origin. */
export async function serveStatic(root: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (!file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": contentTypes[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    origin: `http://127.0.0.1:${address.port}`,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

/** The token of the newest mail to `to` in the mail sink whose links carry `token=`. */
export async function mailedToken(mailSink: string, to: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const text = existsSync(mailSink) ? await readFile(mailSink, "utf8") : "";
    const tokens = text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as { to: string; text: string })
      .filter((mail) => mail.to.includes(to))
      .map((mail) => /token=([A-Za-z0-9_\-.~%]+)/.exec(mail.text)?.[1])
      .filter((token): token is string => token !== undefined);
    if (tokens.length > 0) return decodeURIComponent(tokens[tokens.length - 1]);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail with a token for ${to} in ${mailSink}`);
}

export interface Account {
  email: string;
  password: string;
  /** Signed-in clients of the account (from node, over grpc-web through the edge). */
  namaskah: Namaskah;
}

/**
 * Registers an account, verifies its email with the mailed token, signs in and tops the
 * wallet up with `cents` through the sandbox gateway: all through the generated client.
 */
export async function fundedAccount(server: RunningServer, cents: bigint): Promise<Account> {
  const email = `web-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "correct horse 42";
  const namaskah = connect(server.edgeUrl);
  await namaskah.auth.register({ email, password });
  await namaskah.auth.verifyEmail({ token: await mailedToken(server.mailSink, email) });
  await namaskah.login(email, password);
  const { topUp } = await namaskah.wallet.createTopUp({
    amount: { currencyCode: "USD", minorUnits: cents },
    requestId: crypto.randomUUID(),
  });
  if (topUp === undefined) throw new Error("CreateTopUp answered no top-up");
  await namaskah.sandbox.completePayment({
    reference: topUp.reference,
    outcome: SandboxPaymentOutcome.SUCCEEDED,
  });
  return { email, password, namaskah };
}
