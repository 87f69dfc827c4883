// The Python and Rust examples, run as a user would run them, against the real server on
// loopback: each buys a sandbox verification and waits for its code on the stream; the
// code it prints must be the one the server recorded.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect } from "../src/client";
import { VerificationStatus } from "../src/gen/namaskah/v1/verification_pb";
import { cargoTarget, fundedAccount, repoRoot, startServer, type RunningServer } from "./harness";

const python = process.env.NAMASKAH_PYTHON ?? join(repoRoot, "clients/python/.venv/bin/python");
const pythonExample = join(repoRoot, "clients/python/examples/buy_verification.py");
const rustExample =
  process.env.NAMASKAH_RUST_EXAMPLE ?? join(cargoTarget, "debug/examples/buy_verification");

/** Runs a program to its end; resolves with its exit code and output. */
function run(command: string, args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string }>((done, fail) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("error", fail);
    child.on("exit", (code) => {
      clearTimeout(timer);
      done({ code, out });
    });
  });
}

/** The `code <name> <code>` line both examples print when the code arrives. */
function printedCode(out: string): { name: string; code: string } {
  const match = /^code (verifications\/\S+) (\S+)$/m.exec(out);
  assert.ok(match, `no code line in:\n${out}`);
  return { name: match[1], code: match[2] };
}

let server: RunningServer;

before(async () => {
  // The sandbox sends a code one second after it assigns a number.
  // Every test registers and signs in from 127.0.0.1: more than the default 20 such calls
  // a minute per address.
  server = await startServer({ NAMASKAH_SANDBOX_SMS_DELAY: "1s", NAMASKAH_SENSITIVE_RPM: "600" });
});
after(async () => server?.stop());

/** Signs in from node as the account, to check what an example did. */
async function recorded(email: string, password: string, name: string) {
  const namaskah = connect(server.edgeUrl);
  await namaskah.login(email, password);
  const { verification } = await namaskah.verifications.getVerification({ name });
  assert.ok(verification);
  return verification;
}

describe("the Python example", () => {
  test("every generated module imports (and the Google options resolve)", async () => {
    const protos = (await readdir(join(repoRoot, "proto/namaskah/v1"))).filter((f) => f.endsWith(".proto"));
    const script = [
      "import importlib, pkgutil, namaskah.v1 as v",
      "from google.api import field_behavior_pb2",
      "names = [m.name for m in pkgutil.iter_modules(v.__path__)]",
      "for name in names: importlib.import_module('namaskah.v1.' + name)",
      "from namaskah.v1 import auth_pb2",
      "options = auth_pb2.User.DESCRIPTOR.fields_by_name['name'].GetOptions()",
      "print(len(names), list(options.Extensions[field_behavior_pb2.field_behavior]))",
    ].join("\n");
    const { code, out } = await run(python, ["-c", script], { PYTHONPATH: join(repoRoot, "clients/python/src") });
    assert.equal(code, 0, out);
    // Messages and gRPC stubs for each file; `name` is an IDENTIFIER (8).
    assert.equal(out.trim(), `${protos.length * 2} [8]`);
  });

  test("registers, verifies, tops up, signs in, buys and prints the streamed code", async () => {
    const email = `py-${Date.now()}@example.com`;
    const password = "correct horse 42";
    const { code, out } = await run(
      python,
      [pythonExample, "--target", server.grpcAddr, "--register", server.mailSink, "--fund-cents", "500"],
      {
        PYTHONPATH: join(repoRoot, "clients/python/src"),
        NAMASKAH_EMAIL: email,
        NAMASKAH_PASSWORD: password,
      },
    );
    assert.equal(code, 0, out);
    assert.match(out, /balance 500 USD cents/);
    const printed = printedCode(out);
    const verification = await recorded(email, password, printed.name);
    assert.equal(verification.code, printed.code);
    assert.equal(verification.status, VerificationStatus.COMPLETED);
  });

  test("buys with an API key", async () => {
    const account = await fundedAccount(server, 500n);
    const { secret } = await account.namaskah.auth.createApiKey({ displayName: "python example" });
    const { code, out } = await run(
      python,
      [pythonExample, "--target", server.grpcAddr, "--service", "telegram", "--country", "US"],
      { PYTHONPATH: join(repoRoot, "clients/python/src"), NAMASKAH_API_KEY: secret },
    );
    assert.equal(code, 0, out);
    const printed = printedCode(out);
    const verification = await recorded(account.email, account.password, printed.name);
    assert.equal(verification.code, printed.code);
    assert.equal(verification.service, "services/telegram");
  });

  test("fails when the wallet cannot pay", async () => {
    const account = await fundedAccount(server, 100n);
    const { secret } = await account.namaskah.auth.createApiKey({ displayName: "python example" });
    const { code, out } = await run(python, [pythonExample, "--target", server.grpcAddr], {
      PYTHONPATH: join(repoRoot, "clients/python/src"),
      NAMASKAH_API_KEY: secret,
    });
    // A $1.00 wallet does not cover a WhatsApp number: the example stops with the error.
    assert.notEqual(code, 0, out);
    assert.match(out, /INSUFFICIENT_FUNDS/);
  });
});

describe("the Rust example", () => {
  test("buys with an API key and prints the streamed code", async () => {
    const account = await fundedAccount(server, 500n);
    const { secret } = await account.namaskah.auth.createApiKey({ displayName: "rust example" });
    const { code, out } = await run(rustExample, ["whatsapp", "GB"], {
      NAMASKAH_GRPC_URL: `http://${server.grpcAddr}`,
      NAMASKAH_API_KEY: secret,
    });
    assert.equal(code, 0, out);
    const printed = printedCode(out);
    const verification = await recorded(account.email, account.password, printed.name);
    assert.equal(verification.code, printed.code);
    assert.equal(verification.status, VerificationStatus.COMPLETED);
  });

  test("signs in with a password and buys with the session's tokens", async () => {
    const account = await fundedAccount(server, 500n);
    const { code, out } = await run(rustExample, ["telegram", "US"], {
      NAMASKAH_GRPC_URL: `http://${server.grpcAddr}`,
      NAMASKAH_EMAIL: account.email,
      NAMASKAH_PASSWORD: account.password,
    });
    assert.equal(code, 0, out);
    const printed = printedCode(out);
    const verification = await recorded(account.email, account.password, printed.name);
    assert.equal(verification.code, printed.code);
  });
});
